//go:build integration

// Package integration runs the sluice binary as a user would and talks to
// it with clients that others wrote.
package integration

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// TestExampleWithFluentLoggerGolang runs the README's first command (the
// bundled example) and sends records with fluent-logger-golang, the library
// inside Docker's fluentd log driver, in its sync, async and ack modes.
// Every record must land in the output directory, by content.
func TestExampleWithFluentLoggerGolang(t *testing.T) {
	bin := sluiceBinary(t)
	dir := t.TempDir()
	port := freePort(t)
	conf, err := os.ReadFile("../examples/sluice.conf")
	if err != nil {
		t.Fatal(err)
	}
	// The example listens on 24224; use a free port so tests never collide.
	text := strings.Replace(string(conf), "port  24224", fmt.Sprintf("port  %d", port), 1)
	if text == string(conf) {
		t.Fatal("the example no longer has 'port  24224'; update this test")
	}
	confPath := filepath.Join(dir, "sluice.conf")
	if err := os.WriteFile(confPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-c", confPath)
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = nil
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	logs := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs <- sc.Text()
		}
		close(logs)
	}()
	waitLog(t, logs, "sluice started")

	tracers := map[string]bool{}
	send := func(name string, cfg fluent.Config) {
		cfg.FluentHost, cfg.FluentPort = "127.0.0.1", port
		logger, err := fluent.New(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i := 0; i < 5; i++ {
			id := fmt.Sprintf("%s-%d-%d", name, i, time.Now().UnixNano())
			tracers[id] = false
			if err := logger.Post("app.test", map[string]string{"tracer": id, "log": "hello"}); err != nil {
				t.Fatalf("%s post: %v", name, err)
			}
		}
		if err := logger.Close(); err != nil {
			t.Fatalf("%s close: %v", name, err)
		}
	}
	send("sync", fluent.Config{})
	send("subsecond", fluent.Config{SubSecondPrecision: true})
	send("ack", fluent.Config{RequestAck: true})
	send("async", fluent.Config{Async: true})

	// The example flushes every 2 s; look until every tracer is on disk.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		files, _ := filepath.Glob(filepath.Join(dir, "var", "out", "app.test", "*.log"))
		var all strings.Builder
		for _, f := range files {
			b, _ := os.ReadFile(f)
			all.Write(b)
		}
		missing := 0
		for id := range tracers {
			if strings.Contains(all.String(), `"tracer":"`+id+`"`) {
				tracers[id] = true
			} else {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for id, seen := range tracers {
		if !seen {
			t.Errorf("record %s never reached the output directory", id)
		}
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("sluice exited with %v after SIGTERM", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("sluice did not stop after SIGTERM")
	}
	for line := range logs {
		if strings.Contains(line, "[error]:") {
			t.Errorf("error logged: %s", line)
		}
	}
}

func waitLog(t *testing.T, logs <-chan string, want string) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case line, ok := <-logs:
			if !ok {
				t.Fatalf("sluice exited before logging %q", want)
			}
			if strings.Contains(line, want) {
				return
			}
		case <-timeout:
			t.Fatalf("sluice did not log %q", want)
		}
	}
}
