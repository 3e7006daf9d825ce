// Package budget bounds the memory that many connections together may hold.
package budget

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrWait reports a connection that waited too long for buffer space.
var ErrWait = errors.New("no buffer space for this connection within its patience")

// Bytes bounds the memory all connections of an input spend on messages
// larger than their base buffer. A connection that would pass the bound
// stops reading (TCP backpressure) until another frees space; one that
// waits longer than its patience is closed, so that connections holding
// halves of messages cannot wait on each other for ever.
type Bytes struct {
	limit int64

	mu    sync.Mutex
	used  int64         // guarded by mu
	freed chan struct{} // guarded by mu; closed when space is released
}

// New returns a budget of limit bytes.
func New(limit int64) *Bytes { return &Bytes{limit: limit, freed: make(chan struct{})} }

// Acquire takes n bytes, waiting up to patience for them.
func (b *Bytes) Acquire(ctx context.Context, n int64, patience time.Duration) error {
	var timeout <-chan time.Time
	for {
		b.mu.Lock()
		// With nothing held anywhere, one message may take what it needs.
		if b.used+n <= b.limit || b.used == 0 {
			b.used += n
			b.mu.Unlock()
			return nil
		}
		ch := b.freed
		b.mu.Unlock()
		if timeout == nil {
			t := time.NewTimer(patience)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-ch:
		case <-timeout:
			return ErrWait
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Release gives n bytes back.
func (b *Bytes) Release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
	b.mu.Unlock()
}

// Used returns the bytes held now.
func (b *Bytes) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
