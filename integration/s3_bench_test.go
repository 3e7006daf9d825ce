//go:build integration

package integration

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// BenchmarkS3Gzip sends Docker-shaped records (JSON lines) through a
// memory buffer into the S3 output, gzip, against the real server, and
// waits until every chunk is uploaded. It reports MB/s of records and the
// CPU seconds (all of Sluice's goroutines) spent per GB.
//
//	go test -tags integration -run '^$' -bench S3Gzip -benchtime 200x ./integration
func BenchmarkS3Gzip(b *testing.B) {
	srv := startS3Server(b)
	for _, kv := range srv.Env("") {
		k, v, _ := strings.Cut(kv, "=")
		os.Setenv(k, v)
	}
	e := plugintest.Build(b, `
<match **>
  @type s3
  s3_bucket bench
  path bench/
  s3_object_key_format %{path}%{time_slice}_%{index}.%{file_extension}
  store_as gzip
  <format>
    @type json
  </format>
  <buffer>
    chunk_limit_size 8m
    total_limit_size 1g
    flush_mode immediate
    flush_thread_count 2
    overflow_action block
  </buffer>
</match>`)
	stop := plugintest.Start(b, e)
	var bld event.Builder
	rec, _ := event.EncodeRecord(map[string]any{
		"container_id":   "6d33ade920a96179205e01c3a17d6e7f3eb98f0d5bb2b494383250220e7f443c",
		"container_name": "/ecs-service-2-apache-d492a08f9480c2fcca01", "source": "stdout",
		"log": `122.116.50.70 - Corwin8644 264 [2018-10-31T21:31:59Z] "POST /activate" 200 19886`,
	})
	for i := 0; i < 5000; i++ {
		bld.Append(event.Now(), rec)
	}
	s := bld.Stream("bench.s3")
	jsonBytes := int64(len(s.Data)) * 235 / 200 // JSON lines are ~1.18x the msgpack
	time.Sleep(500 * time.Millisecond)
	cpu0 := cpuSeconds()
	start := time.Now()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := e.Root().Emit(context.Background(), s); err != nil {
			b.Fatal(err)
		}
	}
	stop() // drains: every chunk uploaded
	elapsed := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0
	total := float64(jsonBytes) * float64(b.N)
	b.ReportMetric(total/1e6/elapsed, "MB/s")
	b.ReportMetric(cpu/(total/1e9), "cpu-s/GB")
}
