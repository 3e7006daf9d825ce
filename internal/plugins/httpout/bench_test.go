package httpout_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	_ "github.com/sluice-log/sluice/internal/plugins/file" // the reference row
	"github.com/sluice-log/sluice/internal/plugintest"
)

// BenchmarkWrite measures chunks of 1,000 Docker-driver-shaped events
// through each HTTP output, formatting included (what a buffer does at
// emit for outputs that format then), into a sink on loopback in the same
// process that reads each body and answers as the service does on
// success; file is the reference. One op is one event.
func BenchmarkWrite(b *testing.B) {
	b.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		switch {
		case r.URL.Path == "/loki/api/v1/push":
			w.WriteHeader(http.StatusNoContent)
		case r.URL.Path == "/services/collector":
			_, _ = io.WriteString(w, `{"text":"Success","code":0}`)
		case r.URL.Path == "/api/v2/logs":
			w.WriteHeader(http.StatusAccepted)
			_, _ = io.WriteString(w, "{}")
		case r.Header.Get("X-Amz-Target") != "":
			_, _ = io.WriteString(w, `{"nextSequenceToken":"1"}`)
		}
	}))
	defer sink.Close()
	host := sink.Listener.Addr().String()
	confs := []struct{ name, conf string }{
		{"file", "@type file\n  path " + b.TempDir() + "/out\n  <buffer>\n  </buffer>"},
		{"http", "@type http\n  endpoint " + sink.URL + "/ingest\n  retryable_response_codes [503]"},
		{"http_gzip", "@type http\n  endpoint " + sink.URL + "/ingest\n  compress gzip\n  retryable_response_codes [503]"},
		{"loki", "@type loki\n  url " + sink.URL + "\n  <label>\n    container_name\n  </label>"},
		{"loki_snappy", "@type loki\n  url " + sink.URL + "\n  compress snappy\n  <label>\n    container_name\n  </label>"},
		{"splunk_hec", "@type splunk_hec\n  full_url " + sink.URL + "/services/collector\n  hec_token t"},
		{"datadog", fmt.Sprintf("@type datadog\n  api_key k\n  use_ssl false\n  host 127.0.0.1\n  port %s", host[len("127.0.0.1:"):])},
		{"cloudwatch_logs", "@type cloudwatch_logs\n  region us-east-1\n  endpoint " + sink.URL + "\n  aws_key_id AKIDBENCH\n  aws_sec_key s\n  log_group_name g\n  log_stream_name s"},
	}
	var bld event.Builder
	for i := 0; i < 1000; i++ {
		rec, _ := event.EncodeRecord(map[string]any{"container_id": "3f2a9c1b7e4d5a6f8091a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3",
			"container_name": "/web-frontend-7d9f", "source": "stdout",
			"log": fmt.Sprintf("10.0.0.%d - - [03/Dec/2026:09:57:00 +0000] \"GET /api/items/%d HTTP/1.1\" 200 512 \"-\" \"curl/8.5\"", i%256, i)})
		bld.Append(event.Time(1764756000e9+int64(i)*1e6), rec)
	}
	entries := bld.Bytes()
	for _, tc := range confs {
		b.Run(tc.name, func(b *testing.B) {
			e := plugintest.Build(b, "<match **>\n  "+tc.conf+"\n</match>\n")
			p := e.Outputs()[0].Plugin
			out := p.(plugin.BufferedOutput)
			if in, ok := p.(interface{ Init(context.Context) error }); ok {
				if err := in.Init(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			if cl, ok := p.(interface{ Close(context.Context) error }); ok {
				defer cl.Close(context.Background())
			}
			f, formats := p.(plugin.EntryFormatter)
			b.SetBytes(int64(len(entries)) / 1000)
			b.ReportAllocs()
			b.ResetTimer()
			var formatted []byte
			for i := 0; i < b.N; i += 1000 {
				view := plugin.Chunk{ID: buffer.NewID(), Key: buffer.NewKey("docker.web", 0, nil), Data: entries, Records: 1000}
				if formats {
					formatted = formatted[:0]
					r := event.NewReader(entries)
					for r.Next() {
						en := r.Entry()
						var err error
						if formatted, err = f.FormatEntry(formatted, "docker.web", en.Time, en.Record); err != nil {
							b.Fatal(err)
						}
					}
					view.Data, view.Formatted = formatted, true
				}
				if err := out.Write(context.Background(), plugin.NewChunk(view, map[string]string{}, nil)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
