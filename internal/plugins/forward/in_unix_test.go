package forward_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/sluice-log/sluice/internal/plugintest"
)

func unixConf(path, extra, name string) string {
	return `
<source>
  @type unix
  path ` + path + `
` + extra + `
</source>
<match **>
  @type capture
  name ` + name + `
</match>
`
}

// TestUnixSocketWithFluentLogger: fluent-logger-golang, as FireLens's
// containers' libraries, posts over the unix socket with and without
// acks; every event arrives once, and the socket file goes at stop.
func TestUnixSocketWithFluentLogger(t *testing.T) {
	plugintest.Reset()
	path := filepath.Join(t.TempDir(), "run", "fluent.sock")
	e := plugintest.Build(t, unixConf(path, "", "unix"))
	stop := plugintest.Start(t, e)
	plugintest.WaitFor(t, "the socket", func() bool { return plugintest.BoundAddr(e) == path })

	want := 0
	for _, ack := range []bool{false, true} {
		logger, err := fluent.New(fluent.Config{FluentNetwork: "unix", FluentSocketPath: path, RequestAck: ack})
		plugintest.Must(t, err)
		for i := 0; i < 50; i++ {
			plugintest.Must(t, logger.Post("app.web", map[string]string{"log": fmt.Sprintf("ack=%v %d", ack, i)}))
			want++
		}
		plugintest.Must(t, logger.Close())
	}
	plugintest.WaitFor(t, "every event", func() bool { return len(plugintest.Captured("unix")) >= want })
	stop()
	got := plugintest.Captured("unix")
	seen := map[string]int{}
	for _, ev := range got {
		if ev.Tag != "app.web" {
			t.Fatalf("tag %q", ev.Tag)
		}
		seen[fmt.Sprint(ev.Record["log"])]++
	}
	if len(got) != want || len(seen) != want {
		t.Errorf("%d events, %d distinct, want %d", len(got), len(seen), want)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("the socket file is still there after stop: %v", err)
	}
}

// TestUnixSocketStaleAndForeignFiles: a socket a crashed run left behind
// is replaced; a regular file at the path is refused, and kept.
func TestUnixSocketStaleAndForeignFiles(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	plugintest.Must(t, err)
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, as after kill -9
	if _, err := os.Lstat(stale); err != nil {
		t.Fatal(err)
	}
	e := plugintest.Build(t, unixConf(stale, "  tag firelens.app", "stale"))
	stop := plugintest.Start(t, e)
	logger, err := fluent.New(fluent.Config{FluentNetwork: "unix", FluentSocketPath: stale})
	plugintest.Must(t, err)
	plugintest.Must(t, logger.Post("ignored", map[string]string{"log": "after a crash"}))
	plugintest.Must(t, logger.Close())
	plugintest.WaitFor(t, "the event", func() bool { return len(plugintest.Captured("stale")) == 1 })
	stop()
	if got := plugintest.Captured("stale")[0]; got.Tag != "firelens.app" {
		t.Errorf("tag %q, want the source's tag", got.Tag)
	}

	regular := filepath.Join(dir, "notes.txt")
	plugintest.Must(t, os.WriteFile(regular, []byte("keep me"), 0o644))
	// The start fails; the bound only ends a run that wrongly started.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = plugintest.Build(t, unixConf(regular, "", "regular")).Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("start on a regular file: %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(regular); string(b) != "keep me" {
		t.Errorf("the regular file was changed: %q", b)
	}
}
