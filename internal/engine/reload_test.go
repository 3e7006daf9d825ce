package engine_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func reload(t *testing.T, e *engine.Engine, conf string) error {
	t.Helper()
	root, err := config.Parse("reload.conf", []byte(conf), nil)
	if err != nil {
		t.Fatal(err)
	}
	return e.Reload(root)
}

func runtimeOf(t *testing.T, e *engine.Engine, id string) any {
	t.Helper()
	for _, o := range e.Outputs() {
		if o.ID == id {
			return o.Runtime
		}
	}
	return nil
}

const reloadBase = `
<match keep.**>
  @type capture
  @id keep
  name keep
  <buffer>
    flush_interval 1h
  </buffer>
</match>
<match old.**>
  @type capture
  @id old
  name old
  <buffer>
    flush_interval 1h
  </buffer>
</match>
`

// TestReloadKeepsUnchangedOutputs: the unchanged output keeps its runtime
// and what it buffered; the removed one drains; the new route works at once.
func TestReloadKeepsUnchangedOutputs(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, reloadBase)
	stop := plugintest.Start(t, e)
	ctx := context.Background()
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "keep.a", map[string]any{"n": 1})))
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "old.a", map[string]any{"n": 2})))
	keepRT := runtimeOf(t, e, "keep")

	// A comment and a moved section change positions, not content.
	plugintest.Must(t, reload(t, e, `
# reloaded
<match new.**>
  @type capture
  @id new
  name new
</match>

<match keep.**>
  @type capture
  @id keep
  name keep
  <buffer>
    flush_interval 1h
  </buffer>
</match>
`))
	if got := runtimeOf(t, e, "keep"); got != keepRT {
		t.Fatalf("output keep has a new runtime after a reload that did not change it")
	}
	if runtimeOf(t, e, "old") != nil {
		t.Fatalf("output old is still in the graph")
	}
	plugintest.WaitFor(t, "the removed output's buffer drained", func() bool { return len(plugintest.Captured("old")) == 1 })
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "new.a", map[string]any{"n": 3})))
	if n := len(plugintest.Captured("new")); n != 1 {
		t.Fatalf("new route got %d events, want 1", n)
	}
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "old.b", map[string]any{"n": 4})))
	if e.Unmatched.Load() != 1 {
		t.Errorf("unmatched = %d after emitting to a removed route, want 1", e.Unmatched.Load())
	}
	if len(plugintest.Captured("keep")) != 0 {
		t.Fatalf("keep flushed early")
	}
	stop()
	if n := len(plugintest.Captured("keep")); n != 1 {
		t.Errorf("keep delivered %d events at shutdown, want the 1 it held across the reload", n)
	}
	if e.Reloads.Load() != 1 {
		t.Errorf("reloads = %d", e.Reloads.Load())
	}
}

func TestReloadRejectsBadConfig(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, reloadBase)
	plugintest.Start(t, e)
	err := reload(t, e, `
<match keep.**>
  @type capture
  nmae keep
</match>
`)
	if err == nil {
		t.Fatal("reload accepted a config with an unknown parameter")
	}
	t.Logf("rejected: %v", err)
	if e.ReloadFailures.Load() != 1 || e.Reloads.Load() != 0 {
		t.Errorf("reloads = %d, failures = %d", e.Reloads.Load(), e.ReloadFailures.Load())
	}
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "old.x", map[string]any{"n": 1})))
	if len(e.Outputs()) != 2 || e.Unmatched.Load() != 0 {
		t.Errorf("the old configuration is not running: %d outputs, %d unmatched", len(e.Outputs()), e.Unmatched.Load())
	}
	if err := e.Ready(1); err != nil {
		t.Errorf("not ready after a rejected reload: %v", err)
	}
}

