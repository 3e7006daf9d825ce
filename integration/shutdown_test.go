//go:build integration

package integration

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// downstreamDownConf forwards to a port nobody listens on, through a
// memory buffer that retries forever: nothing can drain.
func downstreamDownConf(port, deadPort int, shutdownTimeout string) string {
	return fmt.Sprintf(`
<system>
  shutdown_timeout %s
</system>
<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
<match **>
  @type forward
  <server>
    host 127.0.0.1
    port %d
  </server>
  <buffer>
    flush_mode interval
    flush_interval 0.1
    retry_forever true
    retry_wait 0.1
  </buffer>
</match>
`, shutdownTimeout, port, deadPort)
}

func postN(t *testing.T, port, n int) {
	t.Helper()
	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port, RequestAck: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer logger.Close()
	for i := 0; i < n; i++ {
		if err := logger.Post("app.stuck", map[string]string{"id": fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func waitExit(t *testing.T, in *instance, within time.Duration) int {
	t.Helper()
	select {
	case err := <-in.done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("sluice still running %v after the signal\n%s", within, in.Logs())
	}
	return -1
}

// A drain that cannot finish ends at a second SIGTERM, not at the
// deadline, with what is left logged.
func TestSecondSIGTERMExitsAtOnce(t *testing.T) {
	port := freePort(t)
	in := startSluice(t, downstreamDownConf(port, freePort(t), "10m"))
	postN(t, port, 10)
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(in.Logs(), "shutting down") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, in, 20*time.Second); code != 128+int(syscall.SIGTERM) {
		t.Errorf("exit status %d, want %d", code, 128+int(syscall.SIGTERM))
	}
	if !strings.Contains(in.Logs(), "second stop signal") {
		t.Errorf("the forced exit is not logged\n%s", in.Logs())
	}
}

// Records a memory buffer still holds at the shutdown deadline are lost:
// the exact count is logged and the exit status says so.
func TestShutdownWithLostRecordsExitsNonZero(t *testing.T) {
	port := freePort(t)
	in := startSluice(t, downstreamDownConf(port, freePort(t), "1s"))
	postN(t, port, 25)
	if err := in.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := waitExit(t, in, 30*time.Second); code != 3 {
		t.Errorf("exit status %d, want 3 (records lost)\n%s", code, in.Logs())
	}
	if !strings.Contains(in.Logs(), "lost_records=25") {
		t.Errorf("the loss of 25 records is not logged\n%s", in.Logs())
	}
}
