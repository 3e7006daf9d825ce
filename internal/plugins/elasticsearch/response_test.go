package elasticsearch

import (
	"strings"
	"testing"
	"time"
)

func TestParseBulk(t *testing.T) {
	items, ok, err := parseBulk([]byte(`{"took":3,"errors":false,"items":[{"index":{"status":201}}]}`), 1)
	if err != nil || !ok || items != nil {
		t.Errorf("all taken: %v %v %v", items, ok, err)
	}
	body := `{"errors":true,"items":[{"create":{"status":201}},{"create":{"status":429,"error":{"type":"es_rejected_execution_exception","reason":"queue full"}}},{"index":{"status":400,"error":"MapperParsingException[bad]"}}]}`
	items, ok, err = parseBulk([]byte(body), 3)
	if err != nil || ok || len(items) != 3 {
		t.Fatalf("%v %v %v", items, ok, err)
	}
	if items[1].status != 429 || items[1].typ != "es_rejected_execution_exception" || items[1].reason != "queue full" || items[2].reason != "MapperParsingException[bad]" {
		t.Errorf("items %+v", items)
	}
	for _, bad := range []struct{ body, want string }{
		{`not json`, "not JSON"},
		{`{"items":[]}`, "no errors field"},
		{`{"errors":true,"items":[{"index":{"status":201}}]}`, "1 items for 2 documents"},
		{`{"errors":true,"items":[{"index":{"status":201},"create":{}},{}]}`, "item 0"},
	} {
		if _, _, err := parseBulk([]byte(bad.body), 2); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want %q", bad.body, err, bad.want)
		}
	}
}

// FuzzParseBulk: any response body gives items or an error, never a
// panic, and never more items than documents asked for.
func FuzzParseBulk(f *testing.F) {
	f.Add([]byte(`{"errors":true,"items":[{"index":{"status":429,"error":{"type":"x","reason":"y"}}}]}`), 1)
	f.Add([]byte(`{"errors":false}`), 3)
	f.Add([]byte(`{"errors":true,"items":[{"index":{"status":400,"error":"s"}},{"create":{"status":201}}]}`), 2)
	f.Fuzz(func(t *testing.T, body []byte, want int) {
		if want < 0 || want > 1000 {
			return
		}
		items, ok, err := parseBulk(body, want)
		if err == nil && !ok && len(items) != want {
			t.Fatalf("%d items for %d documents", len(items), want)
		}
	})
}

// TestAppendTimestamp: the hand-written ISO 8601 matches time.Format for
// each precision and zone.
func TestAppendTimestamp(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("", 9*3600), time.FixedZone("", -(3*3600 + 30*60))}
	for _, loc := range zones {
		at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, loc)
		for p := 0; p <= 9; p++ {
			o := &Output{Config: Config{TimePrecision: p}}
			layout := "2006-01-02T15:04:05"
			if p > 0 {
				layout += "." + strings.Repeat("0", p)
			}
			want := at.Format(layout + "-07:00")
			if got := string(o.appendTimestamp(nil, at, nil)); got != want {
				t.Errorf("precision %d: %s, want %s", p, got, want)
			}
			var c stampCache
			for _, t2 := range []time.Time{at, at.Add(time.Millisecond), at.Add(time.Second), at} {
				if got, want := string(o.appendTimestamp(nil, t2, &c)), string(o.appendTimestamp(nil, t2, nil)); got != want {
					t.Errorf("cached %s, want %s", got, want)
				}
			}
		}
	}
	if got := string(appendInt(nil, 7, 4)); got != "0007" {
		t.Errorf("appendInt %q", got)
	}
}
