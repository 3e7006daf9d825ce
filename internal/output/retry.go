package output

import (
	"math"
	"math/rand/v2"
	"time"
)

type retryState struct {
	steps int       // consecutive failures
	start time.Time // first failure of the current run
	next  time.Time // no write before this
}

// secondaryDueLocked reports whether retries have run long enough
// (retry_secondary_threshold of retry_timeout or of retry_max_times) to
// try the secondary.
func (r *Runtime) secondaryDueLocked(now time.Time) bool {
	if r.secondary == nil || r.retry.steps == 0 {
		return false
	}
	if r.cfg.RetryMaxTimes >= 0 && float64(r.retry.steps) >= r.cfg.RetrySecondaryThreshold*float64(r.cfg.RetryMaxTimes) {
		return true
	}
	return now.Sub(r.retry.start) >= time.Duration(r.cfg.RetrySecondaryThreshold*float64(r.cfg.RetryTimeout))
}

func (r *Runtime) giveUpLocked(now time.Time) bool {
	if r.cfg.RetryForever {
		return false
	}
	if r.cfg.RetryMaxTimes >= 0 && r.retry.steps > r.cfg.RetryMaxTimes {
		return true
	}
	return now.Sub(r.retry.start) >= r.cfg.RetryTimeout
}

// backoffLocked is Fluentd's retry interval: retry_wait * base^(steps-1)
// (or retry_wait for periodic), capped by retry_max_interval, and spread
// by ±12.5% when retry_randomize is on.
func (r *Runtime) backoffLocked() time.Duration {
	wait := float64(r.cfg.RetryWait)
	if r.cfg.RetryType == "exponential_backoff" {
		wait *= math.Pow(r.cfg.RetryExponentialBackoffBase, float64(r.retry.steps-1))
	}
	if r.cfg.RetryMaxInterval > 0 && wait > float64(r.cfg.RetryMaxInterval) {
		wait = float64(r.cfg.RetryMaxInterval)
	}
	if r.cfg.RetryRandomize {
		wait *= 0.875 + rand.Float64()*0.25
	}
	if wait > float64(365*24*time.Hour) {
		wait = float64(365 * 24 * time.Hour)
	}
	return time.Duration(wait)
}
