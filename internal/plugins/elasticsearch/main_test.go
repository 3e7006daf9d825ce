package elasticsearch_test

import (
	"testing"

	"go.uber.org/goleak"

	_ "github.com/sluice-log/sluice/internal/plugins/all"
)

// TestMain fails the package's tests when one leaves a goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
