package tail

import "time"

// SetNotifiedPoll sets the polls of watched files and returns what
// restores them.
func SetNotifiedPoll(min, max time.Duration) (restore func()) {
	oldMin, oldMax := minPoll, maxNotifiedPoll
	minPoll, maxNotifiedPoll = min, max
	return func() { minPoll, maxNotifiedPoll = oldMin, oldMax }
}
