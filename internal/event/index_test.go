package event

import (
	"bytes"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func sameEntries(t *testing.T, got, want Reader) {
	t.Helper()
	for i := 0; ; i++ {
		g, w := got.Next(), want.Next()
		if g != w {
			t.Fatalf("entry %d: indexed Next %v, plain Next %v (%v, %v)", i, g, w, got.Err(), want.Err())
		}
		if !g {
			break
		}
		ge, we := got.Entry(), want.Entry()
		if ge.Time != we.Time || !bytes.Equal(ge.Record, we.Record) || !bytes.Equal(ge.Meta, we.Meta) || !bytes.Equal(ge.Raw, we.Raw) {
			t.Fatalf("entry %d differs:\n indexed %+v\n plain   %+v", i, ge, we)
		}
	}
	if (got.Err() == nil) != (want.Err() == nil) {
		t.Fatalf("errors differ: %v, %v", got.Err(), want.Err())
	}
}

// TestStreamReaderIndexed: a Reader from a Stream with the Index of its own
// Data reads through the index and yields exactly the entries a plain
// Reader does, Fluent Bit's [[time, meta], record] shape included.
func TestStreamReaderIndexed(t *testing.T) {
	var b Builder
	for i := 0; i < 50; i++ {
		b.Append(Time(int64(i)*1e9+7), mustRecord(t, map[string]any{"i": i, "s": "x", "nested": map[string]any{"a": []any{1, "b"}}}))
	}
	fb := msgp.AppendArrayHeader(nil, 2)
	fb = msgp.AppendArrayHeader(fb, 2)
	fb = AppendEventTime(fb, 42)
	fb = append(fb, mustRecord(t, map[string]any{"meta": 1})...)
	fb = append(fb, mustRecord(t, map[string]any{"log": "fluent-bit"})...)
	b.AppendRaw(fb)
	data := b.Bytes()

	var ix Index
	n, err := ValidateIndexed(data, &ix)
	if err != nil || n != 51 {
		t.Fatalf("ValidateIndexed = %d, %v", n, err)
	}
	s := Stream{Tag: "t", Data: data, Len: n, Index: &ix}
	rd := s.Reader()
	if rd.ends == nil {
		t.Fatal("the Reader did not take the index")
	}
	sameEntries(t, rd, NewReader(data))

	// A filter's new Data with the old Index: the index is ignored.
	other := append([]byte(nil), data[:len(data)-len(fb)]...)
	stale := Stream{Tag: "t", Data: other, Len: 50, Index: &ix}
	if rd := stale.Reader(); rd.ends != nil {
		t.Fatal("a Reader took an index built over other bytes")
	}
	sameEntries(t, stale.Reader(), NewReader(other))

	// Data cut short in place, same start: also ignored.
	short := Stream{Data: data[:len(data)-1], Index: &ix}
	if rd := short.Reader(); rd.ends != nil {
		t.Fatal("a Reader took an index built over longer bytes")
	}
}

// TestValidateIndexedLimits: a run that fails validation, and one of more
// entries than an index holds, leave no index but count as Validate does.
func TestValidateIndexedLimits(t *testing.T) {
	var b Builder
	rec := mustRecord(t, map[string]any{})
	for i := 0; i < maxIndexed+1; i++ {
		b.Append(1, rec)
	}
	var ix Index
	n, err := ValidateIndexed(b.Bytes(), &ix)
	if err != nil || n != maxIndexed+1 {
		t.Fatalf("ValidateIndexed = %d, %v", n, err)
	}
	if ix.covers(b.Bytes()) {
		t.Error("an index of more than maxIndexed entries was kept")
	}
	small := b.Bytes()[:len(b.Bytes())/(maxIndexed+1)] // one entry
	if n, err := ValidateIndexed(small, &ix); err != nil || n != 1 || cap(ix.ends) > keptIndexed {
		t.Errorf("after a large message, a small one: %d, %v, room for %d entries kept", n, err, cap(ix.ends))
	}
	bad := append(append([]byte(nil), b.Bytes()[:20]...), 0xc1)
	wantN, wantErr := Validate(bad)
	n, err = ValidateIndexed(bad, &ix)
	if n != wantN || (err == nil) != (wantErr == nil) || ix.covers(bad) {
		t.Errorf("ValidateIndexed on bad data = %d, %v (Validate %d, %v), index kept %v", n, err, wantN, wantErr, ix.covers(bad))
	}
}
