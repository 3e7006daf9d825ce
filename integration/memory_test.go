//go:build integration

package integration

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/loadgen"
)

// TestMemoryStaysUnderTheBound: with the destination refusing every write,
// forward clients push as fast as they can, half a million events in message mode and
// 2 M in PackedForward, into a 64 MiB memory buffer, which fills and then
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
	for mode, events := range map[string]int64{loadgen.ModeMessage: 500_000, loadgen.ModePacked: 2_000_000} {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second) // a refused client may wait on its socket
		cfg := loadgen.SendConfig{Addr: fmt.Sprintf("127.0.0.1:%d", port), Mode: mode, Conns: 8, Batch: 500, Events: events}
		_, _ = loadgen.Send(ctx, cfg) // refused messages close connections: errors are expected
		cancel()
	}
	peak := peakRSS(t, in.cmd.Process.Pid)
	if !strings.Contains(in.Logs(), "total_limit_size") {
		t.Errorf("the buffer never filled: no overload was made\n%s", in.Logs())
	}
	in.Kill()
	t.Logf("peak RSS %d MiB, bound %d MiB", peak>>20, bound>>20)
	if peak > bound {
		t.Errorf("peak RSS %d MiB over the configuration's bound of %d MiB", peak>>20, bound>>20)
	}
}
