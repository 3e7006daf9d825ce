package netin

import "time"

// SetBudgetPatience shortens how long a connection waits for its share
// of receive_buffer_limit and returns what restores it.
func SetBudgetPatience(d time.Duration) (restore func()) {
	old := budgetPatience
	budgetPatience = d
	return func() { budgetPatience = old }
}

// ReceiveBufferUsed is what a tcp source's connections hold of
// receive_buffer_limit now.
func ReceiveBufferUsed(in *TCP) int64 { return in.srv.budget.Used() }
