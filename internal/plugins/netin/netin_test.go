package netin_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/plugins/netin"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs source (with port 0 on loopback) into a capture named name
// and returns the bound address.
func start(t *testing.T, source, name string) (string, func()) {
	t.Helper()
	e := plugintest.Build(t, "<source>\n"+source+"\n  bind 127.0.0.1\n  port 0\n</source>\n<match **>\n  @type capture\n  name "+name+"\n</match>\n")
	stop := plugintest.Start(t, e)
	addr := ""
	plugintest.WaitFor(t, "the listener", func() bool { addr = plugintest.BoundAddr(e); return addr != "" })
	return addr, stop
}

func waitCount(t *testing.T, name string, n int) []plugintest.Event {
	t.Helper()
	plugintest.WaitFor(t, fmt.Sprintf("%d events in %s", n, name), func() bool { return len(plugintest.Captured(name)) >= n })
	return plugintest.Captured(name)
}

func send(t *testing.T, network, addr string, msgs ...string) {
	t.Helper()
	c, err := net.Dial(network, addr)
	plugintest.Must(t, err)
	defer c.Close()
	for _, m := range msgs {
		_, err := c.Write([]byte(m))
		plugintest.Must(t, err)
	}
}

// TestSyslogUDPTagsAndFields: the tag is TAG.FACILITY.SEVERITY from the
// <PRI>, which stays out of the record; severity_key, facility_key and
// source_address_key are added; a message without <PRI> is dropped, or
// emitted as unmatched_line with emit_unmatched_lines.
func TestSyslogUDPTagsAndFields(t *testing.T) {
	plugintest.Reset()
	addr, stop := start(t, `  @type syslog
  tag sys
  severity_key severity
  facility_key facility
  source_address_key src
  emit_unmatched_lines true
  <parse>
    message_format auto
  </parse>`, "udp")
	send(t, "udp", addr,
		"<30>Dec  6 10:00:00 web1 nginx[42]: upstream timed out\n",
		"<165>1 2026-12-06T10:00:01.5Z db1 postgres 77 ID47 - checkpoint starting",
		"no priority here")
	got := waitCount(t, "udp", 3)
	stop()
	byTag := map[string]map[string]any{}
	for _, ev := range got {
		byTag[ev.Tag] = ev.Record
	}
	daemon := byTag["sys.daemon.info"]
	if daemon == nil || daemon["host"] != "web1" || daemon["ident"] != "nginx" || daemon["pid"] != "42" ||
		daemon["message"] != "upstream timed out" || daemon["severity"] != "info" || daemon["facility"] != "daemon" || daemon["src"] != "127.0.0.1" {
		t.Errorf("rfc3164 event: %v (all: %v)", daemon, got)
	}
	if _, ok := daemon["pri"]; ok {
		t.Errorf("pri kept in the record: %v", daemon)
	}
	local4 := byTag["sys.local4.notice"]
	if local4 == nil || local4["msgid"] != "ID47" || local4["message"] != "checkpoint starting" || local4["pri"] != nil {
		t.Errorf("rfc5424 event: %v", local4)
	}
	if u := byTag["sys.unmatched"]; u == nil || u["unmatched_line"] != "no priority here" || u["src"] != "127.0.0.1" {
		t.Errorf("unmatched line: %v", u)
	}
}