// TestReloadFileBufferHandover changes an output that keeps the same file
// buffer directory: the new one opens it only after the old one closed it,
// recovers what the old one left, and nothing is lost or written twice
// while events keep arriving.
func TestReloadFileBufferHandover(t *testing.T) {
	plugintest.Reset()
	dir := filepath.Join(t.TempDir(), "buf")
	conf := func(name string) string {
		return fmt.Sprintf(`
<match app.**>
  @type capture
  @id app
  name %s
  <buffer>
    @type file
    path %s
    flush_interval 0.05
  </buffer>
</match>
`, name, dir)
	}
	e := plugintest.Build(t, conf("v0"))
	stop := plugintest.Start(t, e)
	var sent atomic.Int64
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				n := sent.Add(1)
				if err := e.Root().Emit(context.Background(), plugintest.Stream(t, "app.x", map[string]any{"seq": n})); err != nil {
					t.Errorf("emit %d: %v", n, err)
					return
				}
			}
		}()
	}
	for v := 1; v <= 5; v++ {
		time.Sleep(30 * time.Millisecond)
		plugintest.Must(t, reload(t, e, conf(fmt.Sprintf("v%d", v))))
	}
	time.Sleep(30 * time.Millisecond)
	close(done)
	wg.Wait()
	stop()
	// flush_at_shutdown is off for file buffers: what is left waits on disk.
	e2 := plugintest.Build(t, conf("after"))
	stop2 := plugintest.Start(t, e2)
	e2.Flush()
	total := func() int {
		n := 0
		for v := 0; v <= 5; v++ {
			n += len(plugintest.Captured(fmt.Sprintf("v%d", v)))
		}
		return n + len(plugintest.Captured("after"))
	}
	plugintest.WaitFor(t, "every event delivered", func() bool { return int64(total()) >= sent.Load() })
	stop2()
	seen := map[string]int{}
	for _, name := range []string{"v0", "v1", "v2", "v3", "v4", "v5", "after"} {
		for _, ev := range plugintest.Captured(name) {
			seen[fmt.Sprint(ev.Record["seq"])]++
		}
	}
	for n := int64(1); n <= sent.Load(); n++ {
		if seen[fmt.Sprint(n)] != 1 {
			t.Errorf("event %d delivered %d times", n, seen[fmt.Sprint(n)])
		}
	}
	t.Logf("%d events across 5 reloads", sent.Load())
}

// TestReloadKeysNestedAndRepeatedSections: reloading the same text keeps
// every output, nested stores and identical twins included; changing one
// store renews its copy and both stores, not the unrelated output.
func TestReloadKeysNestedAndRepeatedSections(t *testing.T) {
	plugintest.Reset()
	conf := func(second string) string {
		return `
<match copy.**>
  @type copy
  <store>
    @type capture
    name first
    <buffer>
      flush_interval 1h
    </buffer>
  </store>
  <store>
    @type capture
    name ` + second + `
    <buffer>
      flush_interval 1h
    </buffer>
  </store>
</match>
<match twin.**>
  @type capture
  name twin
  <buffer>
    flush_interval 1h
  </buffer>
</match>
<match twin.**>
  @type capture
  name twin
  <buffer>
    flush_interval 1h
  </buffer>
</match>
`
	}
	e := plugintest.Build(t, conf("second"))
	plugintest.Start(t, e)
	runtimes := func() map[any]string {
		m := map[any]string{}
		for _, o := range e.Outputs() {
			if o.Runtime != nil {
				m[o.Runtime] = o.ID
			}
		}
		return m
	}
	before := runtimes()
	if len(before) != 4 {
		t.Fatalf("%d buffered outputs, want 4", len(before))
	}
	plugintest.Must(t, reload(t, e, conf("second")))
	after := runtimes()
	for rt, id := range before {
		if _, ok := after[rt]; !ok {
			t.Errorf("output %s renewed by a reload of the same text", id)
		}
	}
	plugintest.Must(t, reload(t, e, conf("changed")))
	kept := 0
	for rt := range runtimes() {
		if _, ok := before[rt]; ok {
			kept++
		}
	}
	if kept != 2 {
		t.Errorf("%d outputs kept after changing one store, want 2 (the twins)", kept)
	}
}
