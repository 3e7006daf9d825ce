//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTailCasesThroughTheBinary: the file cases users hit, on real files,
// through the real binary into a file output: copytruncate, delete while
// open, a partial last line completed later, an over-long line, a file
// that appears after the start, a thousand small files, and Kubernetes'
// symlinks with a rotation behind one, and a pos_file in Fluentd's format
// taken over. Every line arrives once, in order per file.
func TestTailCasesThroughTheBinary(t *testing.T) {
	dir := t.TempDir()
	logs, links, pods := filepath.Join(dir, "logs"), filepath.Join(dir, "containers"), filepath.Join(dir, "pods", "ns_web_0", "app")
	for _, d := range []string{logs, links, pods} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(path, text string) {
		t.Helper()
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteString(text); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	lines := func(prefix string, from, to int) string {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "%s-%d\n", prefix, i)
		}
		return b.String()
	}
	want := map[string][]string{} // path → lines in order
	expect := func(path, text string) {
		for _, l := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
			want[path] = append(want[path], l)
		}
	}

	const many = 1000
	for i := 0; i < many; i++ {
		p := filepath.Join(logs, fmt.Sprintf("many-%04d.log", i))
		write(p, lines(fmt.Sprintf("m%04d", i), 0, 3))
		expect(p, lines(fmt.Sprintf("m%04d", i), 0, 3))
	}
	ct, del, part, long := filepath.Join(logs, "ct.log"), filepath.Join(logs, "del.log"), filepath.Join(logs, "part.log"), filepath.Join(logs, "long.log")
	write(ct, lines("ct", 0, 20))
	expect(ct, lines("ct", 0, 20))
	write(part, "whole\nhal")
	write(long, "before\n")
	target, link := filepath.Join(pods, "0.log"), filepath.Join(links, "web_ns_app-0.log")
	write(target, lines("k", 0, 10))
	expect(link, lines("k", 0, 10))
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	// A pos_file Fluentd left: the file goes on from its position.
	taken := filepath.Join(logs, "from-fluentd.log")
	write(taken, lines("fl", 0, 10))
	half := int64(len(lines("fl", 0, 5)))
	fi, err := os.Stat(taken)
	if err != nil {
		t.Fatal(err)
	}
	ino := fi.Sys().(*syscall.Stat_t).Ino
	if err := os.WriteFile(filepath.Join(dir, "logs.pos"), []byte(fmt.Sprintf("%s\t%016x\t%016x\n", taken, half, ino)), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(taken, lines("fl", 5, 10))
	delFile, err := os.OpenFile(del, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer delFile.Close()
	fmt.Fprint(delFile, "del-0\n")
	expect(del, "del-0\ndel-1\n")

	source := func(path, pos string) string {
		return fmt.Sprintf(`<source>
  @type tail
  path %s
  pos_file %s
  tag files
  path_key path
  read_from_head true
  refresh_interval 1s
  rotate_wait 1s
  max_line_size 64k
  <parse>
    @type none
  </parse>
</source>
`, path, pos)
	}
	in := startSluiceIn(t, dir, `<system>
  shutdown_timeout 10s
</system>
`+source("{{DIR}}/logs/*.log", "{{DIR}}/logs.pos")+source("{{DIR}}/containers/*.log", "{{DIR}}/containers.pos")+`<match files>
  @type file
  path {{DIR}}/out/events
  append true
  <format>
    @type json
  </format>
  <buffer>
    flush_mode interval
    flush_interval 0.5
  </buffer>
</match>
`)
	pattern := filepath.Join(dir, "out", "*.log")
	waitFor := func(what string, cond func(map[string][]string) bool) map[string][]string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			got := map[string][]string{}
			for _, r := range jsonRecords(t, pattern) {
				p, _ := r["path"].(string)
				m, _ := r["message"].(string)
				got[p] = append(got[p], m)
			}
			if cond(got) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s; have %d files' lines\n%s", what, len(got), in.Logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor("the first lines", func(got map[string][]string) bool {
		return len(got[ct]) == 20 && len(got[link]) == 10 && len(got[del]) == 1
	})

	// copytruncate
	data, _ := os.ReadFile(ct)
	if err := os.WriteFile(ct+".1", data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(ct, 0); err != nil {
		t.Fatal(err)
	}
	write(ct, lines("ct-after", 0, 5))
	expect(ct, lines("ct-after", 0, 5))
	// delete while open, then one more line through the open descriptor
	if err := os.Remove(del); err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(delFile, "del-1\n")
	// the partial line completed, an over-long line between two short ones
	write(part, "f done\n")
	expect(part, "whole\nhalf done\n")
	write(long, strings.Repeat("x", 100<<10)+"\nafter\n")
	expect(long, "before\nafter\n")
	// a rotation behind the symlink
	if err := os.Rename(target, target+".20261206-1"); err != nil {
		t.Fatal(err)
	}
	write(target, lines("k-new", 0, 10))
	expect(link, lines("k-new", 0, 10))
	// a file that appears after the start
	late := filepath.Join(logs, "late.log")
	write(late, lines("late", 0, 7))
	expect(late, lines("late", 0, 7))

	got := waitFor("every case", func(got map[string][]string) bool {
		for p, w := range want {
			if len(got[p]) < len(w) {
				return false
			}
		}
		return true
	})
	in.Stop()
	for p, w := range want {
		if strings.Join(got[p], "|") != strings.Join(w, "|") {
			t.Errorf("%s: got %q, want %q", p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("lines from a file no case wrote: %s: %q", p, got[p])
		}
	}
}
