//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// startVictoriaLogs runs VictoriaLogs, a real server that ingests
// Elasticsearch's _bulk API at /insert/elasticsearch (no Elasticsearch or
// OpenSearch can be installed on these machines; scripts/test installs
// it), and returns its base URL.
func startVictoriaLogs(t *testing.T) string {
	t.Helper()
	bin := findBinary("victoria-logs")
	if bin == "" {
		t.Fatal("no victoria-logs: scripts/test installs it with go install")
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dir := t.TempDir()
	cmd := exec.Command(bin, "-storageDataPath="+filepath.Join(dir, "data"), "-httpListenAddr="+addr, "-loggerLevel=ERROR")
	logf, _ := os.Create(filepath.Join(dir, "victoria-logs.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get(base + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("VictoriaLogs did not come up")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// queryVictoriaLogs returns every record VictoriaLogs holds.
func queryVictoriaLogs(t *testing.T, base string) []map[string]any {
	t.Helper()
	resp, err := http.PostForm(base+"/select/logsql/query", url.Values{"query": {"*"}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []map[string]any
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("query answer %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

// TestElasticsearchIntoVictoriaLogs sends events through forward, a file
// buffer and the elasticsearch output (logstash_format, as its README has
// it) into a real _bulk server. It checks that every acknowledged event
// arrives exactly once with its fields, the tag added and @timestamp the
// event time; VictoriaLogs keeps no _index or _id, so index names and ids
// are checked against esfake in the unit tests instead.
func TestElasticsearchIntoVictoriaLogs(t *testing.T) {
	vl := startVictoriaLogs(t)
	port := freePort(t)
	in := startSluice(t, fmt.Sprintf(`
<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
<match app.**>
  @type elasticsearch
  hosts %s/insert/elasticsearch
  logstash_format true
  logstash_prefix app
  include_tag_key true
  compression_level best_speed
  custom_headers {"VL-Msg-Field":"message","VL-Time-Field":"@timestamp"}
  <buffer tag>
    @type file
    path {{DIR}}/buffer
    flush_interval 0.2
    retry_wait 0.2
  </buffer>
</match>
`, port, vl))
	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port, RequestAck: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	base := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		at := base.Add(time.Duration(i) * time.Second)
		if err := logger.PostWithTime("app.web", at, map[string]any{"message": fmt.Sprintf("event %d", i), "n": i}); err != nil {
			t.Fatal(err)
		}
	}
	logger.Close()
	var got []map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if got = queryVictoriaLogs(t, vl); len(got) >= n {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	in.Stop()
	seen := map[string]int{}
	for _, r := range got {
		msg, _ := r["_msg"].(string)
		seen[msg]++
		if r["tag"] != "app.web" {
			t.Errorf("record %v has no tag", r)
			break
		}
	}
	if len(seen) != n || len(got) != n {
		t.Fatalf("%d records, %d distinct, want %d once each", len(got), len(seen), n)
	}
	for _, r := range got {
		var i int
		fmt.Sscanf(r["_msg"].(string), "event %d", &i)
		want := base.Add(time.Duration(i) * time.Second)
		// VictoriaLogs takes @timestamp as the record's _time (VL-Time-Field).
		at, err := time.Parse(time.RFC3339Nano, r["_time"].(string))
		if err != nil || !at.Equal(want) {
			t.Errorf("event %d stored at %v, want its event time %v (@timestamp)", i, r["_time"], want)
			break
		}
	}
}
