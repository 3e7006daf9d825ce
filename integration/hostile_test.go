//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// hostileFileConf writes every event to {{DIR}}/out/<dir>/<tag>_N.log, a
// new file per chunk (append false), and keeps backups under
// {{DIR}}/root.
func hostileFileConf(port int) string {
	return fmt.Sprintf(`
<system>
  root_dir {{DIR}}/root
  shutdown_timeout 5s
</system>
<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
<match **>
  @type file
  @id out_file
  path {{DIR}}/out/${dir}/${tag}
  <format>
    @type json
  </format>
  <buffer tag,dir>
    flush_mode interval
    flush_interval 0.2
    retry_wait 0.1
  </buffer>
</match>
`, port)
}

// Tags and record fields are the client's: none may lead the file output
// out of its directory, and none may hang it (a name the file system
// refuses once sent the search for a free index round forever, and
// SIGTERM never completed). Each such chunk goes to the backup directory,
// counted; the well-behaved events around them are delivered.
func TestClientNamesCannotEscapeOrHangFileOutput(t *testing.T) {
	port := freePort(t)
	base := t.TempDir()
	dir := filepath.Join(base, "sluice")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in := startSluiceIn(t, dir, hostileFileConf(port))
	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port, RequestAck: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer logger.Close()
	hostile := []struct{ tag, dir string }{
		{"../../escaped-by-tag", "ok"},
		{"good", "../../../escaped-by-field"},
		{"good", "/tmp/escaped-absolute"},
		{strings.Repeat("t", 300), "ok"}, // a name too long for the file system
		{"nul\x00tag", "ok"},
	}
	var want []string
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("good-%d", i)
		want = append(want, id)
		if err := logger.Post("good", map[string]string{"id": id, "dir": "ok"}); err != nil {
			t.Fatal(err)
		}
		if i < len(hostile) {
			h := hostile[i]
			if err := logger.Post(h.tag, map[string]string{"id": "hostile", "dir": h.dir}); err != nil {
				t.Fatal(err)
			}
		}
	}
	missing, dups := countByID(t, filepath.Join(dir, "out", "ok", "good_*.log"), want, 20*time.Second)
	if len(missing) > 0 || len(dups) > 0 {
		t.Errorf("well-behaved events: missing %v, duplicated %v\n%s", missing, dups, in.Logs())
	}
	deadline := time.Now().Add(20 * time.Second)
	var backups []string
	for len(backups) < len(hostile) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		backups, _ = filepath.Glob(filepath.Join(dir, "root", "backup", "out_file", "*.permanent_error.log"))
	}
	if len(backups) != len(hostile) {
		t.Errorf("%d chunks in the backup directory, want %d (one per hostile name)\n%s", len(backups), len(hostile), in.Logs())
	}
	in.Stop() // fails the test if SIGTERM does not end the process
	_ = filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "escaped") {
			t.Errorf("a client's name created %s", p)
		}
		return nil
	})
	if _, err := os.Stat("/tmp/escaped-absolute"); err == nil {
		t.Error("a client's name created /tmp/escaped-absolute")
	}
	if !strings.Contains(in.Logs(), "crosses a path boundary") {
		t.Errorf("the refusal is not logged\n%s", in.Logs())
	}
}
