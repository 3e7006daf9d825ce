// Package budget bounds the memory that many connections together may hold.
package budget

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"
)

// ErrWait reports a connection that waited too long for buffer space.
var ErrWait = errors.New("no buffer space for this connection within its patience")

// Space is a bound on bytes held, with a signal for those waiting for
// room. It has no lock of its own: its owner calls it under the lock that
// also guards what the bytes are for (the output runtime's, around its
// chunks and overflow_action). Bytes is the same bound for owners with no
// such lock. The zero value is not usable; see NewSpace.
type Space struct {
	limit int64
	used  int64
	freed chan struct{} // closed when bytes are released
}

// NewSpace returns a bound of limit bytes.
func NewSpace(limit int64) Space { return Space{limit: limit, freed: make(chan struct{})} }

// Fits reports whether n more bytes stay within the limit.
func (s *Space) Fits(n int64) bool { return s.used+n <= s.limit }

// Add counts n bytes as held (n may be negative, as a chunk's stored size
// shrinks when it is compressed).
func (s *Space) Add(n int64) { s.used += n }

// Release gives n bytes back and wakes every waiter.
func (s *Space) Release(n int64) {
	s.used -= n
	close(s.freed)
	s.freed = make(chan struct{})
}

// Freed returns a channel closed at the next Release: read it under the
// owner's lock, wait on it after unlocking.
func (s *Space) Freed() <-chan struct{} { return s.freed }

// Used returns the bytes held.
func (s *Space) Used() int64 { return s.used }

// Limit returns the bound.
func (s *Space) Limit() int64 { return s.limit }

// Bytes bounds the memory all connections of an input spend on messages
// larger than their base buffer. A connection that would pass the bound
// stops reading (TCP backpressure) until another frees space; one that
// waits longer than its patience is closed, so that connections holding
// halves of messages cannot wait on each other for ever.
type Bytes struct {
	mu    sync.Mutex
	space Space // guarded by mu
}

// New returns a budget of limit bytes.
func New(limit int64) *Bytes { return &Bytes{space: NewSpace(limit)} }

// Acquire takes n bytes, waiting up to patience for them.
func (b *Bytes) Acquire(ctx context.Context, n int64, patience time.Duration) error {
	var timeout <-chan time.Time
	for {
		b.mu.Lock()
		// With nothing held anywhere, one message may take what it needs.
		if b.space.Fits(n) || b.space.Used() == 0 {
			b.space.Add(n)
			b.mu.Unlock()
			return nil
		}
		ch := b.space.Freed()
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
	b.space.Release(n)
	b.mu.Unlock()
}

// Used returns the bytes held now.
func (b *Bytes) Used() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.space.Used()
}

// Refused wraps reserve's error in ReadAll's: the memory was refused, the
// bytes read were not at fault.
type Refused struct{ Err error }

func (e *Refused) Error() string { return "memory refused: " + e.Err.Error() }
func (e *Refused) Unwrap() error { return e.Err }

// ErrTooLarge reports a read past ReadAll's limit.
var ErrTooLarge = errors.New("more bytes than the limit")

// minRead is the first size ReadAll grows an empty buffer to.
const minRead = 64 << 10

// ReadAll reads r to its end into buf's memory, as io.ReadAll does, but
// asks reserve for every growth of the buffer before making it (a budget's
// Acquire, say), and stops with ErrTooLarge past limit bytes: what a
// decompressor inflates is bounded before it is allocated, not after. It
// returns the bytes read and how many bytes reserve granted, also on an
// error: the caller gives those back when done with the buffer. An error
// of reserve's comes back as a *Refused. A nil reserve grants everything.
func ReadAll(r io.Reader, buf []byte, limit int, reserve func(n int) error) (out []byte, granted int, err error) {
	out = buf[:0]
	for {
		if len(out) == cap(out) {
			grow := min(max(cap(out), minRead), limit+1-cap(out))
			if grow <= 0 {
				return out, granted, ErrTooLarge
			}
			if reserve != nil {
				if err := reserve(grow); err != nil {
					return out, granted, &Refused{Err: err}
				}
			}
			granted += grow
			grown := make([]byte, len(out), cap(out)+grow)
			copy(grown, out)
			out = grown
		}
		n, err := r.Read(out[len(out):cap(out)])
		out = out[:len(out)+n]
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, granted, err
		}
	}
	if len(out) > limit {
		return out, granted, ErrTooLarge
	}
	return out, granted, nil
}
