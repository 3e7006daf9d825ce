package forward

import (
	"testing"
	"time"
)

func TestPhiDetector(t *testing.T) {
	p := newPhi()
	start := time.Unix(1000, 0)
	for i := 0; i < 20; i++ {
		p.add(start.Add(time.Duration(i) * time.Second))
	}
	last := start.Add(19 * time.Second)
	if phi := p.phi(last.Add(time.Second)); phi > 1 {
		t.Errorf("phi one interval after the last beat = %.2f, want small", phi)
	}
	if phi := p.phi(last.Add(10 * time.Second)); phi < 16 {
		t.Errorf("phi after 10 missed beats = %.2f, want above the default threshold 16", phi)
	}
	if phi := p.phi(last.Add(2 * time.Second)); phi >= p.phi(last.Add(4*time.Second)) {
		t.Error("phi does not grow with silence")
	}
}
