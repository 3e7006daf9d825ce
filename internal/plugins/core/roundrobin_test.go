package core_test

import (
	"context"
	"testing"

	_ "github.com/sluice-log/sluice/internal/plugins/all"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// TestRoundRobinByWeight: streams go to the stores in turn, a store of
// weight 2 taking two turns of every three.
func TestRoundRobinByWeight(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<match **>
  @type roundrobin
  <store>
    @type capture
    name heavy
    weight 2
  </store>
  <store>
    @type capture
    name light
  </store>
</match>
`)
	plugintest.Start(t, e)
	for i := 0; i < 9; i++ {
		plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "rr", map[string]any{"i": i})))
	}
	if h, l := len(plugintest.Captured("heavy")), len(plugintest.Captured("light")); h != 6 || l != 3 {
		t.Errorf("heavy %d, light %d; want 6 and 3", h, l)
	}
	if _, err := plugintest.BuildErr("<match **>\n  @type roundrobin\n  <store>\n    @type null\n    weight 0\n  </store>\n</match>"); err == nil {
		t.Error("weight 0 was accepted")
	}
}
