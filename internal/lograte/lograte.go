// Package lograte lets a repeated warning through once per interval, so
// that a flood of bad input is counted in full without flooding the log.
package lograte

import (
	"sync/atomic"
	"time"
)

// Interval is how often a Limiter lets a warning through.
const Interval = 10 * time.Second

// Limiter is safe for concurrent use; its zero value is ready.
type Limiter struct{ last atomic.Int64 }

// Allow reports whether a warning may be logged now.
func (l *Limiter) Allow() bool {
	now := time.Now().UnixNano()
	last := l.last.Load()
	return now-last >= int64(Interval) && l.last.CompareAndSwap(last, now)
}
