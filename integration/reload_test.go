//go:build integration

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/sluice-log/sluice/internal/top"
)

// reloadConf is the configuration of the reload test, version v: the
// sources never change; v2 adds a route for new.**; v3 moves the app
// output's files (a changed output on the same file buffer directory).
func reloadConf(port, metricsPort, v int) string {
	outDir := "out"
	if v >= 3 {
		outDir = "out3"
	}
	conf := fmt.Sprintf(`
<system>
  shutdown_timeout 10s
</system>
<source>
  @type forward
  @id in_forward
  bind 127.0.0.1
  port %d
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port %d
</source>
<match app.**>
  @type file
  @id app
  path {{DIR}}/%s/${tag}/events
  append true
  <format>
    @type json
  </format>
  <buffer tag,time>
    @type file
    path {{DIR}}/buffer/app
    timekey 1d
    timekey_wait 0
    flush_mode interval
    flush_interval 0.2
    flush_at_shutdown true
  </buffer>
</match>
`, port, metricsPort, outDir)
	if v >= 2 {
		conf += `
<match new.**>
  @type file
  @id new
  path {{DIR}}/new/${tag}/events
  append true
  <format>
    @type json
  </format>
  <buffer tag,time>
    timekey 1d
    timekey_wait 0
    flush_mode interval
    flush_interval 0.2
  </buffer>
</match>
`
	}
	return conf
}

