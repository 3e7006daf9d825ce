package kafka_test

import (
	"testing"

	"go.uber.org/goleak"

	_ "github.com/sluice-log/sluice/internal/plugins/all"
)

// TestMain fails the package's tests when one leaves a goroutine running.
// sarama's metrics library starts one ticker for the process, on purpose.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}
