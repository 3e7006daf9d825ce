//go:build integration

package integration

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/sluice-log/sluice/internal/plugintest"
)

// receiverConf is a secured in_forward that writes every event, as it is
// accepted and before it is acknowledged, to standard output (a file).
func receiverConf(port int, cert, key string) string {
	return fmt.Sprintf(`
<source>
  @type forward
  bind 127.0.0.1
  port %d
  <security>
    self_hostname receiver
    shared_key relay-secret
  </security>
  <transport tls>
    cert_path %s
    private_key_path %s
  </transport>
</source>
<match **>
  @type stdout
  <format>
    @type json
  </format>
</match>
`, port, cert, key)
}

// TestRelayWithReceiverKilled: clients send with acks to a Sluice that
// relays over out_forward (TLS, shared key, acks) to two receivers; one
// receiver is SIGKILLed mid-stream. Every event the first Sluice
// acknowledged must reach a receiver.
func TestRelayWithReceiverKilled(t *testing.T) {
	certDir := t.TempDir()
	cert, key := plugintest.WriteCert(t, certDir)
	p1, p2, ps := freePort(t), freePort(t), freePort(t)
	r1 := startSluice(t, receiverConf(p1, cert, key))
	r2 := startSluice(t, receiverConf(p2, cert, key))
	sender := startSluice(t, fmt.Sprintf(`
<system>
  shutdown_timeout 20s
</system>
<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
<match **>
  @type forward
  transport tls
  tls_cert_path %s
  require_ack_response true
  ack_response_timeout 3
  recover_wait 2
  connect_timeout 2
  keepalive true
  <security>
    self_hostname sender
    shared_key relay-secret
  </security>
  <server>
    host 127.0.0.1
    port %d
  </server>
  <server>
    host 127.0.0.1
    port %d
  </server>
  <buffer tag>
    flush_interval 0.1
    chunk_limit_records 50
    retry_wait 0.2
    retry_max_interval 1
    retry_forever true
    flush_thread_count 2
  </buffer>
</match>
`, ps, cert, p1, p2))

	const total = 3000
	var acked atomic.Int64
	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: ps, RequestAck: true})
	if err != nil {
		t.Fatal(err)
	}
	var sent []string
	for i := 0; i < total; i++ {
		if i == total/3 {
			r1.Kill() // mid-stream, without warning
		}
		id := fmt.Sprintf("relay-%d", i)
		if err := logger.Post("app.relay", map[string]string{"id": id, "log": "relayed"}); err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
		acked.Add(1)
		sent = append(sent, id)
		if i%100 == 0 {
			time.Sleep(20 * time.Millisecond) // spread the stream over the kill
		}
	}
	logger.Close()
	sender.Stop() // drains the buffer to the surviving receiver
	r2.Stop()

	seen := map[string]int{}
	perReceiver := map[string]int{}
	for name, dir := range map[string]string{"killed": r1.Dir, "survivor": r2.Dir} {
		for _, r := range jsonRecords(t, filepath.Join(dir, "stdout.log")) {
			if id, ok := r["id"].(string); ok {
				seen[id]++
				perReceiver[name]++
			}
		}
	}
	if perReceiver["killed"] == 0 || perReceiver["survivor"] == 0 {
		t.Errorf("events per receiver %v: the stream should have been split before the kill", perReceiver)
	}
	lost, dups := 0, 0
	for _, id := range sent {
		switch n := seen[id]; {
		case n == 0:
			lost++
		case n > 1:
			dups++
		}
	}
	t.Logf("per receiver %v", perReceiver)
	t.Logf("acknowledged %d, lost %d, delivered twice %d (a chunk the killed receiver wrote but never acknowledged)", acked.Load(), lost, dups)
	if lost > 0 {
		t.Errorf("%d acknowledged events were lost\nsender log:\n%s", lost, sender.Logs())
	}
}
