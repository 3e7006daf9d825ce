package event

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
)

func mustRecord(tb testing.TB, m map[string]any) []byte {
	tb.Helper()
	r, err := EncodeRecord(m)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// dockerRecord is shaped like a record from Docker's fluentd log driver.
func dockerRecord(tb testing.TB) []byte {
	return mustRecord(tb, map[string]any{
		"container_id":   "6d33ade920a96179205e01c3a17d6e7f3eb98f0d5bb2b494383250220e7f443c",
		"container_name": "/ecs-service-2-apache-d492a08f9480c2fcca01",
		"source":         "stdout",
		"log":            `122.116.50.70 - Corwin8644 264 [2018-10-31T21:31:59Z] "POST /activate" 200 19886`,
	})
}

func TestReaderShapes(t *testing.T) {
	rec := mustRecord(t, map[string]any{"k": "v"})
	when := Time(1700000000_123456789)

	var b Builder
	b.Append(when, rec) // [EventTime, record]

	intEntry := msgp.AppendArrayHeader(nil, 2) // [int, record]
	intEntry = msgp.AppendInt64(intEntry, 1700000000)
	intEntry = append(intEntry, rec...)
	b.AppendRaw(intEntry)

	fbEntry := msgp.AppendArrayHeader(nil, 2) // [[EventTime, meta], record]
	fbEntry = msgp.AppendArrayHeader(fbEntry, 2)
	fbEntry = AppendEventTime(fbEntry, when)
	fbEntry = append(fbEntry, mustRecord(t, map[string]any{"otel": "x"})...)
	fbEntry = append(fbEntry, rec...)
	b.AppendRaw(fbEntry)

	ext8 := []byte{0x92, 0xc7, 0x08, 0x00, 0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 7}
	ext8 = append(ext8, rec...)
	b.AppendRaw(ext8)

	wantTimes := []Time{when, 1700000000 * 1e9, when, Time(0x6553f100*1e9 + 7)}
	r := NewReader(b.Bytes())
	for i := 0; r.Next(); i++ {
		e := r.Entry()
		if e.Time != wantTimes[i] {
			t.Errorf("entry %d: time %d, want %d", i, e.Time, wantTimes[i])
		}
		if v, ok := e.Record.Get("k"); !ok || v.String() != "v" {
			t.Errorf("entry %d: record k = %q, %v", i, v.String(), ok)
		}
		if (i == 2) != (e.Meta != nil) {
			t.Errorf("entry %d: meta = %x", i, e.Meta)
		}
	}
	if r.Err() != nil || r.Count() != 4 {
		t.Fatalf("count %d err %v", r.Count(), r.Err())
	}
}

func TestReaderRejects(t *testing.T) {
	rec := mustRecord(t, map[string]any{"k": "v"})
	cases := map[string][]byte{
		"not an array":   msgp.AppendString(nil, "x"),
		"three elements": append(append(msgp.AppendArrayHeader(nil, 3), msgp.AppendInt64(nil, 1)...), append(rec, 0xc0)...),
		"string time":    append(msgp.AppendString(msgp.AppendArrayHeader(nil, 2), "now"), rec...),
		"array record":   msgp.AppendArrayHeader(msgp.AppendInt64(msgp.AppendArrayHeader(nil, 2), 1), 0),
		"truncated":      append(msgp.AppendInt64(msgp.AppendArrayHeader(nil, 2), 1), rec[:len(rec)-1]...),
		"other ext":      append([]byte{0x92, 0xd7, 0x05, 0, 0, 0, 0, 0, 0, 0, 0}, rec...),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			n, err := Validate(data)
			if !errors.Is(err, ErrEntry) {
				t.Fatalf("Validate = %d, %v; want ErrEntry", n, err)
			}
		})
	}
}

