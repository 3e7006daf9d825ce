package all_test

import (
	"strings"
	"testing"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// TestMemoryBound: the bound is the inputs' budgets, the buffers' memory
// and the fixed overhead, as docs/operations.md writes it.
func TestMemoryBound(t *testing.T) {
	dir := t.TempDir()
	e := plugintest.Build(t, strings.ReplaceAll(`
<source>
  @type forward
  port 0
  chunk_size_limit 16m
  max_decompressed_size 64m
  receive_buffer_limit 32m
</source>
<source>
  @type http
  port 0
  body_size_limit 8m
  body_buffer_limit 32m
</source>
<match mem.**>
  @type null
  <buffer>
    total_limit_size 64m
  </buffer>
</match>
<match file.**>
  @type file
  path {{DIR}}/out
  <buffer>
    @type file
    path {{DIR}}/buf
    memory_cache_size 16m
    flush_thread_count 2
    chunk_limit_size 4m
  </buffer>
</match>`, "{{DIR}}", dir))
	const mib = 1 << 20
	want := int64(engine.MemoryOverhead + (16+64)*mib + 32*mib + 64*mib + (16+2*4)*mib)
	if got := e.MemoryBound(); got != want {
		t.Errorf("bound %d MiB, want %d MiB", got/mib, want/mib)
	}
}
