package transport

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// TestConnSetWakesReads: WakeAll ends a read in progress, and a read on a
// connection added after it ends at once.
func TestConnSetWakesReads(t *testing.T) {
	var set ConnSet
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	set.Add(a)
	done := make(chan error, 1)
	go func() { _, err := a.Read(make([]byte, 1)); done <- err }()
	set.WakeAll()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("the woken read ended with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("WakeAll did not end the read")
	}
	late, other := net.Pipe()
	defer late.Close()
	defer other.Close()
	if n := set.Add(late); n != 2 {
		t.Errorf("%d connections open, want 2", n)
	}
	if _, err := late.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a read on a connection added after WakeAll: %v", err)
	}
}