// scrape reads metric name of plugin id ("" for an engine-wide series)
// with sluice top's parser.
func scrape(t *testing.T, url, name, id string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	m, err := top.Parse(resp.Body, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if id == "" {
		return m.Global[name]
	}
	return m.Values[name][id]
}

// waitLogCount waits until the instance has logged want lines containing s.
func waitLogCount(t *testing.T, in *instance, s string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(in.Logs(), s) < want {
		if time.Now().After(deadline) {
			t.Fatalf("waited for %d lines with %q\n%s", want, s, in.Logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestReloadUnderLoad: fluent-logger-golang clients with RequestAck send
// throughout three reloads (one of them a bad config). No connection is
// dropped, every acknowledged event arrives exactly once, the route added
// by a reload takes effect, and the bad config changes nothing.
func TestReloadUnderLoad(t *testing.T) {
	port, metricsPort := freePort(t), freePort(t)
	dir := t.TempDir()
	in := startSluiceIn(t, dir, reloadConf(port, metricsPort, 1))
	metricsURL := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	confPath := filepath.Join(dir, "sluice.conf")
	apply := func(conf string, sig syscall.Signal) {
		t.Helper()
		if err := os.WriteFile(confPath, []byte(strings.ReplaceAll(conf, "{{DIR}}", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := in.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}

	const clients = 4
	newConn := func() *fluent.Fluent {
		l, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port, RequestAck: true, MaxRetry: 1})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	var (
		mu     sync.Mutex
		acked  []string
		errs   []error
		wg     sync.WaitGroup
		stopCh = make(chan struct{})
	)
	for c := 0; c < clients; c++ {
		l := newConn()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer l.Close()
			for i := 0; ; i++ {
				select {
				case <-stopCh:
					return
				default:
				}
				id := fmt.Sprintf("c%d-%d", c, i)
				err := l.Post("app.reload", map[string]string{"id": id, "log": "sent while reloading"})
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					acked = append(acked, id)
				}
				mu.Unlock()
			}
		}()
	}
	side := newConn() // the fifth connection: events for the route v2 adds
	defer side.Close()
	post := func(tag, id string) {
		t.Helper()
		if err := side.Post(tag, map[string]string{"id": id}); err != nil {
			t.Fatalf("post %s: %v", tag, err)
		}
	}

	time.Sleep(time.Second)
	post("new.route", "before-reload") // no route yet: dropped as unmatched
	apply(reloadConf(port, metricsPort, 2), syscall.SIGHUP)
	waitLogCount(t, in, "configuration reloaded", 1)
	var newIDs []string
	for i := 0; i < 20; i++ {
		newIDs = append(newIDs, fmt.Sprintf("after-reload-%d", i))
		post("new.route", newIDs[i])
	}

	time.Sleep(time.Second)
	apply(strings.Replace(reloadConf(port, metricsPort, 3), "append true", "apend true", 1), syscall.SIGUSR2)
	waitLogCount(t, in, "reload rejected", 1)

	time.Sleep(time.Second)
	apply(reloadConf(port, metricsPort, 3), syscall.SIGHUP)
	waitLogCount(t, in, "configuration reloaded", 2)
	time.Sleep(time.Second)

	if got := scrape(t, metricsURL, "sluice_input_connections_total", "in_forward"); got != clients+1 {
		t.Errorf("forward accepted %v connections over the test, want %d: a reload dropped connections", got, clients+1)
	}
	if got := scrape(t, metricsURL, "sluice_config_reloads_total", ""); got != 2 {
		t.Errorf("sluice_config_reloads_total = %v, want 2", got)
	}
	if got := scrape(t, metricsURL, "sluice_config_reload_failures_total", ""); got != 1 {
		t.Errorf("sluice_config_reload_failures_total = %v, want 1", got)
	}
	close(stopCh)
	wg.Wait()
	side.Close()
	in.Stop()

	mu.Lock()
	defer mu.Unlock()
	if len(errs) > 0 {
		t.Errorf("%d posts failed during the reloads, first: %v", len(errs), errs[0])
	}
	if len(acked) < 1000 {
		t.Fatalf("only %d events acknowledged: too little load to test anything", len(acked))
	}
	missing, dups := countByID(t, filepath.Join(dir, "out*", "app.reload", "*.log"), acked, 20*time.Second)
	t.Logf("%d events acknowledged across the reloads; missing %d, duplicated %d", len(acked), len(missing), len(dups))
	if len(missing) > 0 || len(dups) > 0 {
		t.Errorf("missing %v, duplicated %v\n%s", first(missing), first(dups), in.Logs())
	}
	if n := len(jsonRecords(t, filepath.Join(dir, "out3", "app.reload", "*.log"))); n == 0 {
		t.Errorf("nothing written under out3: the changed output did not take over")
	}
	missing, dups = countByID(t, filepath.Join(dir, "new", "new.route", "*.log"), newIDs, 5*time.Second)
	if len(missing) > 0 || len(dups) > 0 {
		t.Errorf("route added by the reload: missing %v, duplicated %v", first(missing), first(dups))
	}
	for _, r := range jsonRecords(t, filepath.Join(dir, "new", "new.route", "*.log")) {
		if r["id"] == "before-reload" {
			t.Errorf("an event sent before the route existed was delivered by it")
		}
	}
}

// TestRPCEndpoint: Fluentd's HTTP RPC (<system> rpc_endpoint) reloads,
// rejects a bad configuration with its errors, flushes and stops.
func TestRPCEndpoint(t *testing.T) {
	port, rpcPort := freePort(t), freePort(t)
	conf := func(extra string) string {
		return fmt.Sprintf(`
<system>
  rpc_endpoint 127.0.0.1:%d
</system>
<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
%s`, rpcPort, port, extra)
	}
	dir := t.TempDir()
	in := startSluiceIn(t, dir, conf(""))
	call := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", rpcPort, path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	if code, body := call("/api/plugins.flushBuffers"); code != 200 || body != `{"ok":true}` {
		t.Fatalf("flushBuffers: %d %s", code, body)
	}
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "sluice.conf"), []byte(strings.ReplaceAll(text, "{{DIR}}", dir)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(conf("<match app.**>\n  @type file\n  path {{DIR}}/out/${tag}/events\n  append true\n  <format>\n    @type json\n  </format>\n  <buffer tag,time>\n    timekey 1d\n    timekey_wait 0\n    flush_mode immediate\n  </buffer>\n</match>\n"))
	if code, body := call("/api/config.reload"); code != 200 || body != `{"ok":true}` {
		t.Fatalf("config.reload: %d %s\n%s", code, body, in.Logs())
	}
	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port, RequestAck: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logger.Close()
	if err := logger.Post("app.rpc", map[string]string{"id": "via-rpc-reload"}); err != nil {
		t.Fatal(err)
	}
	if missing, _ := countByID(t, filepath.Join(dir, "out", "app.rpc", "*.log"), []string{"via-rpc-reload"}, 10*time.Second); len(missing) > 0 {
		t.Errorf("the route added through the RPC reload did not deliver\n%s", in.Logs())
	}
	write(conf("<match app.**>\n  @type nope\n</match>\n"))
	if code, body := call("/api/config.gracefulReload"); code != 500 || !strings.Contains(body, `unknown plugin type \"nope\"`) {
		t.Errorf("a bad configuration: %d %s", code, body)
	}
	if code, _ := call("/api/processes.killWorkers"); code != 200 {
		t.Errorf("killWorkers: %d", code)
	}
	select {
	case err := <-in.done:
		if err != nil {
			t.Errorf("exit after killWorkers: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("still running 20 s after killWorkers")
	}
}
