package forward_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/plugins/forward"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// sender builds and starts an engine whose forward output has the given
// server sections, and returns its emit.
func sender(t *testing.T, servers string) func(n int, prefix string) {
	t.Helper()
	e := plugintest.Build(t, `
<match **>
  @type forward
  heartbeat_type none
  recover_wait 0.2
  connect_timeout 1
`+servers+`
  <buffer tag>
    flush_interval 0.05
    retry_wait 0.05
    retry_max_interval 0.2
    retry_forever true
  </buffer>
</match>`)
	plugintest.Start(t, e)
	return func(n int, prefix string) {
		plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "app.sd", events(t, n, prefix)...)))
	}
}

// TestStaticServiceDiscovery: <service_discovery> @type static with
// <service> sections, and no <server>, delivers to them.
func TestStaticServiceDiscovery(t *testing.T) {
	_, _, addr := server(t, "sdstatic", "")
	host, port, _ := net.SplitHostPort(addr)
	emit := sender(t, `
  <service_discovery>
    @type static
    <service>
      host `+host+`
      port `+port+`
    </service>
  </service_discovery>`)
	emit(50, "s")
	plugintest.WaitFor(t, "50 events", func() bool { return len(plugintest.Captured("sdstatic")) >= 50 })
}

// TestFileServiceDiscovery: the servers of a YAML file are used, and when
// the file changes to name another server, chunks go there.
func TestFileServiceDiscovery(t *testing.T) {
	defer forward.SetDiscoveryCheckInterval(50 * time.Millisecond)()
	_, _, addr := server(t, "sdfile", "")
	host, port, _ := net.SplitHostPort(addr)
	list := filepath.Join(t.TempDir(), "servers.yaml")
	write := func(p string) {
		t.Helper()
		body := fmt.Sprintf("- host: %s\n  port: %s\n  weight: 10\n", host, p)
		if err := os.WriteFile(list+".tmp", []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(list+".tmp", list); err != nil {
			t.Fatal(err)
		}
	}
	write(freeClosedPort(t)) // nothing listens there yet
	emit := sender(t, `
  <service_discovery>
    @type file
    path `+list+`
  </service_discovery>`)
	emit(20, "f")
	time.Sleep(300 * time.Millisecond)
	if n := len(plugintest.Captured("sdfile")); n != 0 {
		t.Fatalf("%d events arrived before the file named the server", n)
	}
	// A later modification time, so that the change is seen even within
	// the file system's timestamp resolution.
	write(port)
	future := time.Now().Add(2 * time.Second)
	_ = os.Chtimes(list, future, future)
	plugintest.WaitFor(t, "the events, once the file names the server", func() bool { return len(plugintest.Captured("sdfile")) >= 20 })
}

// dnsServer answers SRV and A queries on a loopback UDP port, in DNS's
// wire format (RFC 1035, RFC 2782): the srv records for any SRV question,
// 127.0.0.1 for any A question, nothing for others.
func dnsServer(t *testing.T, srvPort int) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			q := buf[:n]
			if len(q) < 12 {
				continue
			}
			// The question: labels up to a zero byte, then type and class.
			end := 12
			for end < len(q) && q[end] != 0 {
				end += int(q[end]) + 1
			}
			if end+5 > len(q) {
				continue
			}
			qtype := binary.BigEndian.Uint16(q[end+1:])
			question := q[12 : end+5]
			resp := append([]byte(nil), q[:2]...)
			resp = binary.BigEndian.AppendUint16(resp, 0x8580) // response, authoritative, recursion
			var answers [][]byte
			switch qtype {
			case 33: // SRV
				target := []byte{}
				for _, label := range strings.Split("agg-0.logs.test", ".") {
					target = append(append(target, byte(len(label))), label...)
				}
				target = append(target, 0)
				rdata := binary.BigEndian.AppendUint16(nil, 10) // priority
				rdata = binary.BigEndian.AppendUint16(rdata, 5) // weight
				rdata = binary.BigEndian.AppendUint16(rdata, uint16(srvPort))
				answers = append(answers, answer(33, append(rdata, target...)))
			case 1: // A
				answers = append(answers, answer(1, []byte{127, 0, 0, 1}))
			}
			resp = binary.BigEndian.AppendUint16(resp, 1)
			resp = binary.BigEndian.AppendUint16(resp, uint16(len(answers)))
			resp = binary.BigEndian.AppendUint16(resp, 0)
			resp = binary.BigEndian.AppendUint16(resp, 0)
			resp = append(resp, question...)
			for _, a := range answers {
				resp = append(resp, a...)
			}
			_, _ = pc.WriteTo(resp, from)
		}
	}()
	return pc.LocalAddr().String()
}

// answer is a resource record naming the question (a pointer to offset 12).
func answer(typ uint16, rdata []byte) []byte {
	a := []byte{0xC0, 12}
	a = binary.BigEndian.AppendUint16(a, typ)
	a = binary.BigEndian.AppendUint16(a, 1)  // IN
	a = binary.BigEndian.AppendUint32(a, 30) // TTL
	a = binary.BigEndian.AppendUint16(a, uint16(len(rdata)))
	return append(a, rdata...)
}

// TestSRVServiceDiscovery: the servers come from the SRV records of
// _fluentd._tcp.<hostname>, their targets resolved to addresses.
func TestSRVServiceDiscovery(t *testing.T) {
	_, _, addr := server(t, "sdsrv", "")
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	dns := dnsServer(t, p)
	emit := sender(t, `
  <service_discovery>
    @type srv
    service fluentd
    hostname logs.test
    dns_server_host `+dns+`
    interval 30
  </service_discovery>`)
	emit(30, "d")
	plugintest.WaitFor(t, "30 events", func() bool { return len(plugintest.Captured("sdsrv")) >= 30 })
}

func TestServiceDiscoveryConfigErrors(t *testing.T) {
	for extra, want := range map[string]string{
		"<service_discovery>\n    @type consul\n  </service_discovery>":                            `@type "consul": want one of static, file, srv`,
		"<service_discovery>\n    @type static\n  </service_discovery>":                            "needs at least one <service>",
		"<service_discovery>\n    @type srv\n    service x\n  </service_discovery>":                `"hostname" is missing`,
		"<service_discovery>\n    @type file\n    path /x.yaml\n    pth y\n  </service_discovery>": `unknown parameter "pth"`,
	} {
		_, err := plugintest.BuildErr("<match **>\n  @type forward\n  " + extra + "\n</match>")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", extra, err, want)
		}
	}
}
