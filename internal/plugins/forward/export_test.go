package forward

import "time"

// SetSlowSenderLimits shortens the slow-sender bounds for a test and
// returns what restores them.
func SetSlowSenderLimits(idle, grace time.Duration, rate float64) (restore func()) {
	oldIdle, oldGrace, oldRate := partialIdle, slowMessageGrace, slowMessageRate
	partialIdle, slowMessageGrace, slowMessageRate = idle, grace, rate
	return func() { partialIdle, slowMessageGrace, slowMessageRate = oldIdle, oldGrace, oldRate }
}

// ReceiveBufferUsed is what the input's connections hold of
// receive_buffer_limit now.
func ReceiveBufferUsed(in *Input) int64 { return in.budget.Used() }

// SetDiscoveryCheckInterval shortens how often file sources are looked
// at and returns what restores it.
func SetDiscoveryCheckInterval(d time.Duration) (restore func()) {
	old := fileCheckInterval
	fileCheckInterval = d
	return func() { fileCheckInterval = old }
}
