//go:build integration

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSyslogFromRealClients: util-linux's logger sends to the syslog
// source over UDP, TCP with newline framing and TCP with octet counting,
// in RFC 3164 and RFC 5424, and rsyslog relays to it over TCP with octet
// counting, as a node's syslog daemon forwards to an aggregator. Every
// message arrives once, under TAG.FACILITY.SEVERITY, with its fields.
// scripts/test installs logger (bsdutils) and rsyslog.
func TestSyslogFromRealClients(t *testing.T) {
	for _, bin := range []string{"logger", "rsyslogd"} {
		if _, err := exec.LookPath(bin); err != nil {
			if _, err := os.Stat("/usr/sbin/" + bin); err != nil {
				t.Fatalf("%s is not installed (scripts/test installs it)", bin)
			}
		}
	}
	udp, tcp, octet := freePort(t), freePort(t), freePort(t)
	in := startSluice(t, fmt.Sprintf(`
<system>
  shutdown_timeout 10s
</system>
<source>
  @type syslog
  tag udp
  bind 127.0.0.1
  port %d
  severity_key severity
  source_address_key from
  <parse>
    message_format auto
  </parse>
</source>
<source>
  @type syslog
  tag tcp
  bind 127.0.0.1
  port %d
  facility_key facility
  <transport tcp>
  </transport>
  <parse>
    message_format auto
  </parse>
</source>
<source>
  @type syslog
  tag octet
  bind 127.0.0.1
  port %d
  frame_type octet_count
  <transport tcp>
  </transport>
  <parse>
    @type syslog
    message_format rfc5424
  </parse>
</source>
`, udp, tcp, octet)+fileSinkMatch)
	defer in.Stop()

	const n = 200
	lines := func(prefix string) ([]string, string) {
		ids := ids(prefix, n)
		return ids, strings.Join(ids, "\n") + "\n"
	}
	type run struct {
		name, tag string
		args      []string
		check     func(r map[string]any) string
	}
	runs := []run{
		{"udp-3164", "udp.local3.warn", []string{"--udp", "-P", strconv.Itoa(udp), "--rfc3164", "-p", "local3.warning"},
			func(r map[string]any) string {
				if r["ident"] != "app" || r["severity"] != "warn" || r["from"] != "127.0.0.1" || r["pri"] != nil {
					return "fields"
				}
				return ""
			}},
		{"udp-5424", "udp.user.err", []string{"--udp", "-P", strconv.Itoa(udp), "--rfc5424", "-p", "user.err"},
			func(r map[string]any) string {
				if r["ident"] != "app" || r["severity"] != "err" {
					return "fields"
				}
				return ""
			}},
		{"tcp-newline", "tcp.daemon.notice", []string{"--tcp", "-P", strconv.Itoa(tcp), "--rfc5424", "-p", "daemon.notice"},
			func(r map[string]any) string {
				if r["facility"] != "daemon" || r["ident"] != "app" {
					return "fields"
				}
				return ""
			}},
		{"tcp-newline-3164", "tcp.mail.info", []string{"--tcp", "-P", strconv.Itoa(tcp), "--rfc3164", "-p", "mail.info"}, nil},
		{"tcp-octet", "octet.local7.debug", []string{"--tcp", "--octet-count", "-P", strconv.Itoa(octet), "--rfc5424", "-p", "local7.debug"},
			func(r map[string]any) string {
				if r["ident"] != "app" || r["pid"] == nil {
					return "fields"
				}
				return ""
			}},
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			want, input := lines(r.name)
			args := append([]string{"-n", "127.0.0.1", "-t", "app", "--id=4242"}, r.args...)
			cmd := exec.Command("logger", args...)
			cmd.Stdin = strings.NewReader(input)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("logger %v: %v\n%s", args, err, out)
			}
			pattern := filepath.Join(in.Dir, "out", r.tag, "*.log")
			missing, dups := countByField(t, pattern, "message", want, 20*time.Second)
			if len(missing) > 0 || len(dups) > 0 {
				t.Fatalf("%s: %d missing (first %v), %d duplicated\n%s", r.tag, len(missing), first(missing), len(dups), in.Logs())
			}
			if r.check != nil {
				for _, rec := range jsonRecords(t, pattern) {
					if bad := r.check(rec); bad != "" {
						t.Fatalf("%s: record %v: wrong %s", r.tag, rec, bad)
					}
				}
			}
		})
	}

	t.Run("rsyslog-relay", func(t *testing.T) {
		relay := freePort(t)
		dir := t.TempDir()
		conf := fmt.Sprintf(`global(workDirectory=%q)
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="%d")
action(type="omfwd" target="127.0.0.1" port="%d" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
`, dir, relay, octet)
		confPath := filepath.Join(dir, "rsyslog.conf")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		rsyslogd := "rsyslogd"
		if _, err := exec.LookPath(rsyslogd); err != nil {
			rsyslogd = "/usr/sbin/rsyslogd"
		}
		cmd := exec.Command(rsyslogd, "-n", "-f", confPath, "-i", filepath.Join(dir, "rsyslogd.pid"))
		logs, _ := os.Create(filepath.Join(dir, "rsyslogd.log"))
		defer logs.Close()
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		// rsyslog binds its UDP input as it starts; logger over UDP does not
		// know whether anyone listens, so probe until one message arrives.
		pattern := filepath.Join(in.Dir, "out", "octet.local1.info", "*.log")
		// rsyslog keeps a message's leading space in RFC 5424's MSG; the
		// messages are compared without it.
		seen := func() map[string]int {
			seen := map[string]int{}
			for _, r := range jsonRecords(t, pattern) {
				if m, ok := r["message"].(string); ok {
					seen[strings.TrimSpace(m)]++
				}
				if r["ident"] != "relay" {
					t.Fatalf("relayed record %v", r)
				}
			}
			return seen
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			_ = exec.Command("logger", "-n", "127.0.0.1", "--udp", "-P", strconv.Itoa(relay), "--rfc3164", "-t", "relay", "-p", "local1.info", "probe").Run()
			time.Sleep(200 * time.Millisecond)
			if seen()["probe"] > 0 {
				break
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(filepath.Join(dir, "rsyslogd.log"))
				t.Fatalf("nothing relayed by rsyslog\n%s\n%s", b, in.Logs())
			}
		}
		want, input := lines("relayed")
		cmd2 := exec.Command("logger", "-n", "127.0.0.1", "--udp", "-P", strconv.Itoa(relay), "--rfc3164", "-t", "relay", "-p", "local1.info")
		cmd2.Stdin = strings.NewReader(input)
		if out, err := cmd2.CombinedOutput(); err != nil {
			t.Fatalf("logger: %v\n%s", err, out)
		}
		deadline = time.Now().Add(20 * time.Second)
		for {
			got := seen()
			var missing, dups []string
			for _, id := range want {
				switch got[id] {
				case 0:
					missing = append(missing, id)
				case 1:
				default:
					dups = append(dups, id)
				}
			}
			if len(dups) > 0 {
				t.Fatalf("duplicated through rsyslog: %v", first(dups))
			}
			if len(missing) == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d missing through rsyslog (first %v)", len(missing), n, first(missing))
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}
