package prometheus_test

import (
	"compress/gzip"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	dto "github.com/prometheus/client_model/go"

	"github.com/sluice-log/sluice/internal/plugintest"
)

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fams
}

// value returns the sample of family name whose labels include want.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	f := fams[name]
	if f == nil {
		t.Fatalf("no series %s", name)
	}
next:
	for _, m := range f.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Counter != nil:
			return m.Counter.GetValue()
		}
	}
	t.Fatalf("no %s with labels %v", name, want)
	return 0
}

// Known traffic through a buffered output whose first two writes fail
// shows up under fluent-plugin-prometheus's names and labels.
func TestOutputMetricsUnderFluentdNames(t *testing.T) {
	plugintest.Reset()
	port := freePort(t)
	e := plugintest.Build(t, fmt.Sprintf(`
<source>
  @type prometheus
  bind 127.0.0.1
  port %d
</source>
<source>
  @type prometheus_output_monitor
  interval 10
  <labels>
    hostname ${hostname}
  </labels>
</source>
<source>
  @type prometheus_monitor
  <labels>
    env prod-${worker_id}
  </labels>
</source>
<match app.**>
  @type capture
  @id out_capture
  name metrics
  fail 2
  <buffer>
    flush_mode immediate
    retry_wait 0.01
    chunk_limit_size 256k
    total_limit_size 1m
  </buffer>
</match>`, port))
	plugintest.Start(t, e)
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	plugintest.WaitFor(t, "the metrics listener", func() bool { code, _ := status(t, url); return code == 200 })
	for i := 0; i < 3; i++ {
		plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "app.x",
			map[string]any{"n": 1}, map[string]any{"n": 2}, map[string]any{"n": 3}, map[string]any{"n": 4})))
	}
	e.Root().Emit(context.Background(), plugintest.Stream(t, "nowhere", map[string]any{"n": 1}))
	plugintest.WaitFor(t, "delivery", func() bool { return len(plugintest.Captured("metrics")) >= 12 })
	var fams map[string]*dto.MetricFamily
	labels := map[string]string{"plugin_id": "out_capture", "type": "capture"}
	plugintest.WaitFor(t, "queue drained", func() bool {
		fams = scrape(t, url)
		return value(t, fams, "fluentd_output_status_buffer_queue_length", labels) == 0 &&
			value(t, fams, "fluentd_output_status_buffer_total_bytes", labels) == 0
	})
	for name, want := range map[string]float64{
		"fluentd_output_status_emit_count":                   3,
		"fluentd_output_status_emit_records":                 12,
		"fluentd_output_status_num_errors":                   2,
		"fluentd_output_status_retry_count":                  2,
		"fluentd_output_status_buffer_available_space_ratio": 100,
		"fluentd_output_status_buffer_stage_length":          0,
		"sluice_output_written_records_total":                12,
		"sluice_output_dropped_records_total":                0,
	} {
		if got := value(t, fams, name, labels); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	// The monitors' <labels> go on their own families only.
	withHost := map[string]string{"plugin_id": "out_capture", "type": "capture", "hostname": "test-host"}
	if got := value(t, fams, "fluentd_output_status_emit_records", withHost); got != 12 {
		t.Errorf("fluentd_output_status_emit_records with the <labels> of prometheus_output_monitor = %v", got)
	}
	monitorLabels := map[string]string{"plugin_id": "out_capture", "plugin_category": "output", "type": "capture", "env": "prod-0"}
	if got := value(t, fams, "fluentd_status_retry_count", monitorLabels); got != 2 {
		t.Errorf("prometheus_monitor's fluentd_status_retry_count = %v, want 2", got)
	}
	for _, m := range fams["sluice_output_written_records_total"].Metric {
		for _, l := range m.Label {
			if l.GetName() == "hostname" || l.GetName() == "env" {
				t.Errorf("sluice_* series carry the monitors' label %s", l.GetName())
			}
		}
	}
	if got := value(t, fams, "sluice_output_written_bytes_total", labels); got < 12*5 {
		t.Errorf("written bytes %v: 12 records of at least 5 bytes each were written", got)
	}
	if got := value(t, fams, "fluentd_output_status_write_count", labels); got < 1 {
		t.Errorf("write_count %v, want at least 1", got)
	}
	if got := value(t, fams, "sluice_unmatched_events_total", nil); got != 1 {
		t.Errorf("sluice_unmatched_events_total %v, want 1", got)
	}
	writes := value(t, fams, "fluentd_output_status_write_count", labels) + value(t, fams, "fluentd_output_status_num_errors", labels)
	if h := fams["sluice_output_write_duration_seconds"]; h == nil || float64(h.Metric[0].Histogram.GetSampleCount()) != writes {
		t.Errorf("the write duration histogram does not count every write, successful or failed (%v)", writes)
	}
	if fams["go_goroutines"] == nil || fams["process_resident_memory_bytes"] == nil {
		t.Error("no Go runtime or process series")
	}
	// Fluentd's aggregated path serves the same.
	if f := scrape(t, fmt.Sprintf("http://127.0.0.1:%d/aggregated_metrics", port)); f["fluentd_output_status_emit_records"] == nil {
		t.Error("aggregated_metrics has no output series")
	}
}

