//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// startPrometheus runs Debian's Prometheus server on loopback, scraping
// target every second, and returns its URL.
func startPrometheus(t *testing.T, target string) string {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed (scripts/test installs Debian's package)")
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	os.WriteFile(conf, []byte(fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: sluice
    static_configs:
      - targets: ['%s']
`, target)), 0o644)
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	logf, _ := os.Create(filepath.Join(dir, "prometheus.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return "http://" + addr
}

// promQuery returns the single value of an instant query, or false.
func promQuery(base, query string) (float64, bool) {
	resp, err := http.Get(base + "/api/v1/query?query=" + url.QueryEscape(query))
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	var out struct {
		Data struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&out) != nil || len(out.Data.Result) != 1 {
		return 0, false
	}
	s, _ := out.Data.Result[0].Value[1].(string)
	v, err := strconv.ParseFloat(s, 64)
	return v, err == nil
}

// TestPrometheusScrapesOutputMetrics: a real Prometheus server scrapes
// Sluice's prometheus source while known traffic flows, and reads the
// fluent-plugin-prometheus series with the values the traffic implies.
func TestPrometheusScrapesOutputMetrics(t *testing.T) {
	port, metricsPort := freePort(t), freePort(t)
	// The kinesis output is never routed to (the file sink's <match **>
	// comes first); it is there for its series.
	conf := fileSinkConf(port, "") + fmt.Sprintf(`
<source>
  @type prometheus
  bind 127.0.0.1
  port %d
</source>
<source>
  @type prometheus_output_monitor
</source>
<match never.**>
  # Present so that the kinesis series the dashboard uses exist.
  @type kinesis_firehose
  region us-east-1
  endpoint http://127.0.0.1:1
  aws_key_id AKIDTEST
  aws_sec_key secret
  delivery_stream_name none
</match>
`, metricsPort)
	in := startSluice(t, conf)
	defer in.Stop()
	prom := startPrometheus(t, fmt.Sprintf("127.0.0.1:%d", metricsPort))

	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port, RequestAck: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for i := 0; i < n; i++ {
		if err := logger.Post("metrics.test", map[string]any{"i": i}); err != nil {
			t.Fatal(err)
		}
	}
	logger.Close()

	want := map[string]float64{
		`up{job="sluice"}`: 1,
		`sum(fluentd_output_status_emit_records{job="sluice",type="file"})`:  n,
		`sum(sluice_output_written_records_total{job="sluice",type="file"})`: n,
		`sum(fluentd_output_status_buffer_queue_length{job="sluice"})`:       0,
		`sum(sluice_output_dropped_records_total{job="sluice"})`:             0,
		`sum(sluice_input_events_total{job="sluice",type="forward"})`:        n,
		`sum(sluice_input_acks_total{job="sluice",type="forward"})`:          n,
		`sum(sluice_input_connections{job="sluice",type="forward"})`:         0,
	}
	deadline := time.Now().Add(60 * time.Second)
	for query, w := range want {
		for {
			v, ok := promQuery(prom, query)
			if ok && v == w {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Prometheus: %s = %v (found %v), want %v\n%s", query, v, ok, w, in.Logs())
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	checkDashboard(t, prom, fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort))
}

// TestSIGUSR1Flushes: with an hour-long flush interval, SIGUSR1 writes the
// buffered events out at once.
func TestSIGUSR1Flushes(t *testing.T) {
	port := freePort(t)
	conf := strings.Replace(fileSinkConf(port, ""), "flush_interval 0.5", "flush_interval 1h", 1)
	in := startSluice(t, conf)
	defer in.Stop()
	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port, RequestAck: true})
	if err != nil {
		t.Fatal(err)
	}
	want := ids("usr1", 50)
	for _, id := range want {
		if err := logger.Post("usr1.test", map[string]string{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
	logger.Close()
	time.Sleep(500 * time.Millisecond)
	if m, _ := filepath.Glob(filepath.Join(in.Dir, "out", "usr1.test", "*.log")); len(m) != 0 {
		t.Fatalf("flushed before SIGUSR1: %v", m)
	}
	if err := in.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	requireAllOnce(t, in, "usr1.test", want)
}

// checkDashboard runs every query of the bundled Grafana dashboard on the
// Prometheus server, and checks that every series it names is one Sluice
// serves.
func checkDashboard(t *testing.T, prom, metricsURL string) {
	t.Helper()
	raw, err := os.ReadFile("../deploy/grafana/sluice.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	names := regexp.MustCompile(`\b((?:sluice|fluentd|process)_[a-z_]+)\b`)
	queries := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			queries++
			for _, n := range names.FindAllString(tg.Expr, -1) {
				if !strings.Contains(string(served), "\n"+n) {
					t.Errorf("panel %q uses %s, which Sluice does not serve", p.Title, n)
				}
			}
			q := strings.ReplaceAll(tg.Expr, "$instance", ".*")
			resp, err := http.Get(prom + "/api/v1/query?query=" + url.QueryEscape(q))
			if err != nil {
				t.Fatal(err)
			}
			var out struct{ Status, Error string }
			json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if out.Status != "success" {
				t.Errorf("panel %q: Prometheus refuses %q: %s", p.Title, q, out.Error)
			}
		}
	}
	if queries < 10 {
		t.Errorf("dashboard has %d queries", queries)
	}
}
