package backoff

import (
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	fluentd := Exponential{Initial: time.Second, Factor: 2, Max: 30 * time.Second, Low: 0.875, High: 1.125}
	for _, c := range []struct {
		e       Exponential
		attempt int
		r       float64
		want    time.Duration
	}{
		{fluentd, 1, 0.5, time.Second},                                      // no growth on the first retry, r=0.5 is the middle
		{fluentd, 3, 0.5, 4 * time.Second},                                  // 1s * 2^2
		{fluentd, 3, 0, 3500 * time.Millisecond},                            // the low end of the spread
		{fluentd, 10, 0.5, 30 * time.Second},                                // capped
		{fluentd, 10, 0.999999, 33749992500 * time.Nanosecond},              // the cap is spread too
		{Exponential{Initial: time.Second, Factor: 1}, 7, 0.3, time.Second}, // periodic, no scaling
		{Exponential{Initial: time.Second, Factor: 2}, 200, 0, Ceiling},     // overflow stays bounded
		{Exponential{Initial: 300 * time.Millisecond, Factor: 2, Max: 5 * time.Second, Low: 0.5, High: 1}, 2, 0, 300 * time.Millisecond},
	} {
		if got := c.e.Delay(c.attempt, c.r); got != c.want {
			t.Errorf("%+v.Delay(%d, %v) = %v, want %v", c.e, c.attempt, c.r, got, c.want)
		}
	}
}
