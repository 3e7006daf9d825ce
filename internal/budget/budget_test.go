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
