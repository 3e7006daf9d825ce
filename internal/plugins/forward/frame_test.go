package forward

import (
	"errors"
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
)

// scanInSteps feeds b to a scanner in pieces of the given sizes, as reads
// would, and returns what it found.
func scanInSteps(b []byte, steps []int) (int, error) {
	var s frameScanner
	have := 0
	for i := 0; ; i++ {
		step := len(b)
		if i < len(steps) && steps[i] > 0 {
			step = steps[i]
		}
		have = min(len(b), have+step)
		n, err := s.scan(b[:have])
		if err != nil || n > 0 || have == len(b) {
			return n, err
		}
	}
}

// The scanner frames a message where event.Skip (msgp's skipper) does,
// however the bytes are split over reads.
func TestFrameScannerAgreesWithSkip(t *testing.T) {
	var b event.Builder
	rec, _ := event.EncodeRecord(map[string]any{"log": "hello", "n": 1, "nested": map[string]any{"a": []any{1, "x", nil, 2.5}}})
	for i := 0; i < 50; i++ {
		b.Append(event.Time(int64(i)*1e9+7), rec)
	}
	packed := msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 2), "app"), b.Bytes())
	message := append(msgp.AppendInt64(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "app"), 1700000000), rec...)
	forwardMode := append(msgp.AppendArrayHeader(msgp.AppendString(msgp.AppendArrayHeader(nil, 2), "app"), 50), b.Bytes()...)
	for name, msg := range map[string][]byte{"packed": packed, "message": message, "forward": forwardMode} {
		for _, steps := range [][]int{nil, {1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {3, 7, 100}, {len(msg) - 1}} {
			n, err := scanInSteps(append(msg, 0xc0), repeat(steps, len(msg)+1))
			if err != nil || n != len(msg) {
				t.Errorf("%s in steps %v: %d, %v; want %d", name, steps, n, err, len(msg))
			}
		}
		if n, err := scanInSteps(msg[:len(msg)-1], nil); n != 0 || err != nil {
			t.Errorf("%s cut short: %d, %v; want incomplete", name, n, err)
		}
	}
	deep := make([]byte, 0, 2*maxNesting)
	for i := 0; i <= maxNesting; i++ {
		deep = append(deep, 0x91)
	}
	if _, err := scanInSteps(append(deep, 0xc0), nil); !errors.Is(err, errNesting) {
		t.Errorf("nesting past %d: %v", maxNesting, err)
	}
	if _, err := scanInSteps([]byte{0x92, 0xc1}, nil); err == nil {
		t.Error("the reserved byte 0xc1 was framed")
	}
}

// repeat cycles steps until they cover n bytes; nil stays nil.
func repeat(steps []int, n int) []int {
	if len(steps) == 0 {
		return nil
	}
	var out []int
	for sum, i := 0, 0; sum < n; i++ {
		out = append(out, steps[i%len(steps)])
		sum += steps[i%len(steps)]
	}
	return out
}

// FuzzFrameScanner holds the scanner to msgp's skipper on any bytes split
// anywhere: the same end for a whole object, incomplete for a cut one.
func FuzzFrameScanner(f *testing.F) {
	f.Add([]byte{0x93, 0xa3, 'a', 'p', 'p', 0xd7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x80}, 3)
	f.Add([]byte{0xdd, 0, 0, 0, 2, 0xc4, 1, 'x', 0xc9, 0, 0, 0, 1, 5, 'y'}, 1)
	f.Add([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}, 2)
	f.Fuzz(func(t *testing.T, b []byte, step int) {
		if step <= 0 || step > len(b)+1 {
			step = 1
		}
		n, err := scanInSteps(b, []int{step})
		rest, serr := msgp.Skip(b)
		switch {
		case serr == nil && err == nil && n != len(b)-len(rest):
			// A message msgp frames completely, the scanner must too,
			// unless it nests past the scanner's bound.
			t.Fatalf("scanner ends at %d, msgp at %d", n, len(b)-len(rest))
		case serr == nil && err != nil && !errors.Is(err, errNesting):
			t.Fatalf("scanner refused what msgp frames: %v", err)
		case errors.Is(serr, msgp.ErrShortBytes) && n != 0:
			t.Fatalf("scanner framed %d bytes of an object msgp finds cut short", n)
		case serr != nil && !errors.Is(serr, msgp.ErrShortBytes) && n > 0:
			if _, err := msgp.Skip(b[:n]); err == nil {
				return // msgp failed later, on bytes after the object
			}
			t.Fatalf("scanner framed %d bytes msgp refuses (%v)", n, serr)
		}
	})
}

// What the scanner has read it never reads again: a message arriving a
// little at a time costs linear time (re-reading it from the start on
// every read cost 12 s of CPU for 8 MiB at 0.5 MB/s). Bytes already
// scanned are overwritten here with a byte msgpack forbids; a scanner
// that looked at them again would fail.
func TestFrameScannerReadsEachByteOnce(t *testing.T) {
	var b event.Builder
	rec, _ := event.EncodeRecord(map[string]any{"log": "x", "n": 12345})
	for i := 0; i < 1000; i++ {
		b.Append(event.Time(int64(i)*1e9), rec)
	}
	msg := append(msgp.AppendArrayHeader(msgp.AppendString(msgp.AppendArrayHeader(nil, 2), "app"), 1000), b.Bytes()...)
	work := make([]byte, 0, len(msg))
	var s frameScanner
	for have := 0; have < len(msg); {
		have = min(len(msg), have+100)
		work = append(work, msg[len(work):have]...)
		n, err := s.scan(work)
		if err != nil {
			t.Fatalf("at %d bytes: %v (the scanner read bytes it had read before)", have, err)
		}
		if n > 0 {
			if n != len(msg) || have != len(msg) {
				t.Fatalf("framed %d of %d bytes with %d received", n, len(msg), have)
			}
			return
		}
		for i := 0; i < s.off; i++ {
			work[i] = 0xc1
		}
	}
	t.Fatal("the message was never framed")
}
