//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// tailFileConf tails {{DIR}}/logs/*.log through a crash-safe file buffer
// into JSON lines under {{DIR}}/out/.
const tailFileConf = `
<system>
  shutdown_timeout 10s
</system>
<source>
  @type tail
  path {{DIR}}/logs/*.log
  pos_file {{DIR}}/tail.pos
  tag app.*
  read_from_head true
  refresh_interval 1s
  <parse>
    @type json
  </parse>
</source>
<match app.**>
  @type file
  path {{DIR}}/out/events
  append true
  <format>
    @type json
  </format>
  <buffer>
    @type file
    path {{DIR}}/buffer
    flush_mode interval
    flush_interval 0.5
  </buffer>
</match>
`

// TestTailRestartsWhileWriting: an application writes 30,000 lines to two
// files, one of them rotated on the way, while Sluice is stopped with
// SIGTERM and killed with SIGKILL and started again each time. Every line
// arrives: none lost. After the SIGTERM nothing is repeated; after the
// SIGKILL at most the lines whose position was not yet written and the
// output's chunk in flight are (the at-least-once window docs/tail.md
// states).
func TestTailRestartsWhileWriting(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if err := os.MkdirAll(logs, 0o755); err != nil {
		t.Fatal(err)
	}
	const perFile = 15000
	var want []string
	for _, name := range []string{"a", "b"} {
		want = append(want, ids(name, perFile)...)
	}
	var wg sync.WaitGroup
	progress := make([]int, 2)
	var mu sync.Mutex
	writeFile := func(k int, name string) {
		defer wg.Done()
		path := filepath.Join(logs, name+".log")
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Error(err)
			return
		}
		defer func() { f.Close() }()
		for i := 0; i < perFile; i++ {
			if name == "b" && i == perFile/2 {
				// logrotate: rename, then a new file at the path.
				f.Close()
				if err := os.Rename(path, path+".1"); err != nil {
					t.Error(err)
					return
				}
				if f, err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644); err != nil {
					t.Error(err)
					return
				}
			}
			fmt.Fprintf(f, "{\"id\":\"%s-%d\",\"log\":\"line %d of %s\"}\n", name, i, i, name)
			if i%100 == 99 {
				mu.Lock()
				progress[k] = i
				mu.Unlock()
				time.Sleep(10 * time.Millisecond) // about 10,000 lines a second per file
			}
		}
	}
	in := startSluiceIn(t, dir, tailFileConf)
	wg.Add(2)
	go writeFile(0, "a")
	go writeFile(1, "b")
	waitWritten := func(n int) {
		for {
			mu.Lock()
			done := progress[0] >= n && progress[1] >= n
			mu.Unlock()
			if done {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	pattern := filepath.Join(dir, "out", "*.log")

	waitWritten(perFile / 4)
	in.Stop()
	in = startSluiceIn(t, dir, tailFileConf)
	waitWritten(perFile / 2)
	// Everything written before the graceful restart is there exactly once.
	missing, dups := countByID(t, pattern, firstOfEach(want, perFile, perFile/4), 30*time.Second)
	if len(missing) > 0 || len(dups) > 0 {
		t.Fatalf("after SIGTERM: %d missing (first %v), %d repeated (first %v)\n%s", len(missing), first(missing), len(dups), first(dups), in.Logs())
	}

	waitWritten(3 * perFile / 4)
	in.Kill()
	in = startSluiceIn(t, dir, tailFileConf)
	wg.Wait()
	missing, dups = countByID(t, pattern, want, 60*time.Second)
	in.Stop()
	if len(missing) > 0 {
		t.Fatalf("%d of %d lines lost (first %v)\n%s", len(missing), len(want), first(missing), in.Logs())
	}
	// One batch of read_lines_limit (1000) per file and the output's
	// chunk in flight (half a second of both files' lines, about 10,000).
	const window = 2*1000 + 10000
	if len(dups) > window {
		t.Errorf("%d lines repeated after SIGKILL, more than the at-least-once window of %d", len(dups), window)
	}
	t.Logf("after SIGKILL: %d of %d lines repeated (the at-least-once window)", len(dups), len(want))
}

// firstOfEach is the first n ids of each consecutive group of size in want.
func firstOfEach(want []string, size, n int) []string {
	var out []string
	for i := 0; i < len(want); i += size {
		out = append(out, want[i:i+n]...)
	}
	return out
}
