package elasticsearch_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/loadgen"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// BenchmarkWrite measures one chunk of 1,000 Docker-driver-shaped events
// through the output into a counting _bulk sink on loopback (in the same
// process, so the figure includes the sink's reading). One op is one event.
func BenchmarkWrite(b *testing.B) {
	for _, extra := range []string{"logstash_format true", "index_name logs"} {
		b.Run(strings.Fields(extra)[0], func(b *testing.B) {
			sink, err := loadgen.ListenBulk("127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			e := plugintest.Build(b, fmt.Sprintf("<match **>\n  @type elasticsearch\n  hosts http://%s\n  %s\n</match>\n", sink.Addr(), extra))
			out := e.Outputs()[0].Plugin.(plugin.BufferedOutput)
			if err := out.(interface{ Init(context.Context) error }).Init(context.Background()); err != nil {
				b.Fatal(err)
			}
			var bld event.Builder
			for i := 0; i < 1000; i++ {
				rec, _ := event.EncodeRecord(map[string]any{"container_id": "3f2a9c1b7e4d5a6f8091a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3",
					"container_name": "/web-frontend-7d9f", "source": "stdout",
					"log": fmt.Sprintf("10.0.0.%d - - [03/Dec/2026:09:57:00 +0000] \"GET /api/items/%d HTTP/1.1\" 200 512 \"-\" \"curl/8.5\"", i%256, i)})
				bld.Append(event.Time(1764756000e9+int64(i)*1e6), rec)
			}
			data := bld.Bytes()
			b.SetBytes(int64(len(data)) / 1000)
			b.ResetTimer()
			for i := 0; i < b.N; i += 1000 {
				c := plugin.NewChunk(plugin.Chunk{ID: buffer.NewID(), Key: buffer.NewKey("docker.web", 0, nil), Data: data, Records: 1000}, map[string]string{}, nil)
				if err := out.Write(context.Background(), c); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
