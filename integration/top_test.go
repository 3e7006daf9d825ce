//go:build integration

package integration

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// TestTopInTmux drives `sluice top` in a real terminal (tmux) against a
// live instance receiving events, and reads the screen.
func TestTopInTmux(t *testing.T) {
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatal("tmux is not installed (scripts/test installs it)")
	}
	port, metricsPort := freePort(t), freePort(t)
	in := startSluice(t, fileSinkConf(port, "  @id from_apps")+fmt.Sprintf(`
<source>
  @type prometheus
  bind 127.0.0.1
  port %d
</source>
`, metricsPort))
	defer in.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	go func() { // steady traffic while top watches; bounded by ctx
		logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port})
		if err != nil {
			return
		}
		defer logger.Close()
		for i := 0; ctx.Err() == nil; i++ {
			logger.Post("top.test", map[string]any{"i": i})
			if i%100 == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
	}()

	session := fmt.Sprintf("sluice-top-%d", metricsPort)
	cmd := fmt.Sprintf("%s top -url http://127.0.0.1:%d/metrics", sluiceBinary(t), metricsPort)
	if out, err := exec.Command("tmux", "new-session", "-d", "-s", session, "-x", "120", "-y", "20", cmd).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v %s", err, out)
	}
	defer exec.Command("tmux", "kill-session", "-t", session).Run()

	var screen string
	deadline := time.Now().Add(6 * time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		out, err := exec.Command("tmux", "capture-pane", "-p", "-t", session).Output()
		if err != nil {
			t.Fatalf("capture-pane: %v", err)
		}
		screen = string(out)
		if inputRate(screen, "from_apps") > 0 {
			break
		}
	}
	if !strings.Contains(screen, "sluice top") || !strings.Contains(screen, "OUTPUT") {
		t.Fatalf("no top screen:\n%s", screen)
	}
	if inputRate(screen, "from_apps") <= 0 {
		t.Errorf("the forward input's events/s is not above 0 while events flow:\n%s", screen)
	}
	if !strings.Contains(screen, "file") {
		t.Errorf("the file output is not listed:\n%s", screen)
	}
	t.Logf("screen:\n%s", screen)
}

// inputRate reads the EVENTS/S column of an input's row.
func inputRate(screen, id string) float64 {
	for _, line := range strings.Split(screen, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id {
			var v float64
			fmt.Sscanf(f[2], "%f", &v)
			return v
		}
	}
	return -1
}
