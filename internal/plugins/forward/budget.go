package forward

import (
	"context"
	"errors"
	"sync"
	"time"
)

// errBudgetWait reports a connection that waited too long for buffer space.
var errBudgetWait = errors.New("receive_buffer_limit: no buffer space for this connection's message")

// budget bounds the memory all connections of an input spend on messages
// larger than their base buffer. A connection that would pass the bound
// stops reading (TCP backpressure) until another frees space; one that
// waits longer than its patience is closed, so that connections holding
// halves of messages cannot wait on each other for ever.
type budget struct {
	limit int64

	mu    sync.Mutex
	used  int64         // guarded by mu
	freed chan struct{} // guarded by mu; closed when space is released
}

func newBudget(limit int64) *budget { return &budget{limit: limit, freed: make(chan struct{})} }

func (b *budget) acquire(ctx context.Context, n int64, patience time.Duration) error {
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
			return errBudgetWait
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (b *budget) release(n int64) {
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
func (b *budget) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
