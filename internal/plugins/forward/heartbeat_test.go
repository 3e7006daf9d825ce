package forward

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestUDPHeartbeatDetachesAndRecovers runs a real in_forward as the
// heartbeat responder: a node is usable while it answers, detached when it
// stops (hard_timeout), and usable again recover_wait after it answers.
func TestUDPHeartbeatDetachesAndRecovers(t *testing.T) {
	startReceiver := func(port int) (context.CancelFunc, chan struct{}) {
		in := &Input{Bind: "127.0.0.1", Port: port, ChunkSizeLimit: 1 << 20, MaxDecompressedSize: 1 << 20, HandshakeTimeout: time.Second, log: quiet}
		if err := in.Init(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = in.Run(ctx, plugin.EmitterFunc(func(context.Context, event.Stream) error { return nil }))
		}()
		return cancel, done
	}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	stopReceiver, done := startReceiver(port)

	o := &Output{HeartbeatType: "udp", HeartbeatInterval: 20 * time.Millisecond, PhiFailureDetector: true,
		PhiThreshold: 16, HardTimeout: 300 * time.Millisecond, RecoverWait: 200 * time.Millisecond, log: quiet}
	n := &node{cfg: ServerConfig{Name: "r", Host: "127.0.0.1", Port: port, Weight: 60}, addr: "127.0.0.1:" + strconv.Itoa(port), available: true, phi: newPhi()}
	o.nodes.Store(&[]*node{n})
	if err := o.Init(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())

	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting until %s", what)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	beats := func() bool { n.mu.Lock(); defer n.mu.Unlock(); return len(n.phi.intervals) > 5 }
	waitFor("heartbeats arrive", beats)
	if _, err := o.pick(); err != nil {
		t.Fatalf("a node answering heartbeats is not usable: %v", err)
	}

	stopReceiver()
	<-done
	waitFor("the silent node is detached", func() bool { _, err := o.pick(); return err != nil })

	stopReceiver, done = startReceiver(port)
	defer func() { stopReceiver(); <-done }()
	resumed := time.Now()
	waitFor("the node recovers", func() bool { _, err := o.pick(); return err == nil })
	if waited := time.Since(resumed); waited < o.RecoverWait {
		t.Errorf("recovered after %v, before recover_wait %v", waited, o.RecoverWait)
	}
}
