package all_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	_ "github.com/sluice-log/sluice/internal/plugins/all"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// cancelConfs configure each buffered output against a destination that
// accepts connections and never answers ({{ADDR}}), or a local directory
// ({{DIR}}). A new buffered output must add itself here.
var cancelConfs = map[string]string{
	"forward": `
  require_ack_response true
  ack_response_timeout 600
  <server>
    host {{HOST}}
    port {{PORT}}
  </server>`,
	"kinesis_firehose": `
  region us-west-2
  endpoint http://{{ADDR}}
  aws_key_id AKIDTEST
  aws_sec_key secret
  delivery_stream_name stream`,
	"kinesis_streams": `
  region us-west-2
  endpoint http://{{ADDR}}
  aws_key_id AKIDTEST
  aws_sec_key secret
  stream_name stream`,
	"s3": `
  s3_bucket bucket
  s3_region us-east-1
  s3_endpoint http://{{ADDR}}
  force_path_style true
  aws_key_id AKIDTEST
  aws_sec_key secret
  check_bucket false
  check_apikey_on_start false`,
	"splunk_hec": `
  full_url http://{{ADDR}}/services/collector
  hec_token tok
  read_timeout 600`,
	"datadog": `
  api_key k
  host {{HOST}}
  port {{PORT}}
  use_ssl false`,
	"cloudwatch_logs": `
  region us-west-2
  endpoint http://{{ADDR}}
  aws_key_id AKIDTEST
  aws_sec_key secret
  log_group_name g
  log_stream_name s`,
	"loki": `
  url http://{{ADDR}}`,
	"http": `
  endpoint http://{{ADDR}}/ingest
  read_timeout 600`,
	"elasticsearch": `
  host {{HOST}}
  port {{PORT}}
  verify_es_version_at_startup false
  request_timeout 600`,
	"elasticsearch_dynamic": `
  host {{HOST}}
  port {{PORT}}
  verify_es_version_at_startup false
  request_timeout 600`,
	"opensearch": `
  host {{HOST}}
  port {{PORT}}
  verify_es_version_at_startup false
  request_timeout 600`,
	"elasticsearch_data_stream": `
  host {{HOST}}
  port {{PORT}}
  verify_es_version_at_startup false
  request_timeout 600
  data_stream_name logs-app-default`,
	"opensearch_data_stream": `
  host {{HOST}}
  port {{PORT}}
  verify_es_version_at_startup false
  request_timeout 600
  data_stream_name logs-app-default`,
	"aws-elasticsearch-service": `
  verify_es_version_at_startup false
  request_timeout 600
  <endpoint>
    url http://{{ADDR}}
    region us-east-1
    access_key_id AKIDTEST
    secret_access_key secret
  </endpoint>`,
	"kafka2": `
  brokers {{ADDR}}
  default_topic logs`,
	"file":           "\n  path {{DIR}}/out",
	"secondary_file": "\n  directory {{DIR}}",
	"stdout":         "",
	"null":           "",
	"capture":        "\n  name cancel", // plugintest's
}

// Every registered buffered output returns soon after the context of its
// Write is cancelled, whatever its destination does: the runtime's write
// deadline and shutdown depend on it.
func TestEveryOutputReturnsWhenCancelled(t *testing.T) {
	addr := plugintest.BlackHole(t)
	host, port, _ := net.SplitHostPort(addr)
	for _, info := range plugin.All() {
		if info.Kind != plugin.KindOutput {
			continue
		}
		if _, ok := info.New().(plugin.BufferedOutput); !ok {
			continue
		}
		conf, ok := cancelConfs[info.Type]
		if !ok {
			t.Errorf("output %s: no configuration in cancelConfs; add one", info.Type)
			continue
		}
		t.Run(info.Type, func(t *testing.T) {
			conf = strings.NewReplacer("{{ADDR}}", addr, "{{HOST}}", host, "{{PORT}}", port, "{{DIR}}", t.TempDir()).Replace(conf)
			e := plugintest.Build(t, "<match **>\n  @type "+info.Type+conf+"\n</match>\n")
			plugintest.Start(t, e)
			out := e.Outputs()[0].Plugin.(plugin.BufferedOutput)
			var b event.Builder
			rec, _ := event.EncodeRecord(map[string]any{"log": "x"})
			b.Append(event.Time(1700000000e9), rec)
			c := &plugin.Chunk{ID: buffer.NewID(), Key: buffer.NewKey("app", 1699999200, nil), Data: b.Bytes(), Records: 1,
				Created: time.Now()}
			if f, ok := out.(plugin.EntryFormatter); ok {
				c.Data, _ = f.FormatEntry(nil, "app", event.Time(1700000000e9), event.Record(rec))
				c.Formatted = true
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- out.Write(ctx, c) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				t.Fatalf("Write still running 10 s after its context was cancelled")
			}
		})
	}
}
