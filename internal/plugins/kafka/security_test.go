package kafka_test

import (
	"crypto/tls"
	"fmt"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluice-log/sluice/internal/output"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// kafka2 and kafka_group over TLS with SASL/SCRAM-SHA-256 (and PLAIN):
// the output produces with the credentials, the input consumes with them,
// and a wrong password delivers nothing.
func TestTLSAndSASL(t *testing.T) {
	cert, key := plugintest.WriteCert(t, t.TempDir())
	pair, err := tls.LoadX509KeyPair(cert, key)
	plugintest.Must(t, err)
	for _, mech := range []struct{ kafka, plugin string }{{"SCRAM-SHA-256", "scram_mechanism sha256"}, {"PLAIN", ""}} {
		t.Run(mech.kafka, func(t *testing.T) {
			c := cluster(t, kfake.SeedTopics(1, "secure"), kfake.TLS(&tls.Config{Certificates: []tls.Certificate{pair}}),
				kfake.EnableSASL(), kfake.Superuser(mech.kafka, "sluice", "s3cret"))
			brokers := strings.Join(c.ListenAddrs(), ",")
			security := func(password string) string {
				return fmt.Sprintf("username sluice\n  password %s\n  %s\n  ssl_ca_cert %s", password, mech.plugin, cert)
			}
			plugintest.Reset()
			// The wrong password's chunk never drains: a short shutdown.
			conf := fmt.Sprintf(`
<system>
  shutdown_timeout 1s
</system>
<source>
  @type kafka_group
  brokers %s
  consumer_group secure
  topics secure
  %s
</source>
<match secure>
  @type capture
  name consumed
</match>
<match app.**>
  @type kafka2
  brokers %s
  default_topic secure
  %s
  <buffer>
    flush_interval 0.05
  </buffer>
</match>
<match wrong.**>
  @type kafka2
  @id wrong_password
  brokers %s
  ack_timeout 0.5
  max_send_retries 0
  default_topic secure
  %s
  <buffer>
    flush_interval 0.05
    retry_wait 0.05
  </buffer>
</match>`, brokers, security("s3cret"), brokers, security("s3cret"), brokers, security("wrong"))
			e := plugintest.Build(t, conf)
			stop := plugintest.Start(t, e)
			defer stop()
			emit := func(tag, id string) {
				plugintest.Must(t, e.Root().Emit(t.Context(), plugintest.Stream(t, tag, map[string]any{"id": id})))
			}
			emit("wrong.x", "with-the-wrong-password")
			emit("app.x", "over-tls-with-sasl")
			plugintest.WaitFor(t, "the record consumed over TLS and SASL", func() bool { return len(plugintest.Captured("consumed")) >= 1 })
			var wrong *output.Runtime
			for _, o := range e.Outputs() {
				if o.ID == "wrong_password" {
					wrong = o.Runtime
				}
			}
			plugintest.WaitFor(t, "the wrong password refused", func() bool { return wrong.Stats.NumErrors.Load() > 0 })
			if n := wrong.Stats.WriteRecords.Load(); n > 0 {
				t.Errorf("%d records written with the wrong password", n)
			}
			for _, ev := range plugintest.Captured("consumed") {
				if ev.Record["id"] != "over-tls-with-sasl" {
					t.Errorf("consumed %v", ev.Record)
				}
			}
		})
	}
}
