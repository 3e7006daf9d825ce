package cli

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	_ "github.com/sluice-log/sluice/internal/plugins/all"
)

func runMain(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCheckExample(t *testing.T) {
	for _, args := range [][]string{
		{"check", "-c", "../../examples/sluice.conf"},
		{"-c", "../../examples/sluice.conf", "--dry-run"},
		{"--config", "../../examples/sluice.conf", "--dry-run", "-vv"},
	} {
		code, out, errs := runMain(args...)
		if code != 0 || !strings.Contains(out, "configuration OK") {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
}

func TestCheckCompatConfigsClean(t *testing.T) {
	for _, f := range []string{"../engine/testdata/fargate-firehose.conf", "../engine/testdata/k8s-s3.conf"} {
		code, out, errs := runMain("check", "-c", f)
		if code != 0 || !strings.Contains(out, "configuration OK") {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", f, code, out, errs)
		}
	}
}

func TestCheckOneLinePerProblem(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "bad.conf")
	os.WriteFile(conf, []byte("<match **>\n  @type null\n  a 1\n  b 2\n</match>\n<source>\n  @type forward\n  port x\n</source>\n"), 0o644)
	code, _, errs := runMain("check", "-c", conf)
	lines := strings.Split(strings.TrimSpace(errs), "\n")
	if code != 1 || len(lines) != 3 {
		t.Fatalf("exit %d, problems:\n%s", code, errs)
	}
	for i, want := range []string{`bad.conf:3: unknown parameter "a"`, `bad.conf:4: unknown parameter "b"`, `bad.conf:8: port: invalid integer "x"`} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("line %d = %q, want %q", i, lines[i], want)
		}
	}
}

func TestParseErrorAndMissingFile(t *testing.T) {
	if code, _, errs := runMain("check", "-c", "/nonexistent.conf"); code != 1 || !strings.Contains(errs, "nonexistent.conf") {
		t.Errorf("missing file: exit %d %q", code, errs)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "broken.conf")
	os.WriteFile(conf, []byte("<source>\n"), 0o644)
	if code, _, errs := runMain("check", "-c", conf); code != 1 || !strings.Contains(errs, "broken.conf:1: <source> is never closed") {
		t.Errorf("broken file: exit %d %q", code, errs)
	}
}

func TestVersionPluginsUsage(t *testing.T) {
	if code, out, _ := runMain("version"); code != 0 || !strings.HasPrefix(out, "sluice ") {
		t.Errorf("version: %d %q", code, out)
	}
	code, out, _ := runMain("plugins")
	for _, want := range []string{"input", "forward", "output", "file", "filter", "record_transformer", "formatter", "single_value", "sample (dummy)"} {
		if !strings.Contains(out, want) {
			t.Errorf("plugins output lacks %q", want)
		}
	}
	if code != 0 {
		t.Errorf("plugins exit %d", code)
	}
	if code, _, errs := runMain("plugins", "nosuch"); code != 1 || !strings.Contains(errs, `no plugin type "nosuch"`) {
		t.Errorf("plugins nosuch: exit %d %q", code, errs)
	}
	if code, _, _ := runMain("frobnicate"); code != 2 {
		t.Errorf("unknown command exit %d", code)
	}
}

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			http.Error(w, "output x: buffer 91% full", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	if code, out, _ := runMain("probe", srv.URL+"/healthz"); code != 0 || !strings.Contains(out, "200 ok") {
		t.Errorf("healthy: exit %d, %q", code, out)
	}
	if code, out, _ := runMain("probe", srv.URL+"/readyz"); code != 1 || !strings.Contains(out, "503 output x") {
		t.Errorf("unready: exit %d, %q", code, out)
	}
	if code, _, _ := runMain("probe", "http://127.0.0.1:1/healthz"); code != 1 {
		t.Errorf("nothing listening: exit %d", code)
	}
}

