package core_test

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-log/sluice/internal/plugintest"
)

// TestCopyIgnoreIfPrevSuccess: a <store ignore_if_prev_success> takes the
// events only when the store before it failed (a fallback), and, as in
// Fluentd, a skipped store does not count as a success for the next one.
func TestCopyIgnoreIfPrevSuccess(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<match **>
  @type copy
  <store ignore_error>
    @type capture
    name primary
    fail 1
  </store>
  <store ignore_if_prev_success>
    @type capture
    name fallback
  </store>
  <store ignore_if_prev_success>
    @type capture
    name third
  </store>
</match>`)
	plugintest.Start(t, e)
	ctx := context.Background()
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "a", map[string]any{"n": 1}))) // primary fails
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "a", map[string]any{"n": 2}))) // primary takes it
	counts := func(name string) int { return len(plugintest.Captured(name)) }
	// 1: primary fails, fallback takes it, third is skipped (fallback succeeded).
	// 2: primary takes it, fallback is skipped, third runs (a skip is no success).
	if counts("primary") != 1 || counts("fallback") != 1 || counts("third") != 1 {
		t.Errorf("primary %d, fallback %d, third %d; want 1 each", counts("primary"), counts("fallback"), counts("third"))
	}
	if got := plugintest.Captured("third"); len(got) == 1 && got[0].Record["n"] != int64(2) {
		t.Errorf("third got %v, want event 2", got[0].Record)
	}
	_, err := plugintest.BuildErr("<match **>\n  @type copy\n  <store ignore_if_prev_success>\n    @type null\n  </store>\n</match>")
	if err == nil || !strings.Contains(err.Error(), "needs a <store> before it") {
		t.Errorf("first store with ignore_if_prev_success: %v", err)
	}
}
