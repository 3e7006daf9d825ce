package forward

import "github.com/sluice-log/sluice/internal/engine"

// BoundAddr returns the address of the first forward input of e once it
// listens, or "" before. Tests use it with port 0.
func BoundAddr(e *engine.Engine) string {
	for _, p := range e.Inputs() {
		if in, ok := p.(*Input); ok {
			if a := in.bound.Load(); a != nil {
				return *a
			}
		}
	}
	return ""
}
