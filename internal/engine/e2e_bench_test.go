package engine_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/sluice-log/sluice/internal/plugintest"
)

// BenchmarkFileOutputThroughFileBuffer routes 500-event streams into a file
// output behind a file buffer, and waits at the end until every chunk is
// written: the cost of taking events to disk, per event byte.
func BenchmarkFileOutputThroughFileBuffer(b *testing.B) {
	for _, format := range []string{"json", "out_file", "msgpack"} {
		b.Run(format, func(b *testing.B) {
			dir := b.TempDir()
			e := plugintest.Build(b, `
<match **>
  @type file
  path `+filepath.Join(dir, "out")+`/${tag}/events
  append true
  <format>
    @type `+format+`
  </format>
  <buffer tag,time>
    @type file
    path `+filepath.Join(dir, "buf")+`
    timekey 1h
    timekey_wait 0
    flush_mode interval
    flush_interval 0.2
    flush_thread_count 2
    chunk_limit_size 8m
    total_limit_size 8g
    flush_at_shutdown true
  </buffer>
</match>`)
			stop := plugintest.Start(b, e)
			s := dockerStream(b, "bench.docker", 500)
			root := e.Root()
			ctx := context.Background()
			b.SetBytes(int64(len(s.Data)))
			b.ReportAllocs()
			for b.Loop() {
				if err := root.Emit(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
			stop() // drains every chunk to the output files
			b.ReportMetric(float64(b.N*500)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
