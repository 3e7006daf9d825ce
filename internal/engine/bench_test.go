package engine_test

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func TestMain(m *testing.M) {
	// The tests start engines; every goroutine they start must be gone.
	goleak.VerifyTestMain(m)
}

// dockerStream is n events shaped like Docker's fluentd log driver output,
// about 200 bytes each.
func dockerStream(tb testing.TB, tag string, n int) event.Stream {
	tb.Helper()
	rec, err := event.EncodeRecord(map[string]any{
		"container_id":   "6d33ade920a96179205e01c3a17d6e7f3eb98f0d5bb2b494383250220e7f443c",
		"container_name": "/ecs-service-2-apache-d492a08f9480c2fcca01",
		"source":         "stdout",
		"log":            `122.116.50.70 - Corwin8644 264 [2018-10-31T21:31:59Z] "POST /activate" 200 19886`,
	})
	if err != nil {
		tb.Fatal(err)
	}
	var b event.Builder
	for i := 0; i < n; i++ {
		b.Append(event.Now(), rec)
	}
	return b.Stream(tag)
}

const seedRoutes = `
<match health*>
  @type null
</match>
<match frontend*>
  @type null
</match>
<match backend*>
  @type null
</match>
`

// TestPipelineEmitAllocs: routing a stream (cache hit) to an output
// allocates nothing.
func TestPipelineEmitAllocs(t *testing.T) {
	e := plugintest.Build(t, seedRoutes)
	s := dockerStream(t, "backend-api", 100)
	root := e.Root()
	ctx := context.Background()
	_ = root.Emit(ctx, s)
	if n := testing.AllocsPerRun(1000, func() { _ = root.Emit(ctx, s) }); n != 0 {
		t.Errorf("emit allocates %v times", n)
	}
}

// benchEmit measures emitting a 500-event stream (the size Fluent Bit
// sends) into the root pipeline of conf: bytes/s of entries.
func benchEmit(b *testing.B, conf, tag string, run bool) {
	e := plugintest.Build(b, conf)
	if run {
		stop := plugintest.Start(b, e)
		defer stop()
	}
	s := dockerStream(b, tag, 500)
	root := e.Root()
	ctx := context.Background()
	b.SetBytes(int64(len(s.Data)))
	b.ReportAllocs()
	for b.Loop() {
		if err := root.Emit(ctx, s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPipelineRoute is the routing cost alone: a cached route to null.
func BenchmarkPipelineRoute(b *testing.B) { benchEmit(b, seedRoutes, "backend-api", false) }

// BenchmarkPipelineBufferedAppend routes into a memory buffer: the one
// memcpy per stream that a tag-keyed chunk costs.
func BenchmarkPipelineBufferedAppend(b *testing.B) {
	benchEmit(b, `
<match **>
  @type null
  <buffer tag>
    chunk_limit_size 8m
    total_limit_size 4g
    flush_mode immediate
  </buffer>
</match>`, "backend-api", true)
}

// BenchmarkPipelineFiltered adds a record_transformer, which rebuilds
// every record.
func BenchmarkPipelineFiltered(b *testing.B) {
	benchEmit(b, `
<filter **>
  @type record_transformer
  <record>
    hostname ${hostname}
  </record>
</filter>`+seedRoutes, "frontend-apache", false)
}
