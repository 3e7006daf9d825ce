//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// sluiceBinary compiles cmd/sluice once per test run.
func sluiceBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sluice-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "sluice")
		out, err := exec.Command("go", "build", "-o", binPath, "../cmd/sluice").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// instance is a running sluice process.
type instance struct {
	t    *testing.T
	cmd  *exec.Cmd
	Dir  string
	logs chan string
	mu   sync.Mutex
	all  []string
	done chan error
}

// startSluice writes conf (with {{DIR}} replaced by a fresh directory) and
// runs sluice on it in that directory until it logs "sluice started".
func startSluice(t *testing.T, conf string) *instance {
	t.Helper()
	dir := t.TempDir()
	return startSluiceIn(t, dir, conf)
}

// startSluiceIn runs sluice in dir; env adds to the process environment.
func startSluiceIn(t *testing.T, dir, conf string, env ...string) *instance {
	t.Helper()
	conf = strings.ReplaceAll(conf, "{{DIR}}", dir)
	path := filepath.Join(dir, "sluice.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sluiceBinary(t), "-c", path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	// Standard output goes straight to a file: what a stdout output wrote
	// before a SIGKILL is still there.
	stdout, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer stdout.Close()
	cmd.Stdout = stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	in := &instance{t: t, cmd: cmd, Dir: dir, logs: make(chan string, 10000), done: make(chan error, 1)}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 16<<20) // a long line must not stop the reading, and with it Sluice
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			in.mu.Lock()
			in.all = append(in.all, line)
			in.mu.Unlock()
			if strings.Contains(line, "sluice started") {
				once.Do(func() { close(started) })
			}
		}
		in.done <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	select {
	case <-started:
	case err := <-in.done:
		t.Fatalf("sluice exited before starting: %v\n%s", err, in.Logs())
	case <-time.After(20 * time.Second):
		t.Fatalf("sluice did not start\n%s", in.Logs())
	}
	return in
}

// Logs returns everything sluice logged so far.
func (in *instance) Logs() string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return strings.Join(in.all, "\n")
}

// Stop sends SIGTERM and waits for a clean exit.
func (in *instance) Stop() {
	in.t.Helper()
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		in.t.Fatal(err)
	}
	select {
	case err := <-in.done:
		if err != nil {
			in.t.Errorf("sluice exited with %v after SIGTERM\n%s", err, in.Logs())
		}
	case <-time.After(30 * time.Second):
		in.t.Fatalf("sluice did not stop after SIGTERM\n%s", in.Logs())
	}
}

// Kill sends SIGKILL and waits for the process to go.
func (in *instance) Kill() {
	_ = in.cmd.Process.Kill()
	select {
	case <-in.done:
	case <-time.After(10 * time.Second):
	}
}

// jsonRecords reads every JSON line of the files matching pattern below dir.
func jsonRecords(t *testing.T, pattern string) []map[string]any {
	t.Helper()
	files, _ := filepath.Glob(pattern)
	var out []map[string]any
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var m map[string]any
			if err := json.Unmarshal(line, &m); err != nil {
				t.Fatalf("%s: bad line %q: %v", f, line, err)
			}
			out = append(out, m)
		}
	}
	return out
}

// countByID waits until every id in want has arrived in files matching
// pattern (as field "id"), then reports missing and duplicated ids.
func countByID(t *testing.T, pattern string, want []string, wait time.Duration) (missing, dups []string) {
	t.Helper()
	return countByField(t, pattern, "id", want, wait)
}

// countByField is countByID with the ids in field.
func countByField(t *testing.T, pattern, field string, want []string, wait time.Duration) (missing, dups []string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		seen := map[string]int{}
		for _, r := range jsonRecords(t, pattern) {
			if id, ok := r[field].(string); ok {
				seen[id]++
			}
		}
		missing, dups = nil, nil
		for _, id := range want {
			switch seen[id] {
			case 0:
				missing = append(missing, id)
			case 1:
			default:
				dups = append(dups, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing, dups
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fileSinkConf is a forward source on port writing every event as a JSON
// line under {{DIR}}/out/<tag>/, flushed every half second.
func fileSinkConf(port int, sourceExtra string) string {
	return fmt.Sprintf(`
<system>
  shutdown_timeout 10s
</system>
<source>
  @type forward
  bind 127.0.0.1
  port %d
%s
</source>
`, port, sourceExtra) + fileSinkMatch
}

// fileSinkMatch writes every event as a JSON line under
// {{DIR}}/out/<tag>/, flushed every half second.
const fileSinkMatch = `<match **>
  @type file
  path {{DIR}}/out/${tag}/events
  append true
  <format>
    @type json
  </format>
  <buffer tag,time>
    timekey 1d
    timekey_wait 0
    flush_mode interval
    flush_interval 0.5
  </buffer>
</match>
`
