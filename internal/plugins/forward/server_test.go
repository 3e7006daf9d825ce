package forward_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugins/forward"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// server starts an engine whose forward source has extra parameters and
// whose events go to capture NAME.
func server(t *testing.T, name, params string) (*engine.Engine, *forward.Input, string) {
	t.Helper()
	return serverTo(t, params, "@type capture\n  name "+name)
}

// serverTo starts an engine whose forward source has extra parameters and
// whose events go to the output that match describes.
func serverTo(t *testing.T, params, match string) (*engine.Engine, *forward.Input, string) {
	t.Helper()
	plugintest.Reset()
	e := plugintest.Build(t, `
<source>
  @type forward
  bind 127.0.0.1
  port 0
`+params+`
</source>
<match **>
  `+match+`
</match>
`)
	plugintest.Start(t, e)
	var addr string
	plugintest.WaitFor(t, "the listener", func() bool { addr = plugintest.BoundAddr(e); return addr != "" })
	return e, e.Inputs()[0].(*forward.Input), addr
}

func message(t testing.TB, tag, chunk string, kv ...any) []byte {
	m := map[string]any{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	rec, err := event.EncodeRecord(m)
	if err != nil {
		t.Fatal(err)
	}
	n := uint32(3)
	if chunk != "" {
		n = 4
	}
	b := msgp.AppendArrayHeader(nil, n)
	b = msgp.AppendString(b, tag)
	b = event.AppendEventTime(b, event.Now())
	b = append(b, rec...)
	if chunk != "" {
		b = msgp.AppendMapHeader(b, 1)
		b = msgp.AppendString(msgp.AppendString(b, "chunk"), chunk)
	}
	return b
}

// readObject reads one msgpack value from c.
func readObject(t *testing.T, c net.Conn) (any, error) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	var buf []byte
	tmp := make([]byte, 4096)
	for {
		if len(buf) > 0 {
			if v, _, err := msgp.ReadIntfBytes(buf); err == nil {
				return v, nil
			}
		}
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		if err != nil {
			return nil, err
		}
	}
}

func expectAck(t *testing.T, c net.Conn, chunk string) {
	t.Helper()
	v, err := readObject(t, c)
	if err != nil {
		t.Fatalf("waiting for ack %s: %v", chunk, err)
	}
	if m, ok := v.(map[string]any); !ok || m["ack"] != chunk {
		t.Fatalf("reply %#v, want ack %s", v, chunk)
	}
}

func expectClosed(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(c); err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("connection not closed: %v", err)
	}
}

func TestDuplicateChunksAreAckedNotEmitted(t *testing.T) {
	_, in, addr := server(t, "dedup", "")
	c, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer c.Close()
	msg := message(t, "app", "chunk-A", "n", 1)
	for i := 0; i < 3; i++ {
		c.Write(msg)
		expectAck(t, c, "chunk-A")
	}
	// A resend over a new connection (the client reconnected) is caught too.
	c2, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer c2.Close()
	c2.Write(msg)
	expectAck(t, c2, "chunk-A")
	c2.Write(message(t, "app", "chunk-B", "n", 2))
	expectAck(t, c2, "chunk-B")
	if n := len(plugintest.Captured("dedup")); n != 2 {
		t.Errorf("captured %d events, want 2 (chunk-A once, chunk-B once)", n)
	}
	if got := in.Stats.DuplicatesSuppressed.Load(); got != 3 {
		t.Errorf("suppressed %d, want 3", got)
	}
}

// Chunk ids are the client's choice. Two clients whose ids coincide (a
// generator counting from 1 on each connection, a client library seeded
// alike) send different messages under one id: both are emitted and
// acknowledged, neither is taken for the other's resend.
func TestSameChunkIDOnDifferentMessages(t *testing.T) {
	_, in, addr := server(t, "dedup-collide", "")
	msgs := [][]byte{
		message(t, "frontend", "c0-1", "n", 1),
		message(t, "backend", "c0-1", "n", 2),
		message(t, "frontend", "c0-1", "n", 3, "log", "another record under the same tag"),
	}
	for _, msg := range msgs {
		c, err := net.Dial("tcp", addr)
		plugintest.Must(t, err)
		c.Write(msg)
		expectAck(t, c, "c0-1")
		c.Close()
	}
	if n := len(plugintest.Captured("dedup-collide")); n != 3 {
		t.Errorf("captured %d events, want 3: a chunk id shared by different messages is not a resend", n)
	}
	if got := in.Stats.DuplicatesSuppressed.Load(); got != 0 {
		t.Errorf("suppressed %d, want 0", got)
	}
}

