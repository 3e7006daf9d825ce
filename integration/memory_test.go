//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/loadgen"
)

// TestMemoryStaysUnderTheBound: with the destination refusing every write,
// forward clients push as fast as they can for 20 seconds, in message mode
// and PackedForward at once, into a 64 MiB memory buffer, which fills and then
// refuses what comes. Sluice's peak RSS stays under the bound its
// configuration gives (docs/operations.md): the forward source's 128 MiB,
// the buffer's 64 MiB and the 160 MiB overhead.
func TestMemoryStaysUnderTheBound(t *testing.T) {
	port := freePort(t)
	in := startSluice(t, fmt.Sprintf(`
<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
<match **>
  @type null
  never_flush true
  <buffer>
    total_limit_size 64m
    chunk_limit_size 4m
    flush_thread_count 15
    flush_interval 0.1
    retry_wait 0.1
    retry_max_interval 1
    retry_forever true
    overflow_action throw_exception
  </buffer>
</match>
`, port))
	const bound = (128 + 64 + 160) << 20
	if !strings.Contains(in.Logs(), "configuration_bound_mib=352") {
		t.Errorf("Sluice did not log the bound it set:\n%s", in.Logs())
	}
	// The clients run until Sluice is stopped: a refused client may wait on
	// its socket, so the measurement ends after a fixed time instead.
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, mode := range []string{loadgen.ModeMessage, loadgen.ModePacked} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := loadgen.SendConfig{Addr: fmt.Sprintf("127.0.0.1:%d", port), Mode: mode, Conns: 8, Batch: 500, Events: 3_000_000}
			_, _ = loadgen.Send(context.Background(), cfg) // refused and cut connections give errors
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
	}
	peak := peakRSS(t, in.cmd.Process.Pid)
	logs := in.Logs()
	in.Kill()
	<-done
	if !strings.Contains(logs, "total_limit_size") {
		t.Errorf("the buffer never filled: no overload was made\n%s", logs)
	}
	t.Logf("peak RSS %d MiB, bound %d MiB", peak>>20, bound>>20)
	if peak > bound {
		t.Errorf("peak RSS %d MiB over the configuration's bound of %d MiB", peak>>20, bound>>20)
	}
}
