package forward

import (
	"math"
	"time"
)

// phiDetector is the φ accrual failure detector (Hayashibara et al., 2004)
// that Fluentd's out_forward uses: heartbeat intervals are taken to be
// normally distributed, and φ(t) = -log10(P(the next heartbeat comes later
// than t)) grows as silence lasts. Guarded by its node's mutex.
type phiDetector struct {
	last      time.Time
	intervals []float64 // seconds, a ring of the latest samples
	next      int
	sum, sq   float64
}

// phiSamples is how many intervals the detector remembers.
const phiSamples = 1000

func newPhi() *phiDetector { return &phiDetector{intervals: make([]float64, 0, phiSamples)} }

func (p *phiDetector) add(now time.Time) {
	if !p.last.IsZero() {
		iv := now.Sub(p.last).Seconds()
		if len(p.intervals) < phiSamples {
			p.intervals = append(p.intervals, iv)
		} else {
			old := p.intervals[p.next]
			p.sum -= old
			p.sq -= old * old
			p.intervals[p.next] = iv
			p.next = (p.next + 1) % phiSamples
		}
		p.sum += iv
		p.sq += iv * iv
	}
	p.last = now
}

// phi returns φ at now; 0 until there are intervals to judge by.
func (p *phiDetector) phi(now time.Time) float64 {
	n := float64(len(p.intervals))
	if n == 0 || p.last.IsZero() {
		return 0
	}
	mean := p.sum / n
	variance := p.sq/n - mean*mean
	// A floor on the deviation keeps perfectly regular heartbeats from
	// making φ explode on the first late packet.
	std := math.Max(math.Sqrt(math.Max(variance, 0)), mean/4)
	if std == 0 {
		std = 0.1
	}
	t := now.Sub(p.last).Seconds()
	later := 0.5 * math.Erfc((t-mean)/(std*math.Sqrt2))
	if later <= 0 {
		return math.Inf(1)
	}
	return -math.Log10(later)
}
