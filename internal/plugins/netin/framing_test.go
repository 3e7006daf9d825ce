package netin

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// feed splits data given in pieces of step bytes, keeping what split
// leaves as a caller does, and returns the messages and the oversized
// count.
func feed(f *framer, data []byte, step int) (msgs []string, oversized int, err error) {
	var buf []byte
	for i := 0; i < len(data); i += step {
		buf = append(buf, data[i:min(len(data), i+step)]...)
		used, over, e := f.split(buf, func(m []byte) { msgs = append(msgs, string(m)) })
		oversized += over
		if e != nil {
			return msgs, oversized, e
		}
		buf = buf[used:]
		if len(buf) > f.pending() {
			return msgs, oversized, fmt.Errorf("held %d bytes, more than the bound %d", len(buf), f.pending())
		}
	}
	return msgs, oversized, nil
}

func TestFramerDelimited(t *testing.T) {
	long := strings.Repeat("x", 40)
	data := []byte("a\nbb\n\n" + long + "\nccc\r\n" + long + long + "\nlast")
	for step := 1; step <= len(data); step++ {
		f := &framer{delim: []byte("\n"), limit: 39}
		msgs, over, err := feed(f, data, step)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"a", "bb", "", "ccc\r"}
		if fmt.Sprint(msgs) != fmt.Sprint(want) || over != 2 {
			t.Fatalf("step %d: %q, %d oversized; want %q, 2", step, msgs, over, want)
		}
	}
	// A two-byte delimiter split across reads, and a message of exactly
	// the limit.
	for step := 1; step < 8; step++ {
		f := &framer{delim: []byte("\r\n"), limit: 4}
		msgs, over, err := feed(f, []byte("abcd\r\nef\r\nabcde\r\ng\r\n"), step)
		if err != nil || fmt.Sprint(msgs) != "[abcd ef g]" || over != 1 {
			t.Fatalf("step %d: %q %d %v", step, msgs, over, err)
		}
	}
}

func TestFramerOctetCounted(t *testing.T) {
	data := []byte("5 hello11 hello world\n3 abc\n13 <13>1 - - x y\n40 " + strings.Repeat("z", 40) + "2 ok")
	for step := 1; step <= len(data); step++ {
		f := &framer{octetCount: true, delim: []byte("\n"), limit: 20}
		msgs, over, err := feed(f, data, step)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"hello", "hello world", "abc", "<13>1 - - x y", "ok"}
		if fmt.Sprint(msgs) != fmt.Sprint(want) || over != 1 {
			t.Fatalf("step %d: %q, %d oversized; want %q, 1", step, msgs, over, want)
		}
	}
	for _, bad := range []string{"abc def", "12x34 hello", "1234567890123 x", "-1 x"} {
		f := &framer{octetCount: true, delim: []byte("\n"), limit: 20}
		_, _, err := feed(f, []byte(bad), len(bad))
		if !errors.Is(err, errBadCount) {
			t.Errorf("%q: %v, want a framing error", bad, err)
		}
	}
}

// FuzzFramer: whatever the bytes and however they are cut into reads,
// the framer yields the same messages, none longer than the limit, and
// holds no more than its bound between reads.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("a\nb\n"), false, uint8(3), uint8(1))
	f.Add([]byte("3 abc4 defg"), true, uint8(3), uint8(2))
	f.Add([]byte("99999 x\n"), true, uint8(8), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, counted bool, limit, step uint8) {
		newFramer := func() *framer {
			return &framer{octetCount: counted, delim: []byte("\r\n"), limit: int(limit) + 1}
		}
		whole, overWhole, errWhole := feed(newFramer(), data, max(1, len(data)))
		cut, overCut, errCut := feed(newFramer(), data, int(step)+1)
		if (errWhole == nil) != (errCut == nil) {
			t.Fatalf("errors differ: %v / %v", errWhole, errCut)
		}
		if errWhole != nil || errCut != nil {
			return // a framing error ends the stream; where exactly depends on the reads
		}
		if fmt.Sprint(whole) != fmt.Sprint(cut) || overWhole != overCut {
			t.Fatalf("whole %q (%d oversized) vs in pieces %q (%d)", whole, overWhole, cut, overCut)
		}
		for _, m := range whole {
			if len(m) > int(limit)+1 {
				t.Fatalf("message of %d bytes past the limit %d", len(m), int(limit)+1)
			}
		}
	})
}

// FuzzPriority: a <PRI> is read only when it is one the tag tables hold,
// and the rest is what follows it.
func FuzzPriority(f *testing.F) {
	for _, s := range []string{"<0>", "<191>x", "<192>x", "<13", "<>", "<0013>", "13>"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		pri, rest, ok := priority(msg)
		if !ok {
			return
		}
		if pri < 0 || pri > 191 {
			t.Fatalf("priority %d from %q", pri, msg)
		}
		if len(rest) >= len(msg) || string(msg[len(msg)-len(rest):]) != string(rest) {
			t.Fatalf("rest %q is not the end of %q", rest, msg)
		}
	})
}
