package inject

import (
	"testing"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/tinylib/msgp/msgp"
)

func records(t *testing.T, s event.Stream) []map[string]any {
	t.Helper()
	var out []map[string]any
	rd := s.Reader()
	for rd.Next() {
		v, _, err := msgp.ReadIntfBytes(rd.Entry().Record)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, v.(map[string]any))
	}
	if rd.Err() != nil {
		t.Fatal(rd.Err())
	}
	return out
}

// TestInjectFields: every key and time type, an existing key replaced,
// the rest of the record kept.
func TestInjectFields(t *testing.T) {
	var in event.Builder
	rec, _ := event.EncodeRecord(map[string]any{"log": "hello", "tag": "old"})
	in.Append(event.Time(1700000000_123456789), rec)
	for _, c := range []struct {
		typ, format string
		want        any
	}{
		{"float", "", 1700000000.1234567},
		{"unixtime", "", int64(1700000000)},
		{"unixtime_millis", "", int64(1700000000123)},
		{"unixtime_micros", "", int64(1700000000123456)},
		{"unixtime_nanos", "", int64(1700000000123456789)},
		{"string", "", "2023-11-14T22:13:20+00:00"},
		{"string", "%Y%m%d %H:%M:%S.%L", "20231114 22:13:20.123"},
	} {
		cfg := Defaults()
		cfg.HostnameKey, cfg.TagKey, cfg.TimeKey, cfg.WorkerIDKey = "host", "tag", "@timestamp", "worker"
		cfg.TimeType, cfg.TimeFormat, cfg.UTC = c.typ, c.format, true
		inj, err := New(cfg, "node-1")
		if err != nil {
			t.Fatal(err)
		}
		var b event.Builder
		out, err := inj.Apply(in.Stream("app.web"), &b)
		if err != nil {
			t.Fatal(err)
		}
		got := records(t, out)
		if len(got) != 1 {
			t.Fatalf("%d records", len(got))
		}
		r := got[0]
		if r["log"] != "hello" || r["tag"] != "app.web" || r["host"] != "node-1" || r["worker"] != int64(0) || len(r) != 5 {
			t.Errorf("%s: record %v", c.typ, r)
		}
		if ts := r["@timestamp"]; ts != c.want {
			if f, ok := ts.(float64); !ok || c.typ != "float" || f-c.want.(float64) > 1e-6 || c.want.(float64)-f > 1e-6 {
				t.Errorf("%s %q: time %v (%T), want %v", c.typ, c.format, ts, ts, c.want)
			}
		}
	}
	if inj, err := New(Defaults(), "h"); inj != nil || err != nil {
		t.Errorf("an <inject> without keys: %v, %v", inj, err)
	}
}