func TestMaxConnectionAgeClosesAfterAcks(t *testing.T) {
	_, in, addr := server(t, "age", "max_connection_age 0.2\nmax_connection_age_jitter 0.05")
	c, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer c.Close()
	c.Write(message(t, "app", "c1", "n", 1))
	expectAck(t, c, "c1")
	expectClosed(t, c) // closed once old, with nothing in flight
	if in.Stats.AgedOut.Load() != 1 || len(plugintest.Captured("age")) != 1 {
		t.Errorf("aged out %d, captured %d", in.Stats.AgedOut.Load(), len(plugintest.Captured("age")))
	}
}

func TestMaxConnectionsAndIdleTimeout(t *testing.T) {
	_, in, addr := server(t, "limits", "max_connections 1\nidle_timeout 0.3")
	first, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer first.Close()
	plugintest.WaitFor(t, "the first connection", func() bool { return in.Stats.Connections.Load() == 1 })
	second, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer second.Close()
	expectClosed(t, second)
	if in.Stats.ConnectionsRefused.Load() != 1 {
		t.Errorf("refused %d", in.Stats.ConnectionsRefused.Load())
	}
	expectClosed(t, first) // idle for 0.3 s
	if in.Stats.IdleClosed.Load() != 1 {
		t.Errorf("idle closed %d", in.Stats.IdleClosed.Load())
	}
}

func TestOversizedMessageClosesOnlyThatConnection(t *testing.T) {
	_, in, addr := server(t, "big", "chunk_size_limit 1k")
	good, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer good.Close()
	bad, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer bad.Close()
	bad.Write(message(t, "app", "", "blob", strings.Repeat("x", 8192)))
	expectClosed(t, bad)
	good.Write(message(t, "app", "ok", "n", 1))
	expectAck(t, good, "ok")
	if in.Stats.ProtocolErrors.Load() != 1 {
		t.Errorf("protocol errors %d", in.Stats.ProtocolErrors.Load())
	}
}

func TestSkipInvalidEventSourceKeysAndPrefix(t *testing.T) {
	_, _, addr := server(t, "opts", "skip_invalid_event true\nsource_address_key src\nadd_tag_prefix fwd")
	c, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer c.Close()
	var b event.Builder
	rec, _ := event.EncodeRecord(map[string]any{"k": "v", "src": "overwritten"})
	b.Append(event.Now(), rec)
	bad := msgp.AppendArrayHeader(nil, 2)
	bad = msgp.AppendInt64(bad, 1)
	bad = msgp.AppendString(bad, "not a map")
	b.AppendRaw(bad)
	b.Append(event.Now(), rec)
	msg := msgp.AppendArrayHeader(nil, 3)
	msg = msgp.AppendString(msg, "app")
	msg = msgp.AppendBytes(msg, b.Bytes())
	msg = msgp.AppendMapHeader(msg, 1)
	msg = msgp.AppendString(msgp.AppendString(msg, "chunk"), "p1")
	c.Write(msg)
	expectAck(t, c, "p1")
	got := plugintest.Captured("opts")
	if len(got) != 2 {
		t.Fatalf("captured %d, want the 2 valid events", len(got))
	}
	for _, ev := range got {
		if ev.Tag != "fwd.app" || ev.Record["src"] != "127.0.0.1" || ev.Record["k"] != "v" || len(ev.Record) != 2 {
			t.Errorf("event %+v", ev)
		}
	}
}

// TestTagParameter: tag gives every event a fixed tag, and add_tag_prefix
// still applies to it, as in Fluentd.
func TestTagParameter(t *testing.T) {
	_, _, addr := server(t, "fixedtag", "tag from-agents\nadd_tag_prefix fwd")
	c, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer c.Close()
	c.Write(message(t, "docker.abc123", "t1", "log", "hello"))
	expectAck(t, c, "t1")
	got := plugintest.Captured("fixedtag")
	if len(got) != 1 || got[0].Tag != "fwd.from-agents" {
		t.Errorf("captured %+v, want one event tagged fwd.from-agents", got)
	}
}

func TestUDPHeartbeat(t *testing.T) {
	_, in, addr := server(t, "hb", "")
	u, err := net.Dial("udp", addr)
	plugintest.Must(t, err)
	defer u.Close()
	u.Write([]byte{0})
	_ = u.SetReadDeadline(time.Now().Add(5 * time.Second))
	reply := make([]byte, 8)
	n, err := u.Read(reply)
	if err != nil || n != 1 || reply[0] != 0 {
		t.Fatalf("heartbeat reply %x, %v", reply[:n], err)
	}
	if in.Stats.Heartbeats.Load() != 1 {
		t.Errorf("heartbeats %d", in.Stats.Heartbeats.Load())
	}
}

