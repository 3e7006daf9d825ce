package forward_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/plugins/forward"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func events(t *testing.T, n int, prefix string) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"id": fmt.Sprintf("%s-%d", prefix, i), "log": "x"}
	}
	return out
}

func idsOf(name string) map[string]int {
	seen := map[string]int{}
	for _, e := range plugintest.Captured(name) {
		seen[e.Record["id"].(string)]++
	}
	return seen
}

// TestSluiceToSluiceSecure sends through out_forward to in_forward with
// TLS (the server's certificate trusted by tls_ca_cert_path), a shared
// key, gzip, acks and keepalive.
func TestSluiceToSluiceSecure(t *testing.T) {
	dir := t.TempDir()
	cert, key := plugintest.WriteCert(t, dir)
	_, in, addr := server(t, "relay", `
<security>
  self_hostname receiver
  shared_key relay-key
</security>
<transport tls>
  cert_path `+cert+`
  private_key_path `+key+`
</transport>`)
	host, port, _ := net.SplitHostPort(addr)
	sender := plugintest.Build(t, `
<match **>
  @type forward
  transport tls
  tls_ca_cert_path `+cert+`
  require_ack_response true
  ack_response_timeout 5
  compress gzip
  keepalive true
  <security>
    self_hostname sender
    shared_key relay-key
  </security>
  <server>
    host `+host+`
    port `+port+`
  </server>
  <buffer tag>
    flush_interval 0.05
    retry_wait 0.05
  </buffer>
</match>`)
	stop := plugintest.Start(t, sender)
	for i := 0; i < 5; i++ {
		plugintest.Must(t, sender.Root().Emit(context.Background(), plugintest.Stream(t, "app.relay", events(t, 100, fmt.Sprintf("b%d", i))...)))
	}
	plugintest.WaitFor(t, "500 events relayed", func() bool { return len(plugintest.Captured("relay")) >= 500 })
	stop()
	seen := idsOf("relay")
	if len(seen) != 500 {
		t.Errorf("%d distinct events, want 500", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s arrived %d times", id, n)
		}
	}
	if in.Stats.Acks.Load() == 0 || in.Stats.ConnectionsTotal.Load() > 2 {
		t.Errorf("acks %d, connections %d (keepalive should reuse one)", in.Stats.Acks.Load(), in.Stats.ConnectionsTotal.Load())
	}
}

// TestFailoverToStandby: the active server is down, so chunks go to the
// standby, and every event arrives once.
func TestFailoverToStandby(t *testing.T) {
	_, _, addr := server(t, "standby", "")
	host, port, _ := net.SplitHostPort(addr)
	dead := freeClosedPort(t)
	sender := plugintest.Build(t, `
<match **>
  @type forward
  require_ack_response true
  ack_response_timeout 2
  recover_wait 30
  connect_timeout 1
  <server>
    name primary
    host 127.0.0.1
    port `+dead+`
  </server>
  <server>
    name standby
    host `+host+`
    port `+port+`
    standby
  </server>
  <buffer tag>
    flush_interval 0.05
    retry_wait 0.05
    retry_randomize false
  </buffer>
</match>`)
	stop := plugintest.Start(t, sender)
	plugintest.Must(t, sender.Root().Emit(context.Background(), plugintest.Stream(t, "app.fo", events(t, 50, "fo")...)))
	plugintest.WaitFor(t, "failover delivery", func() bool { return len(plugintest.Captured("standby")) >= 50 })
	stop()
	if seen := idsOf("standby"); len(seen) != 50 {
		t.Errorf("%d distinct events at the standby, want 50", len(seen))
	}
}

func freeClosedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	plugintest.Must(t, err)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	return port
}

// A server that reads but never acks: the write must fail, not hang,
// whether out_forward's own ack_response_timeout or the runtime's
// write_timeout ends it first.
func TestAckTimeoutIsRetried(t *testing.T) {
	_, port, _ := net.SplitHostPort(plugintest.BlackHole(t))
	for _, tc := range []struct{ name, ack, buffer string }{
		{"ack_response_timeout", "ack_response_timeout 0.2", ""},
		{"write_timeout", "ack_response_timeout 600", "write_timeout 0.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sender := plugintest.Build(t, `
<system>
  root_dir `+t.TempDir()+`
</system>
<match **>
  @type forward
  require_ack_response true
  `+tc.ack+`
  recover_wait 0
  <server>
    host 127.0.0.1
    port `+port+`
  </server>
  <buffer tag>
    flush_interval 0.05
    retry_wait 0.05
    retry_max_times 1
    `+tc.buffer+`
  </buffer>
</match>`)
			plugintest.Start(t, sender)
			plugintest.Must(t, sender.Root().Emit(context.Background(), plugintest.Stream(t, "app.noack", events(t, 1, "n")...)))
			deadline := time.Now().Add(10 * time.Second)
			for {
				if time.Now().After(deadline) {
					t.Fatal("the chunk was never given up after ack timeouts")
				}
				if d := outputGivenUp(sender); d == 1 {
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// outputGivenUp counts the records the outputs gave up on: moved to the
// backup directory, or dropped where that failed.
func outputGivenUp(e *engine.Engine) int64 {
	var n int64
	for _, o := range e.Outputs() {
		if o.Runtime != nil {
			n += o.Runtime.Stats.DroppedRecords.Load() + o.Runtime.Stats.BackupRecords.Load()
		}
	}
	return n
}

// TestForwardOutputParametersFluentdRefuses: the obsoleted flat host and
// port, and the Windows certificate store parameters, are refused with
// what to write instead, as Fluentd refuses them on Linux; tls_cert_path
// replaces tls_ca_cert_path, as in Fluentd.
func TestForwardOutputParametersFluentdRefuses(t *testing.T) {
	for extra, want := range map[string]string{
		"host 10.0.0.1\n  port 24224":                 "obsoleted parameters",
		"transport tls\n  tls_cert_thumbprint 0a1b2c": "for Windows only",
	} {
		_, err := plugintest.BuildErr(`
<match **>
  @type forward
  ` + extra + `
  <server>
    host 127.0.0.1
  </server>
</match>`)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", extra, err, want)
		}
	}
	o := &forward.Output{TLSCertPath: []string{"/a.pem"}, TLSCACertPath: []string{"/b.pem"}, Servers: []forward.ServerConfig{{Host: "h"}}}
	if err := o.Configure(&plugin.Context{Logger: slog.New(slog.DiscardHandler), ChunkKeys: buffer.ChunkKeys{Tag: true}}); err != nil {
		t.Fatal(err)
	}
	if len(o.TLSCACertPath) != 1 || o.TLSCACertPath[0] != "/a.pem" {
		t.Errorf("CA paths %v, want tls_cert_path's", o.TLSCACertPath)
	}
}
