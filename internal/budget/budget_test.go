package budget

import (
	"bytes"
	"errors"
	"testing"
)

func TestReadAll(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 300<<10)
	for _, tc := range []struct {
		name    string
		limit   int
		allow   int // bytes reserve grants; -1 for any
		wantErr error
	}{
		{"fits", len(data), -1, nil},
		{"one byte over the limit", len(data) - 1, -1, ErrTooLarge},
		{"reserve refuses", len(data), 100 << 10, errFull},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked := 0
			out, granted, err := ReadAll(bytes.NewReader(data), nil, tc.limit, func(n int) error {
				if tc.allow >= 0 && asked+n > tc.allow {
					return errFull
				}
				asked += n
				return nil
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if granted != asked || cap(out) > granted {
				t.Errorf("granted %d, reserve said yes to %d, buffer holds %d: every byte of capacity must be reserved", granted, asked, cap(out))
			}
			if err == nil && !bytes.Equal(out, data) {
				t.Errorf("read %d bytes, want %d", len(out), len(data))
			}
			if granted > tc.limit+1 {
				t.Errorf("granted %d past the limit %d", granted, tc.limit)
			}
		})
	}
}

var errFull = errors.New("full")

// TestSpaceSignalsRelease: a channel taken from Freed before a Release
// closes at it, one taken after does not, and the bound follows Add and
// Release (Add may shrink what is held).
func TestSpaceSignalsRelease(t *testing.T) {
	s := NewSpace(100)
	s.Add(80)
	if s.Fits(21) || !s.Fits(20) {
		t.Fatalf("80 of 100 held: Fits(21)=%v Fits(20)=%v", s.Fits(21), s.Fits(20))
	}
	waiting := s.Freed()
	s.Add(-10) // a chunk compressed smaller than its events
	select {
	case <-waiting:
		t.Fatal("Add woke a waiter")
	default:
	}
	s.Release(30)
	select {
	case <-waiting:
	default:
		t.Fatal("Release did not wake a waiter")
	}
	select {
	case <-s.Freed():
		t.Fatal("a channel taken after the Release is already closed")
	default:
	}
	if s.Used() != 40 || !s.Fits(60) {
		t.Errorf("used %d", s.Used())
	}
}
