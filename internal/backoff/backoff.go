// Package backoff computes the wait before each retry, one way for every
// retry loop in Sluice: the buffer's retries of a chunk (<buffer>
// retry_*) and an output's retries within one write (the Kinesis batch
// calls). Cloud SDKs' own retries are off (awsauth), so that no request is
// retried by two loops at once.
package backoff

import (
	"math"
	"time"
)

// Ceiling bounds every wait, whatever the parameters: a year, far past any
// retry_timeout, and far from overflowing a time.Duration.
const Ceiling = 365 * 24 * time.Hour

// Exponential waits Initial * Factor^(attempt-1) before attempt number
// attempt+1 (the first retry is attempt 1), capped at Max, then scaled by
// a random factor in [Low, High).
type Exponential struct {
	Initial time.Duration
	// Factor is the growth per attempt; 1 waits Initial every time
	// (Fluentd's periodic retry_type).
	Factor float64
	// Max caps the wait before it is scaled; 0 leaves it uncapped.
	Max time.Duration
	// Low and High bound the random scaling, so that clients that failed
	// together do not retry together; both zero mean no scaling.
	Low, High float64
}

// Delay is the wait after the given number of failed attempts, with r in
// [0, 1) choosing the scaling. It is a pure function of its arguments.
func (e Exponential) Delay(attempt int, r float64) time.Duration {
	wait := float64(e.Initial)
	if e.Factor > 0 && attempt > 1 {
		wait *= math.Pow(e.Factor, float64(attempt-1))
	}
	if e.Max > 0 && wait > float64(e.Max) {
		wait = float64(e.Max)
	}
	if e.Low != 0 || e.High != 0 {
		wait *= e.Low + r*(e.High-e.Low)
	}
	if wait > float64(Ceiling) || math.IsNaN(wait) {
		wait = float64(Ceiling)
	}
	return time.Duration(wait)
}
