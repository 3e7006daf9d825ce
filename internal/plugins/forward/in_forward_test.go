package forward_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// startForward runs an engine with in_forward on a free loopback port and
// returns its address.
func startForward(t *testing.T, name string) (string, func()) {
	t.Helper()
	e := plugintest.Build(t, `
<source>
  @type forward
  bind 127.0.0.1
  port 0
</source>
<match **>
  @type capture
  name `+name+`
</match>
`)
	stop := plugintest.Start(t, e)
	addr := ""
	plugintest.WaitFor(t, "the listener", func() bool {
		addr = plugintest.BoundAddr(e)
		return addr != ""
	})
	return addr, stop
}

func TestServerAcksAndSurvivesGarbage(t *testing.T) {
	plugintest.Reset()
	addr, stop := startForward(t, "srv")

	// A client sends garbage: its connection is closed, nothing else breaks.
	bad, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	bad.Write([]byte{0xc1, 0xc1, 0xc1})
	bad.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bad.Read(make([]byte, 1)); err == nil {
		t.Error("the server kept a connection that sent garbage")
	}
	bad.Close()

	c, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer c.Close()
	rec, _ := event.EncodeRecord(map[string]any{"log": "hello"})
	msg := msgp.AppendArrayHeader(nil, 4)
	msg = msgp.AppendString(msg, "docker.app")
	msg = event.AppendEventTime(msg, event.Now())
	msg = append(msg, rec...)
	msg = msgp.AppendMapHeader(msg, 1)
	msg = msgp.AppendString(msgp.AppendString(msg, "chunk"), "Y2h1bmstMQ==")
	// Send it in two pieces to exercise reassembly.
	c.Write(msg[:5])
	time.Sleep(10 * time.Millisecond)
	c.Write(msg[5:])
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, 64)
	n, err := c.Read(reply)
	plugintest.Must(t, err)
	v, _, err := msgp.ReadIntfBytes(reply[:n])
	plugintest.Must(t, err)
	if m, ok := v.(map[string]any); !ok || m["ack"] != "Y2h1bmstMQ==" {
		t.Fatalf("ack reply %#v", v)
	}
	stop()
	got := plugintest.Captured("srv")
	if len(got) != 1 || got[0].Record["log"] != "hello" || got[0].Tag != "docker.app" {
		t.Errorf("captured %+v", got)
	}
	_ = context.Background()
}
