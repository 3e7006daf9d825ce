package lograte

import (
	"sync"
	"sync/atomic"
	"testing"
)

// TestOnceAcrossGoroutines: many goroutines asking at once get one yes.
func TestOnceAcrossGoroutines(t *testing.T) {
	var l Limiter
	var yes atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				if l.Allow() {
					yes.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if yes.Load() != 1 {
		t.Errorf("%d warnings let through in one interval, want 1", yes.Load())
	}
}
