package forward_test

import (
	"context"
	"testing"

	"github.com/sluice-log/sluice/internal/loadgen"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// benchLoopback measures in_forward into null on loopback: the generator
// runs in the same process, on the same two cores, and the clock stops at
// the receiver's last ack. bytes/s are event bytes.
func benchLoopback(b *testing.B, mode string, conns, batch int, ack bool) {
	e := plugintest.Build(b, "<source>\n  @type forward\n  bind 127.0.0.1\n  port 0\n</source>\n<match **>\n  @type null\n</match>\n")
	plugintest.Start(b, e)
	var addr string
	plugintest.WaitFor(b, "the listener", func() bool { addr = plugintest.BoundAddr(e); return addr != "" })
	events := int64(b.N)
	if events < int64(conns*batch) {
		events = int64(conns * batch)
	}
	b.ResetTimer()
	r, err := loadgen.Send(context.Background(), loadgen.SendConfig{Addr: addr, Mode: mode, Conns: conns, Batch: batch, Events: events, Ack: ack})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(r.EventsPerSec(), "events/s")
	b.ReportMetric(r.MBPerSec(), "MB/s")
}

func BenchmarkLoopbackPackedForward(b *testing.B) {
	benchLoopback(b, loadgen.ModePacked, 4, 500, false)
}
func BenchmarkLoopbackMessage(b *testing.B) { benchLoopback(b, loadgen.ModeMessage, 8, 1, false) }

// With acks, every message also goes through duplicate suppression.
func BenchmarkLoopbackPackedForwardAck(b *testing.B) {
	benchLoopback(b, loadgen.ModePacked, 4, 500, true)
}