// TestSyslogTCPFramings: traditional (newline) and octet-counted frames,
// sent in pieces, each message once and in order; a message over the
// bound is dropped and counted and the connection goes on.
func TestSyslogTCPFramings(t *testing.T) {
	plugintest.Reset()
	trad, stopTrad := start(t, "  @type syslog\n  tag t\n  <transport tcp>\n  </transport>", "trad")
	var msgs []string
	for i := 0; i < 200; i++ {
		msgs = append(msgs, fmt.Sprintf("<14>Dec  6 10:00:00 h app: line %d\n", i))
	}
	joined := strings.Join(msgs, "")
	send(t, "tcp", trad, joined[:7], joined[7:1000], joined[1000:])
	got := waitCount(t, "trad", 200)
	stopTrad()
	for i, ev := range got {
		if ev.Tag != "t.user.info" || ev.Record["message"] != fmt.Sprintf("line %d", i) {
			t.Fatalf("event %d: %s %v", i, ev.Tag, ev.Record)
		}
	}

	e := plugintest.Build(t, `<source>
  @type syslog
  tag o
  bind 127.0.0.1
  port 0
  frame_type octet_count
  message_length_limit 2048
  <transport tcp>
  </transport>
  <parse>
    message_format rfc5424
  </parse>
</source>
<match **>
  @type capture
  name octet
</match>`)
	stop := plugintest.Start(t, e)
	var addr string
	plugintest.WaitFor(t, "the listener", func() bool { addr = plugintest.BoundAddr(e); return addr != "" })
	frame := func(m string) string { return fmt.Sprintf("%d %s", len(m), m) }
	huge := "<11>1 2026-12-06T10:00:00Z h app - - - " + strings.Repeat("x", 2<<20)
	send(t, "tcp", addr, frame("<11>1 2026-12-06T10:00:00Z h app - - - first"), frame(huge),
		frame("<11>1 2026-12-06T10:00:00Z h app - - - multi\nline"), frame("<11>1 2026-12-06T10:00:00Z h app - - - last"))
	got = waitCount(t, "octet", 3)
	var oversized int64
	for _, p := range e.Inputs() {
		if m, ok := p.(plugin.Measured); ok {
			m.Measure(func(name, _ string, v int64, _ bool) {
				if name == "oversized_total" {
					oversized = v
				}
			})
		}
	}
	stop()
	var texts []string
	for _, ev := range got {
		texts = append(texts, fmt.Sprint(ev.Record["message"]))
	}
	if fmt.Sprint(texts) != fmt.Sprint([]string{"first", "multi\nline", "last"}) || got[0].Tag != "o.user.err" {
		t.Errorf("octet-counted messages %q (tag %s)", texts, got[0].Tag)
	}
	if oversized != 1 {
		t.Errorf("oversized_total %d, want 1", oversized)
	}
}

// TestTCPAndUDPParse: in_tcp and in_udp parse each message with <parse>
// and add the source fields; a line a client ends without its delimiter
// before closing is still a message.
func TestTCPAndUDPParse(t *testing.T) {
	plugintest.Reset()
	tcpAddr, stopTCP := start(t, "  @type tcp\n  tag raw.tcp\n  source_address_key ip\n  <parse>\n    @type json\n  </parse>", "tcp")
	send(t, "tcp", tcpAddr, `{"n":1}`+"\n"+`not json`+"\n"+`{"n":2}`+"\n"+`{"n":3}`)
	got := waitCount(t, "tcp", 3)
	stopTCP()
	var ns []string
	for _, ev := range got {
		if ev.Record["ip"] != "127.0.0.1" || ev.Tag != "raw.tcp" {
			t.Errorf("event %v", ev)
		}
		ns = append(ns, fmt.Sprint(ev.Record["n"]))
	}
	if fmt.Sprint(ns) != "[1 2 3]" {
		t.Errorf("tcp events %v", ns)
	}

	udpAddr, stopUDP := start(t, "  @type udp\n  tag raw.udp\n  <parse>\n    @type none\n  </parse>", "udp2")
	c, err := net.Dial("udp", udpAddr)
	plugintest.Must(t, err)
	for i := 0; i < 20; i++ {
		_, _ = fmt.Fprintf(c, "datagram %02d\r\n", i)
	}
	c.Close()
	// UDP may drop under load; on loopback with 20 datagrams it does not.
	got = waitCount(t, "udp2", 20)
	stopUDP()
	var lines []string
	for _, ev := range got {
		lines = append(lines, fmt.Sprint(ev.Record["message"]))
	}
	sort.Strings(lines)
	if lines[0] != "datagram 00" || lines[19] != "datagram 19" {
		t.Errorf("udp lines %q", lines)
	}
}