// status returns the answer to a GET; code 0 while nothing listens yet.
func status(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// With the output held down, /readyz turns unready once the buffer passes
// the high-water mark, and ready again when the output drains it;
// /healthz stays ok throughout.
func TestReadinessFollowsBufferFill(t *testing.T) {
	plugintest.Reset()
	port := freePort(t)
	e := plugintest.Build(t, fmt.Sprintf(`
<source>
  @type prometheus
  bind 127.0.0.1
  port %d
  ready_buffer_high_water 0.5
</source>
<match app.**>
  @type capture
  @id held
  name held
  fail 10
  <buffer>
    flush_mode interval
    flush_interval 0.05
    chunk_limit_size 8k
    total_limit_size 64k
    retry_type periodic
    retry_wait 0.3
    retry_forever true
  </buffer>
</match>`, port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	plugintest.Start(t, e)
	plugintest.WaitFor(t, "ready", func() bool { code, _ := status(t, base+"/readyz"); return code == 200 })
	var recs []map[string]any
	for i := 0; i < 40; i++ {
		recs = append(recs, map[string]any{"i": i, "pad": strings.Repeat("p", 1000)})
	}
	for _, r := range recs {
		plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "app.x", r)))
	}
	code, body := status(t, base+"/readyz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "output held: buffer") {
		t.Fatalf("/readyz with the buffer over half full: %d %q", code, body)
	}
	if code, _ := status(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d while the output is down", code)
	}
	plugintest.WaitFor(t, "drained", func() bool { return len(plugintest.Captured("held")) == 40 })
	plugintest.WaitFor(t, "ready again", func() bool { code, _ := status(t, base+"/readyz"); return code == 200 })
}