func TestRPCHandler(t *testing.T) {
	var flushed, stopped int
	reloadErr := error(nil)
	h := rpcHandler(rpcActions{
		flush:  func() { flushed++ },
		reload: func() error { return reloadErr },
		stop:   func() { stopped++ },
	})
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, strings.TrimSpace(rec.Body.String())
	}
	for _, path := range []string{"/api/plugins.flushBuffers", "/api/config.reload", "/api/config.gracefulReload",
		"/api/processes.flushBuffersAndKillWorkers"} {
		if code, body := get(path); code != 200 || body != `{"ok":true}` {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	if flushed != 2 || stopped != 1 {
		t.Errorf("flushed %d times, stopped %d", flushed, stopped)
	}
	reloadErr = fmt.Errorf("test.conf:3: unknown parameter")
	if code, body := get("/api/config.reload"); code != 500 || !strings.Contains(body, `"ok":false`) || !strings.Contains(body, "test.conf:3") {
		t.Errorf("rejected reload: %d %s", code, body)
	}
	if code, _ := get("/api/processes.killWorkers"); code != 200 || stopped != 2 {
		t.Errorf("killWorkers: %d, stopped %d", code, stopped)
	}
	if code, _ := get("/api/nothing"); code != 404 {
		t.Errorf("unknown endpoint: %d", code)
	}
}

func TestIOHeadroom(t *testing.T) {
	for _, c := range []struct {
		env    string
		chosen int
		want   int
		raised bool
	}{
		{"", 1, 2, true},
		{"", 2, 3, true},
		{"", 16, 17, true},
		{"2", 2, 2, false}, // the operator's choice stands
		{"1", 1, 1, false},
	} {
		if got, raised := ioHeadroom(c.env, c.chosen); got != c.want || raised != c.raised {
			t.Errorf("ioHeadroom(%q, %d) = %d, %v; want %d, %v", c.env, c.chosen, got, raised, c.want, c.raised)
		}
	}
}

// A client's megabyte tag in a log line is cut to its start and length,
// in strings and in errors alike.
func TestLogValuesAreClipped(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: clipAttr}))
	huge := strings.Repeat("t", 1<<20)
	log.Warn("refused", "tag", huge, "err", errors.New("bad tag "+huge), "n", 3)
	line := b.String()
	if len(line) > 3*maxLoggedValue || !strings.Contains(line, "(1048576 bytes)") || !strings.Contains(line, "(1048584 bytes)") ||
		!strings.Contains(line, "n=3") {
		t.Errorf("log line of %d bytes: %.300s", len(line), line)
	}
}

// TestFluentdCommandLine: the flags Fluentd's images, packages and unit
// files pass are taken: the meaningful ones act, the others are accepted
// with a warning, and a missing default configuration is explained.
func TestFluentdCommandLine(t *testing.T) {
	conf := "../../examples/sluice.conf"
	code, out, errs := runMain("check", "-c", conf, "-p", "/etc/fluent/plugin", "--no-supervisor", "--under-supervisor",
		"--use-v1-config", "--log-rotate-age", "5", "--log-rotate-size", "1048576", "--config-file-type", "guess")
	if code != 0 || !strings.Contains(out, "configuration OK") {
		t.Fatalf("exit %d: %s %s", code, out, errs)
	}
	for _, f := range []string{"-p /etc/fluent/plugin", "--no-supervisor", "--under-supervisor", "--use-v1-config", "-log-rotate-age 5"} {
		if !strings.Contains(out, "warning: "+f+" is accepted and ignored") {
			t.Errorf("no warning for %s in:\n%s", f, out)
		}
	}
	// -i appends configuration text: here one with a problem, to see it read.
	if code, _, errs := runMain("check", "-c", conf, "-i", `<match zzz>\n  @type nosuch\n</match>`); code != 1 || !strings.Contains(errs, `unknown plugin type "nosuch"`) {
		t.Errorf("-i: exit %d, %s", code, errs)
	}
	if code, out, _ := runMain("--version"); code != 0 || !strings.Contains(out, runtime.Version()) {
		t.Errorf("--version: exit %d, %q", code, out)
	}
	if code, _, errs := runMain("check", "-c", conf, "--config-file-type", "yaml"); code != 2 || !strings.Contains(errs, "v1 syntax only") {
		t.Errorf("yaml: exit %d, %s", code, errs)
	}
	if code, _, errs := runMain("check", "-c", conf, "--umask", "9z"); code != 2 || !strings.Contains(errs, "octal") {
		t.Errorf("umask: exit %d, %s", code, errs)
	}
	if _, err := os.Stat(DefaultConfigPath); err != nil {
		if code, _, errs := runMain("check"); code != 1 || !strings.Contains(errs, "Pass your Fluentd configuration with -c FILE") {
			t.Errorf("no configuration: exit %d, %s", code, errs)
		}
	}
}
