package event

import (
	"strconv"
	"testing"
)

// TestEventTimeDecodedAlike: an EventTime read as an entry's time and
// rendered as a record value gives the same time, in both of its
// encodings, nanoseconds past a second included.
func TestEventTimeDecodedAlike(t *testing.T) {
	body := []byte{0x65, 0x53, 0xf1, 0x00, 0x3b, 0x9a, 0xca, 0x05} // 1700000000 s, 1e9+5 ns
	for _, enc := range [][]byte{
		append([]byte{0xd7, 0x00}, body...),       // fixext8
		append([]byte{0xc7, 0x08, 0x00}, body...), // ext8
	} {
		tm, rest, err := ReadTime(enc)
		if err != nil || len(rest) != 0 {
			t.Fatalf("ReadTime(% x): %v", enc, err)
		}
		if tm != Time(1700000000e9+5) {
			t.Errorf("ReadTime(% x) = %d", enc, tm)
		}
		js, err := Value(enc).AppendJSON(nil)
		if err != nil {
			t.Fatal(err)
		}
		if want := strconv.FormatFloat(float64(tm)/1e9, 'f', -1, 64); string(js) != want {
			t.Errorf("AppendJSON(% x) = %s, want %s (the time ReadTime gives)", enc, js, want)
		}
	}
}