// monitor_agent lists every plugin with Fluentd's field names, buffer
// counters for buffered outputs, and secrets masked.
func TestMonitorAgentPluginsJSON(t *testing.T) {
	plugintest.Reset()
	port := freePort(t)
	e := plugintest.Build(t, fmt.Sprintf(`
<source>
  @type monitor_agent
  bind 127.0.0.1
  port %d
</source>
<filter app.**>
  @type grep
  @id only_x
  <regexp>
    key k
    pattern /x/
  </regexp>
</filter>
<match app.**>
  @type capture
  @id out_capture
  name monitored
  <buffer>
    flush_mode immediate
  </buffer>
</match>
<match secret.**>
  @type kinesis_firehose
  @id out_firehose
  region us-east-1
  endpoint http://127.0.0.1:1
  aws_key_id AKIDTEST
  aws_sec_key s3cr3t
  delivery_stream_name s
  <buffer>
    flush_interval 1h
  </buffer>
</match>`, port))
	plugintest.Start(t, e)
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "app.a", map[string]any{"k": "x"}, map[string]any{"k": "y"})))
	plugintest.WaitFor(t, "delivery", func() bool { return len(plugintest.Captured("monitored")) == 1 })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	var got struct {
		Plugins []map[string]any `json:"plugins"`
	}
	plugintest.WaitFor(t, "write counted", func() bool {
		resp, err := http.Get(base + "/api/plugins.json")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		got.Plugins = nil
		json.NewDecoder(resp.Body).Decode(&got)
		for _, p := range got.Plugins {
			if p["plugin_id"] == "out_capture" && p["write_count"] == float64(1) {
				return true
			}
		}
		return false
	})
	byID := map[string]map[string]any{}
	for _, p := range got.Plugins {
		byID[p["plugin_id"].(string)] = p
	}
	out := byID["out_capture"]
	if out["plugin_category"] != "output" || out["type"] != "capture" || out["output_plugin"] != true ||
		out["emit_records"] != float64(1) || out["buffer_queue_length"] != float64(0) || out["retry_count"] != float64(0) {
		t.Errorf("out_capture: %v", out)
	}
	if f := byID["only_x"]; f == nil || f["plugin_category"] != "filter" || f["output_plugin"] != false || f["retry_count"] != nil {
		t.Errorf("only_x: %v", f)
	}
	if len(got.Plugins) != 4 {
		t.Errorf("%d plugins, want 4 (monitor_agent, grep, capture, kinesis_firehose)", len(got.Plugins))
	}
	resp, err := http.Get(base + "/api/plugins.json")
	plugintest.Must(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), "s3cr3t") || !strings.Contains(string(body), `"aws_key_id":"AKIDTEST"`) ||
		!strings.Contains(string(body), `"aws_sec_key":"xxxxxx"`) {
		t.Errorf("configuration not shown with the secret masked: %s", body)
	}
	code, text := status(t, base+"/api/plugins")
	if code != 200 || !strings.Contains(text, "plugin_id:out_capture") || !strings.Contains(text, "\ttype:capture") {
		t.Errorf("/api/plugins: %d %q", code, text)
	}
}

// After SIGTERM the metrics listener stays up while the outputs drain:
// /readyz answers 503 (a load balancer stops sending), /healthz and
// /metrics answer 200, and the listener goes only when the drain is over.
func TestProbesDuringShutdownDrain(t *testing.T) {
	plugintest.Reset()
	port := freePort(t)
	e := plugintest.Build(t, fmt.Sprintf(`
<system>
  shutdown_timeout 1s
</system>
<source>
  @type prometheus
  bind 127.0.0.1
  port %d
</source>
<match app.**>
  @type capture
  @id held
  name held
  fail 1000000
  <buffer>
    flush_interval 0.05
    retry_type periodic
    retry_wait 0.05
    retry_forever true
  </buffer>
</match>`, port))
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	stop := plugintest.Start(t, e)
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "app.x", map[string]any{"i": 1})))
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	plugintest.WaitFor(t, "unready", func() bool { code, _ := status(t, base+"/readyz"); return code == 503 })
	if code, body := status(t, base+"/readyz"); !strings.Contains(body, "shutting down") {
		t.Errorf("/readyz during the drain: %d %q", code, body)
	}
	if code, _ := status(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz during the drain: %d", code)
	}
	if code, _ := status(t, base+"/metrics"); code != 200 {
		t.Errorf("/metrics during the drain: %d", code)
	}
	select {
	case <-stopped:
		t.Fatal("shutdown finished before the probes could be read: the drain did not hold")
	default:
	}
	<-stopped
	if code, _ := status(t, base+"/healthz"); code != 0 {
		t.Errorf("the listener is still up after shutdown: %d", code)
	}
}

func TestMonitorLabelErrors(t *testing.T) {
	for conf, want := range map[string]string{
		"<labels>\n  plugin_id x\n</labels>": "set by Sluice itself",
		"<labels>\n  bad-name x\n</labels>":  "not a Prometheus label name",
		"<labels>\n  __meta x\n</labels>":    "not a Prometheus label name",
	} {
		_, err := plugintest.BuildErr("<source>\n  @type prometheus_output_monitor\n" + conf + "\n</source>\n")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error with %q", conf, err, want)
		}
	}
}