// TestTCPShutdownDrains: the input stops while a client is connected;
// what the client sent whole is emitted and Run returns.
func TestTCPShutdownDrains(t *testing.T) {
	plugintest.Reset()
	addr, stop := start(t, "  @type tcp\n  tag d\n  <parse>\n    @type none\n  </parse>", "drain")
	c, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer c.Close()
	_, _ = c.Write([]byte("one\ntwo\nhalf"))
	waitCount(t, "drain", 2)
	done := make(chan struct{})
	go func() { stop(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the input did not stop with a client connected")
	}
	if got := plugintest.Captured("drain"); len(got) != 2 {
		t.Errorf("%d events, want 2 (the partial line is dropped at shutdown)", len(got))
	}
}

// TestTLSTransports: syslog and tcp take <transport tls>; a client that
// speaks plain TCP to a TLS port is counted and closed.
func TestTLSTransports(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	cert, key := plugintest.WriteCert(t, dir)
	tlsSection := fmt.Sprintf("  <transport tls>\n    cert_path %s\n    private_key_path %s\n  </transport>", cert, key)
	sysAddr, stopSys := start(t, "  @type syslog\n  tag sec\n"+tlsSection, "tls-syslog")
	tcpAddr, stopTCP := start(t, "  @type tcp\n  tag sec.tcp\n"+tlsSection+"\n  <parse>\n    @type none\n  </parse>", "tls-tcp")
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(cert)
	pool.AppendCertsFromPEM(pem)
	for _, addr := range []string{sysAddr, tcpAddr} {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
		plugintest.Must(t, err)
		_, err = c.Write([]byte("<86>Dec  6 10:00:00 host sshd[7]: accepted over TLS\n"))
		plugintest.Must(t, err)
		c.Close()
	}
	plain, err := net.Dial("tcp", sysAddr)
	plugintest.Must(t, err)
	_, _ = plain.Write([]byte("<86>Dec  6 10:00:00 host sshd[7]: in the clear\n"))
	_ = plain.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _ = plain.Read(make([]byte, 16)) // the server answers with a TLS alert, then closes
	plain.Close()
	sys := waitCount(t, "tls-syslog", 1)
	raw := waitCount(t, "tls-tcp", 1)
	stopSys()
	stopTCP()
	if sys[0].Tag != "sec.authpriv.info" || sys[0].Record["message"] != "accepted over TLS" {
		t.Errorf("syslog over TLS: %s %v", sys[0].Tag, sys[0].Record)
	}
	if !strings.HasSuffix(fmt.Sprint(raw[0].Record["message"]), "accepted over TLS") {
		t.Errorf("tcp over TLS: %v", raw[0].Record)
	}
	if len(plugintest.Captured("tls-syslog")) != 1 {
		t.Errorf("the plain-text message got in: %v", plugintest.Captured("tls-syslog"))
	}
}

// TestReceiveBufferLimitAcrossConnections: connections that each hold a
// message still arriving share receive_buffer_limit; one that cannot get
// its share in time is closed and counted, the others are not hurt, and
// a client that finishes its message is served.
func TestReceiveBufferLimitAcrossConnections(t *testing.T) {
	plugintest.Reset()
	defer netin.SetBudgetPatience(200 * time.Millisecond)()
	e := plugintest.Build(t, `<source>
  @type tcp
  tag bound
  bind 127.0.0.1
  port 0
  receive_buffer_limit 64k
  <parse>
    @type none
  </parse>
</source>
<match **>
  @type capture
  name bound
</match>`)
	stop := plugintest.Start(t, e)
	var addr string
	plugintest.WaitFor(t, "the listener", func() bool { addr = plugintest.BoundAddr(e); return addr != "" })
	// Two connections each send 24 KiB of one line without its end: each
	// holds 32 KiB, the whole limit.
	var holders []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		plugintest.Must(t, err)
		defer c.Close()
		_, err = c.Write([]byte(strings.Repeat("h", 24<<10)))
		plugintest.Must(t, err)
		holders = append(holders, c)
	}
	counter := func(name string) int64 {
		var v int64
		for _, p := range e.Inputs() {
			if m, ok := p.(plugin.Measured); ok {
				m.Measure(func(n, _ string, x int64, _ bool) {
					if n == name {
						v = x
					}
				})
			}
		}
		return v
	}
	plugintest.WaitFor(t, "the holders' growth", func() bool {
		return netin.ReceiveBufferUsed(e.Inputs()[0].(*netin.TCP)) == 64<<10
	})
	// A third connection gets nothing of the budget in time: closed.
	late, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer late.Close()
	_ = late.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := late.Read(make([]byte, 1)); err == nil {
		t.Error("the connection over receive_buffer_limit was not closed")
	}
	if n := counter("buffer_full_total"); n < 1 {
		t.Errorf("buffer_full_total %d, want at least 1", n)
	}
	// The holders finish their lines: both are emitted whole.
	for _, c := range holders {
		_, err := c.Write([]byte("\n"))
		plugintest.Must(t, err)
	}
	got := waitCount(t, "bound", 2)
	stop()
	for _, ev := range got {
		if len(fmt.Sprint(ev.Record["message"])) != 24<<10 {
			t.Errorf("a held line arrived cut: %d bytes", len(fmt.Sprint(ev.Record["message"])))
		}
	}
}