func TestRecordLookupAndJSON(t *testing.T) {
	rec := Record(mustRecord(t, map[string]any{
		"a":     map[string]any{"b": map[string]any{"c": "deep"}},
		"n":     42,
		"f":     float32(1), // a real float: EncodeRecord keeps float64 integers integral
		"neg":   -3,
		"t":     true,
		"nil":   nil,
		"s":     "quote\" nl\n ctl\x01 utf8 é",
		"bin":   []byte("raw"),
		"array": []any{"x", 1.5},
	}))
	if v, ok := rec.Lookup([]string{"a", "b", "c"}); !ok || v.String() != "deep" {
		t.Errorf("Lookup a.b.c = %q %v", v.String(), ok)
	}
	if _, ok := rec.Lookup([]string{"n", "x"}); ok {
		t.Error("Lookup through a scalar succeeded")
	}
	if _, ok := rec.Get("missing"); ok {
		t.Error("Get(missing) succeeded")
	}
	got, err := rec.AppendJSON(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"a":{"b":{"c":"deep"}},"array":["x",1.5],"bin":"raw","f":1.0,"n":42,"neg":-3,"nil":null,"s":"quote\" nl\n ctl\u0001 utf8 é","t":true}`
	if string(got) != want {
		t.Errorf("JSON\n got %s\nwant %s", got, want)
	}
	invalid := AppendJSONString(nil, []byte{'a', 0xff, 'b'})
	if string(invalid) != "\"a\ufffdb\"" {
		t.Errorf("invalid UTF-8 = %q", invalid)
	}
}

func TestEventTimeRoundTrip(t *testing.T) {
	now := FromStd(time.Date(2026, 11, 21, 13, 0, 0, 987654321, time.UTC))
	b := AppendEventTime(nil, now)
	got, rest, err := ReadTime(b)
	if err != nil || len(rest) != 0 || got != now {
		t.Fatalf("ReadTime = %v %v %v, want %v", got, rest, err, now)
	}
}

func TestZeroAllocs(t *testing.T) {
	var b Builder
	rec := dockerRecord(t)
	for i := 0; i < 100; i++ {
		b.Append(Time(i), rec)
	}
	data := b.Bytes()
	var r Reader
	allocs := testing.AllocsPerRun(100, func() {
		r.Reset(data)
		for r.Next() {
			if _, ok := r.Entry().Record.Get("log"); !ok {
				t.Fatal("log missing")
			}
		}
	})
	if allocs != 0 {
		t.Errorf("reading 100 entries allocates %v times", allocs)
	}
	allocs = testing.AllocsPerRun(100, func() {
		b.Reset()
		b.Append(1, rec)
	})
	if allocs != 0 {
		t.Errorf("Builder.Append allocates %v times", allocs)
	}
}

func BenchmarkReaderValidate(b *testing.B) {
	var bld Builder
	rec := dockerRecord(b)
	for i := 0; i < 1000; i++ {
		bld.Append(Time(i), rec)
	}
	data := bld.Bytes()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if n, err := Validate(data); err != nil || n != 1000 {
			b.Fatal(n, err)
		}
	}
}

func BenchmarkRecordJSON(b *testing.B) {
	rec := Record(dockerRecord(b))
	var dst []byte
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	for b.Loop() {
		dst, _ = rec.AppendJSON(dst[:0])
	}
}

func FuzzDecodeEntries(f *testing.F) {
	var b Builder
	b.Append(1, mustRecord(f, map[string]any{"k": "v", "n": []any{1.5, map[string]any{"x": nil}}}))
	f.Add(b.Bytes())
	f.Add([]byte{0x92, 0x92, 0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 2, 0x80, 0x80})
	f.Add([]byte{0x92, 0xcb, 0x41, 0xd9, 0, 0, 0, 0, 0, 0, 0x81, 0xa1, 'k', 0xc7, 0x01, 0x05, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(data)
		for r.Next() {
			e := r.Entry()
			if len(e.Raw) == 0 || len(e.Record) == 0 {
				t.Fatal("empty slices for a valid entry")
			}
			// Every accepted record renders as JSON without error, but for
			// hostile nesting and maps or arrays as keys (refused in time
			// and memory bounded by the input: this corpus holds a record
			// of a few hundred bytes whose keys nest maps as keys, which
			// once rendered to gigabytes).
			out, err := e.Record.AppendJSON(nil)
			if err != nil && !strings.Contains(err.Error(), "recursion") && !errors.Is(err, ErrContainerKey) {
				t.Fatalf("AppendJSON on accepted record: %v", err)
			}
			if len(out) > 64*len(data)+64 {
				t.Fatalf("%d bytes of JSON from a %d-byte input", len(out), len(data))
			}
			_ = e.Record.Each(func([]byte, Value) bool { return true })
		}
		// Through the index of a validation, the same entries.
		var ix Index
		if n, err := ValidateIndexed(data, &ix); err == nil {
			sameEntries(t, Stream{Data: data, Len: n, Index: &ix}.Reader(), NewReader(data))
		}
	})
}

// TestAppendJSONStringProperty checks the eight-bytes-at-a-time path: any
// byte string comes out as JSON that decodes to the string with each
// invalid UTF-8 byte replaced by U+FFFD.
func TestAppendJSONStringProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("abcXYZ09 \"\\\n\t\x00\x1f\x7f<>&é€\xff\xc3")
	for n := 0; n < 5000; n++ {
		s := make([]byte, rng.IntN(120))
		for i := range s {
			if rng.IntN(3) == 0 {
				s[i] = byte(rng.IntN(256))
			} else {
				s[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		checkJSONString(t, s)
	}
}

// checkJSONString checks that AppendJSONString renders s as JSON that
// decodes to s, each invalid UTF-8 byte replaced by U+FFFD.
func checkJSONString(t *testing.T, s []byte) {
	t.Helper()
	var want strings.Builder
	for b := s; len(b) > 0; {
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			want.WriteRune(utf8.RuneError)
		} else {
			want.Write(b[:size])
		}
		b = b[size:]
	}
	var got string
	if err := json.Unmarshal(AppendJSONString(nil, s), &got); err != nil {
		t.Fatalf("%q: not JSON: %v (%s)", s, err, AppendJSONString(nil, s))
	}
	if got != want.String() {
		t.Fatalf("%q: decoded %q, want %q", s, got, want.String())
	}
}

// TestAppendJSONProperty checks the first-byte fast paths (fixstr, str8,
// fixint, fixmap, a pair of strings) and the general ones against encoding/json: random
// nested records of every string and integer width render as JSON that
// decodes to the values encoded.
func TestAppendJSONProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var value func(depth int) any
	value = func(depth int) any {
		switch rng.IntN(6) {
		case 0:
			// Lengths around the fixstr (31), str8 (255) and str16 bounds.
			n := []int{0, 5, 31, 32, 200, 255, 256, 70000}[rng.IntN(8)]
			// Plain or not: appendJSONMap takes runs of plain pairs
			// through plainPairs and the others one by one.
			return strings.Repeat(string(rune('a'+rng.IntN(26))), n) + []string{"", `"\` + "\n"}[rng.IntN(2)]
		case 1:
			return []int64{0, 1, 127, 128, -1, -32, -33, 1 << 40, -(1 << 40)}[rng.IntN(9)]
		case 2:
			if depth < 4 {
				m := map[string]any{}
				for i := rng.IntN(20); i > 0; i-- {
					// Keys short and long, plain and needing escapes:
					// appendStringPair takes the first, hands back the rest.
					special := []string{"", "", `"`, `\`, "\n", "é", "\x01"}[rng.IntN(7)]
					m[strings.Repeat("k", rng.IntN(40))+special+string(rune('a'+i))] = value(depth + 1)
				}
				return m
			}
		case 3:
			if depth < 4 {
				return []any{value(depth + 1), value(depth + 1)}
			}
		case 4:
			return nil
		}
		return true
	}
	for n := 0; n < 300; n++ {
		want := map[string]any{"root": value(0), "s": "x"}
		rec := mustRecord(t, want)
		out, err := Record(rec).AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		var got any
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		wantJSON, _ := json.Marshal(want)
		var wantBack any
		_ = json.Unmarshal(wantJSON, &wantBack)
		if !reflect.DeepEqual(got, wantBack) {
			t.Fatalf("got %s\nwant %s", out, wantJSON)
		}
	}
}

// FuzzSkip holds Skip to msgp.Skip: the same rest, and an error (a short
// one) exactly when msgp.Skip gives one.
func FuzzSkip(f *testing.F) {
	f.Add(dockerRecord(f))
	f.Add([]byte{0x82, 0xa1, 'a', 0x92, 0x01, 0xd9, 0x01, 'x', 0xa0, 0xc0})
	f.Add([]byte{0x81, 0xa1, 'a', 0xd9, 0x05, 'x'})
	f.Add([]byte{0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x91, 0x90})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotErr := Skip(b)
		want, wantErr := msgp.Skip(b)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("Skip error %v, msgp.Skip error %v", gotErr, wantErr)
		}
		if errors.Is(gotErr, msgp.ErrShortBytes) != errors.Is(wantErr, msgp.ErrShortBytes) {
			// The forward input waits for more bytes on exactly this error.
			t.Fatalf("Skip error %v, msgp.Skip error %v", gotErr, wantErr)
		}
		if gotErr == nil && len(got) != len(want) {
			t.Fatalf("Skip left %d bytes, msgp.Skip %d", len(got), len(want))
		}
	})
}

// TestIsMap holds the first-byte test to msgp's reading of every byte.
func TestIsMap(t *testing.T) {
	if isMap(nil) {
		t.Fatal("isMap(nil)")
	}
	for c := 0; c < 256; c++ {
		b := []byte{byte(c), 0, 0, 0, 0}
		if got, want := isMap(b), msgp.NextType(b) == msgp.MapType; got != want {
			t.Errorf("isMap(%#x) = %v, msgp says %v", c, got, want)
		}
	}
}