// TestTLSAndGzipMetrics: <transport tls> serves the metrics over TLS,
// and content_encoding gzip compresses them even for a scraper that did
// not ask; fluent-plugin-prometheus's older <ssl> section works too.
func TestTLSAndGzipMetrics(t *testing.T) {
	dir := t.TempDir()
	cert, key := plugintest.WriteCert(t, dir)
	pem, err := os.ReadFile(cert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableCompression: true}}
	defer client.CloseIdleConnections()
	for name, section := range map[string]string{
		"transport": "<transport tls>\n    cert_path " + cert + "\n    private_key_path " + key + "\n  </transport>",
		"ssl":       "<ssl>\n    enable true\n    certificate_path " + cert + "\n    private_key_path " + key + "\n  </ssl>",
	} {
		t.Run(name, func(t *testing.T) {
			port := freePort(t)
			e := plugintest.Build(t, fmt.Sprintf(`
<source>
  @type prometheus
  bind 127.0.0.1
  port %d
  content_encoding gzip
  %s
</source>
<match **>
  @type null
</match>`, port, section))
			stop := plugintest.Start(t, e)
			defer stop()
			defer client.CloseIdleConnections()
			url := fmt.Sprintf("https://127.0.0.1:%d/metrics", port)
			var resp *http.Response
			plugintest.WaitFor(t, "the TLS listener", func() bool {
				var err error
				resp, err = client.Get(url)
				return err == nil
			})
			defer resp.Body.Close()
			if resp.Header.Get("Content-Encoding") != "gzip" {
				t.Fatalf("Content-Encoding %q, want gzip", resp.Header.Get("Content-Encoding"))
			}
			zr, err := gzip.NewReader(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(zr)
			if !strings.Contains(string(body), "# TYPE") {
				t.Errorf("body is not the metrics: %.200q", body)
			}
		})
	}
}

// TestTailMonitorSeries: with prometheus_tail_monitor, each followed
// file's position and inode are served under fluent-plugin-prometheus's
// names, with the path label and the monitor's <labels>; without it
// they are not.
func TestTailMonitorSeries(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	plugintest.Must(t, os.WriteFile(log, []byte("one\ntwo\n"), 0o644))
	for _, monitor := range []bool{true, false} {
		port := freePort(t)
		conf := fmt.Sprintf(`
<source>
  @type prometheus
  bind 127.0.0.1
  port %d
</source>
<source>
  @type tail
  @id in_tail_app
  path %s
  tag app
  read_from_head true
  <parse>
    @type none
  </parse>
</source>
<match app>
  @type capture
  name tailmon
</match>`, port, log)
		if monitor {
			conf += "\n<source>\n  @type prometheus_tail_monitor\n  <labels>\n    node n1\n  </labels>\n</source>\n"
		}
		e := plugintest.Build(t, conf)
		stop := plugintest.Start(t, e)
		url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
		plugintest.WaitFor(t, "the metrics listener", func() bool { code, _ := status(t, url); return code == 200 })
		labels := map[string]string{"plugin_id": "in_tail_app", "type": "tail", "path": log, "node": "n1"}
		var fams map[string]*dto.MetricFamily
		if monitor {
			plugintest.WaitFor(t, "the position after both lines", func() bool {
				fams = scrape(t, url)
				return fams["fluentd_tail_file_position"] != nil && value(t, fams, "fluentd_tail_file_position", labels) == 8
			})
			fi, _ := os.Stat(log)
			if got := value(t, fams, "fluentd_tail_file_inode", labels); got != float64(fi.Sys().(*syscall.Stat_t).Ino) {
				t.Errorf("inode %v", got)
			}
			if got := value(t, fams, "fluentd_tail_file_opened", map[string]string{"plugin_id": "in_tail_app", "node": "n1"}); got != 1 {
				t.Errorf("opened %v", got)
			}
		} else {
			plugintest.WaitFor(t, "the lines", func() bool { return len(plugintest.Captured("tailmon")) >= 2 })
			if fams = scrape(t, url); fams["fluentd_tail_file_position"] != nil {
				t.Errorf("tail series served without prometheus_tail_monitor")
			}
		}
		stop()
	}
}