func TestTLSWithClientCertificates(t *testing.T) {
	dir := t.TempDir()
	cert, key := plugintest.WriteCert(t, dir)
	_, in, addr := server(t, "tls", `
<transport tls>
  cert_path `+cert+`
  private_key_path `+key+`
  ca_path `+cert+`
  client_cert_auth true
</transport>`)
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pem)
	pair, err := tls.LoadX509KeyPair(cert, key)
	plugintest.Must(t, err)

	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}})
	plugintest.Must(t, err)
	defer c.Close()
	c.Write(message(t, "secure", "t1", "n", 1))
	expectAck(t, c, "t1")

	// Without a client certificate the handshake fails.
	anon, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err == nil {
		anon.Write(message(t, "secure", "t2", "n", 2))
		_, err = readObject(t, anon)
		anon.Close()
	}
	if err == nil {
		t.Error("a client without a certificate was served")
	}
	plugintest.WaitFor(t, "the failed handshake to be counted", func() bool { return in.Stats.AuthFailures.Load() == 1 })
	if n := len(plugintest.Captured("tls")); n != 1 {
		t.Errorf("captured %d", n)
	}
}

func TestJSONMode(t *testing.T) {
	_, _, addr := server(t, "json", "")
	c, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer c.Close()
	c.Write([]byte(`["app.json", 1441588984, {"message": "hi", "n": 3}, {"chunk": "j1"}]` + "\n"))
	c.Write([]byte(`["app.json", [[1441588985, {"message": "a"}], [1441588986, {"message": "b", "f": 1.5}]], {"chunk": "j2"}]`))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, 0, 64)
	tmp := make([]byte, 64)
	for !strings.Contains(string(got), `"j2"`) {
		n, err := c.Read(tmp)
		got = append(got, tmp[:n]...)
		if err != nil {
			t.Fatalf("acks %q: %v", got, err)
		}
	}
	if string(got) != `{"ack":"j1"}{"ack":"j2"}` {
		t.Errorf("JSON acks %q", got)
	}
	evs := plugintest.Captured("json")
	if len(evs) != 3 || evs[0].Record["n"] != int64(3) || evs[0].Time != 1441588984e9 || evs[2].Record["f"] != 1.5 {
		t.Errorf("events %+v", evs)
	}
}

// TestMessageBatchingKeepsOrder: Message-mode events without acks are
// emitted in batches, but never out of order with the connection's other
// messages.
func TestMessageBatchingKeepsOrder(t *testing.T) {
	_, in, addr := server(t, "order", "")
	c, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer c.Close()
	var all []byte
	n := 0
	for i := 0; i < 3; i++ {
		all = append(all, message(t, "app", "", "n", n)...)
		n++
	}
	var b event.Builder
	for i := 0; i < 2; i++ {
		rec, _ := event.EncodeRecord(map[string]any{"n": n})
		b.Append(event.Now(), rec)
		n++
	}
	fwd := msgp.AppendArrayHeader(nil, 3)
	fwd = msgp.AppendString(fwd, "app")
	fwd = msgp.AppendBytes(fwd, b.Bytes())
	fwd = msgp.AppendMapHeader(fwd, 1)
	fwd = msgp.AppendString(msgp.AppendString(fwd, "chunk"), "mid")
	all = append(all, fwd...)
	for i := 0; i < 3; i++ {
		all = append(all, message(t, "other", "", "n", n)...)
		n++
	}
	c.Write(all) // one write: the server sees all of it in one read
	expectAck(t, c, "mid")
	plugintest.WaitFor(t, "all events", func() bool { return len(plugintest.Captured("order")) == n })
	for i, ev := range plugintest.Captured("order") {
		if ev.Record["n"] != int64(i) {
			t.Fatalf("event %d has n=%v: order broken", i, ev.Record["n"])
		}
	}
	if in.Stats.Events.Load() != int64(n) {
		t.Errorf("events counted %d, want %d", in.Stats.Events.Load(), n)
	}
}

// A reload that moves the source to a port someone else holds is applied
// (the old source stops, as any changed source does), and readiness says
// what is missing until a reload succeeds.
func TestReloadToBusyPortFailsReadiness(t *testing.T) {
	e, _, _ := server(t, "reload", "")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	plugintest.Must(t, err)
	defer busy.Close()
	conf := func(port string) *config.Element {
		root, err := config.Parse("reload.conf", []byte(`
<source>
  @type forward
  bind 127.0.0.1
  port `+port+`
</source>
<match **>
  @type capture
  name reload
</match>
`), nil)
		plugintest.Must(t, err)
		return root
	}
	_, busyPort, _ := net.SplitHostPort(busy.Addr().String())
	plugintest.Must(t, e.Reload(conf(busyPort)))
	if err := e.Ready(1); err == nil || !strings.Contains(err.Error(), "did not start") {
		t.Fatalf("readiness after a source failed to bind: %v", err)
	}
	plugintest.Must(t, e.Reload(conf("0")))
	if err := e.Ready(1); err != nil {
		t.Errorf("still unready after a good reload: %v", err)
	}
}
