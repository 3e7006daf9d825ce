package httpio_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sluice-log/sluice/internal/plugins/httpio"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// BenchmarkSeed002PostPerEvent: seed 002's source (one event per POST,
// the regexp `path content`) into a null output, from 64 keep-alive
// clients on loopback, the clients in the same process. One op is one
// request (one event).
func BenchmarkSeed002PostPerEvent(b *testing.B) {
	plugintest.Reset()
	e := plugintest.Build(b, source("  body_size_limit 32m\n  keepalive_timeout 10s\n  <parse>\n    @type regexp\n    expression /^(?<path>[^\\s]+) (?<content>.+)$/m\n  </parse>")+"<match **>\n  @type null\n</match>\n")
	stop := plugintest.Start(b, e)
	defer stop()
	in := e.Inputs()[0].(*httpio.Input)
	var addr string
	plugintest.WaitFor(b, "the listener", func() bool { addr = in.BoundAddr(); return addr != "" })
	url := "http://" + addr + "/app.events"
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	body := []byte(`customer-17/events payload line {"k":1,"user":"u-123","action":"click","ms":42}`)
	var next atomic.Int64
	var failed atomic.Int64
	b.ResetTimer()
	var wg sync.WaitGroup
	for c := 0; c < 64; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				resp, err := client.Post(url, "application/x-www-form-urlencoded", bytes.NewReader(body))
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatal(fmt.Sprintf("%d requests failed", n))
	}
}
