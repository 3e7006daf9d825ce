//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFluentdConstructsRun runs the binary on a configuration of the kind
// the corpus checks (internal/cli/testdata/corpus), and looks at what it
// does: an include named by an environment variable resolves as Fluentd
// would, the <worker 0> source it holds produces events, <inject> adds its
// fields, v0.12's flat buffer parameters flush, and <label @FLUENT_LOG>
// receives a warning Sluice logs (here: a parameter accepted and ignored).
func TestFluentdConstructsRun(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	source := `<worker 0>
  <source>
    @type sample
    tag app.web
    rate 20
    sample {"message":"hello"}
  </source>
</worker>
`
	if err := os.WriteFile(filepath.Join(dir, "conf.d", "prod-sources.conf"), []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := `<system>
  workers 1
</system>
@include "conf.d/#{ENV['SLUICE_PROFILE'] || 'dev'}-sources.conf"
<match app.**>
  @type file
  path {{DIR}}/out/app
  append true
  flush_interval 1s
  flush_at_shutdown true
  <inject>
    hostname_key host
    hostname "#{ENV.fetch('NODE_NAME', 'unknown')}"
    tag_key fluent_tag
    time_key ts
    time_type unixtime
  </inject>
  <format>
    @type json
  </format>
</match>
<source>
  @type http
  bind 127.0.0.1
  port 0
  backlog 1024
</source>
<label @FLUENT_LOG>
  <match fluent.**>
    @type file
    path {{DIR}}/own/log
    append true
    <buffer>
      flush_mode immediate
    </buffer>
    <format>
      @type json
    </format>
  </match>
</label>
`
	in := startSluiceIn(t, dir, conf, "SLUICE_PROFILE=prod", "NODE_NAME=node-7")
	var records []map[string]any
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && len(records) < 5 {
		time.Sleep(200 * time.Millisecond)
		records = readJSONLines(t, filepath.Join(dir, "out", "app*"))
	}
	if len(records) < 5 {
		t.Fatalf("%d records from the <worker 0> source in the env-named include\n%s", len(records), in.Logs())
	}
	r := records[0]
	if r["message"] != "hello" || r["host"] != "node-7" || r["fluent_tag"] != "app.web" {
		t.Errorf("record %v: want the injected host and tag", r)
	}
	if ts, ok := r["ts"].(float64); !ok || ts < float64(time.Now().Add(-time.Minute).Unix()) {
		t.Errorf("injected time %v", r["ts"])
	}
	var own []map[string]any
	for time.Now().Before(deadline) && len(own) == 0 {
		for _, rec := range readJSONLines(t, filepath.Join(dir, "own", "log*")) {
			if msg, _ := rec["message"].(string); strings.Contains(msg, "backlog is accepted and ignored") {
				own = append(own, rec)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(own) == 0 {
		t.Errorf("<label @FLUENT_LOG> did not receive the notice about backlog\n%s", in.Logs())
	}
	in.Stop()
}

// readJSONLines reads every JSON line of the files glob matches.
func readJSONLines(t *testing.T, glob string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(glob)
	var out []map[string]any
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				out = append(out, m)
			}
		}
		fh.Close()
	}
	return out
}
