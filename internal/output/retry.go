package output

import (
	"time"

	"github.com/sluice-log/sluice/internal/backoff"
)

// Retries are per chunk, as Fluent Bit keeps them per task: one chunk's
// failures never move another chunk's clock, so a poison chunk cannot send
// an innocent one to the backup directory, and a chunk that waits out its
// backoff does not hold up the chunks behind it.

// chunkRetry is one chunk's retry state. The zero value is a chunk that
// has not failed.
type chunkRetry struct {
	steps     int       // failed writes so far
	start     time.Time // the first failure
	next      time.Time // no write before this
	secondary bool      // further writes go to <secondary>
}

// failure is what a failed write tells the retry decision.
type failure struct {
	permanent   bool          // plugin.Permanent: retrying cannot help
	onSecondary bool          // the write that failed went to <secondary>
	retryAfter  time.Duration // the destination asked to wait at least this long
}

// verdict is what becomes of a chunk after a failed write.
type verdict int

const (
	// retryLater: write it again at its next time, to <secondary> when
	// its secondary flag is set.
	retryLater verdict = iota
	// giveUp: the chunk cannot be delivered; it goes to the backup
	// directory.
	giveUp
)

// retryPolicy is the <buffer> section's retry parameters and whether the
// output has a <secondary>.
type retryPolicy struct {
	forever            bool
	maxTimes           int // < 0: unset, bounded by timeout only
	timeout            time.Duration
	secondaryThreshold float64
	hasSecondary       bool
	backoff            backoff.Exponential
}

func newRetryPolicy(c BufferConfig, hasSecondary bool) retryPolicy {
	return retryPolicy{
		forever: c.RetryForever, maxTimes: c.RetryMaxTimes, timeout: c.RetryTimeout,
		secondaryThreshold: c.RetrySecondaryThreshold, hasSecondary: hasSecondary,
		backoff: fluentdBackoff(c),
	}
}

// fluentdBackoff is Fluentd's retry interval: retry_wait *
// base^(steps-1) (retry_wait for periodic), capped by retry_max_interval,
// and spread by ±12.5% when retry_randomize is on.
func fluentdBackoff(c BufferConfig) backoff.Exponential {
	b := backoff.Exponential{Initial: c.RetryWait, Factor: 1, Max: c.RetryMaxInterval}
	if c.RetryType == "exponential_backoff" {
		b.Factor = c.RetryExponentialBackoffBase
	}
	if c.RetryRandomize {
		b.Low, b.High = 0.875, 1.125
	}
	return b
}

// decide is the whole retry decision for one failed write of a chunk in
// state st at now: the chunk's next state and its verdict. jitter, in
// [0, 1), spreads the backoff when retry_randomize is on. It is a pure
// function of its arguments.
//
// As in Fluentd: a permanent refusal goes to <secondary> at once when
// there is one and it was not the secondary that refused, and is given up
// otherwise; any other failure waits retry_wait * base^(steps-1) (capped by
// retry_max_interval, at least what the destination asked for) unless the
// chunk has failed more than retry_max_times or for longer than
// retry_timeout; after retry_secondary_threshold of either, further writes
// go to <secondary>.
func (p retryPolicy) decide(st chunkRetry, f failure, now time.Time, jitter float64) (chunkRetry, verdict) {
	if st.steps == 0 {
		st.start = now
	}
	st.steps++
	if f.permanent {
		if p.hasSecondary && !f.onSecondary {
			st.secondary, st.next = true, now
			return st, retryLater
		}
		return st, giveUp
	}
	if !p.forever && (p.maxTimes >= 0 && st.steps > p.maxTimes || now.Sub(st.start) >= p.timeout) {
		return st, giveUp
	}
	wait := max(p.backoff.Delay(st.steps, jitter), f.retryAfter)
	st.next = now.Add(wait)
	if p.hasSecondary && !st.secondary {
		st.secondary = p.maxTimes >= 0 && float64(st.steps) >= p.secondaryThreshold*float64(p.maxTimes) ||
			st.next.Sub(st.start) >= time.Duration(p.secondaryThreshold*float64(p.timeout))
	}
	return st, retryLater
}
