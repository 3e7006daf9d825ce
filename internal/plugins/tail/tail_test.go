package tail_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/text/encoding/japanese"

	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/plugins/tail"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tailConf is a tail source into capture name; extra goes in <source>.
func tailConf(path, pos, name, extra string) string {
	return fmt.Sprintf(`<source>
  @type tail
  path %s
  pos_file %s
  tag logs.*
  read_from_head true
  refresh_interval 0.2s
  rotate_wait 0.5s
%s
  <parse>
    @type none
  </parse>
</source>
<match **>
  @type capture
  name %s
</match>
`, path, pos, extra, name)
}

func appendLines(t *testing.T, path string, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	plugintest.Must(t, err)
	defer f.Close()
	for _, l := range lines {
		_, err := f.WriteString(l + "\n")
		plugintest.Must(t, err)
	}
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("%s %04d", prefix, i))
	}
	return out
}

// messages waits for n events in name and returns their messages.
func messages(t *testing.T, name string, n int) []string {
	t.Helper()
	plugintest.WaitFor(t, fmt.Sprintf("%d events", n), func() bool { return len(plugintest.Captured(name)) >= n })
	var out []string
	for _, ev := range plugintest.Captured(name) {
		out = append(out, fmt.Sprint(ev.Record["message"]))
	}
	return out
}

func requireSame(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %d lines, want %d\n got: %.300q\nwant: %.300q", len(got), len(want), got, want)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	plugintest.Must(t, err)
	return fi.Sys().(*syscall.Stat_t).Ino
}

// TestFluentdPosFileTakenOver: a pos_file Fluentd wrote (its format: path,
// 16 hex digits of position, 16 of inode; an unwatched line of
// ffffffffffffffff) is read, the file goes on from the position, and the
// file keeps Fluentd's format, compacted.
func TestFluentdPosFileTakenOver(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	log := filepath.Join(dir, "app.log")
	appendLines(t, log, numbered("old", 0, 10)...)
	fi, _ := os.Stat(log)
	pos := filepath.Join(dir, "app.pos")
	fluentd := fmt.Sprintf("%s\t%016x\t%016x\n%s\tffffffffffffffff\t0000000000000001\n", log, fi.Size(), inode(t, log), filepath.Join(dir, "gone.log"))
	plugintest.Must(t, os.WriteFile(pos, []byte(fluentd), 0o644))

	stop := plugintest.Start(t, plugintest.Build(t, tailConf(filepath.Join(dir, "*.log"), pos, "pos", "")))
	appendLines(t, log, numbered("new", 0, 5)...)
	got := messages(t, "pos", 5)
	stop()
	requireSame(t, got, numbered("new", 0, 5))
	if tag := plugintest.Captured("pos")[0].Tag; tag != "logs."+strings.ReplaceAll(strings.TrimPrefix(log, "/"), "/", ".") {
		t.Errorf("tag %q", tag)
	}
	data, _ := os.ReadFile(pos)
	fi, _ = os.Stat(log)
	want := fmt.Sprintf("%s\t%016x\t%016x\n", log, fi.Size(), inode(t, log))
	if string(data) != want {
		t.Errorf("pos_file:\n%q\nwant\n%q", data, want)
	}
}

// TestRestartNothingLostOrRepeated: a graceful stop mid-file and a start
// from the pos_file read every line once.
func TestRestartNothingLostOrRepeated(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	log, pos := filepath.Join(dir, "a.log"), filepath.Join(dir, "a.pos")
	conf := tailConf(log, pos, "restart", "  read_lines_limit 7")
	appendLines(t, log, numbered("l", 0, 100)...)
	stop := plugintest.Start(t, plugintest.Build(t, conf))
	messages(t, "restart", 100)
	stop()
	appendLines(t, log, numbered("l", 100, 150)...)
	stop = plugintest.Start(t, plugintest.Build(t, conf))
	appendLines(t, log, numbered("l", 150, 200)...)
	got := messages(t, "restart", 200)
	stop()
	requireSame(t, got, numbered("l", 0, 200))
}

// TestRotationRenameThenCreate: logrotate's default. Lines written to the
// old file after the rename (within rotate_wait) are read too; the new
// file is read from its start.
func TestRotationRenameThenCreate(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	log := filepath.Join(dir, "r.log")
	appendLines(t, log, numbered("a", 0, 50)...)
	stop := plugintest.Start(t, plugintest.Build(t, tailConf(log, filepath.Join(dir, "r.pos"), "rot", "")))
	messages(t, "rot", 50)
	late, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	plugintest.Must(t, err)
	plugintest.Must(t, os.Rename(log, log+".1"))
	appendLines(t, log, numbered("b", 0, 50)...)
	for _, l := range numbered("a", 50, 60) {
		_, _ = late.WriteString(l + "\n")
	}
	late.Close()
	got := messages(t, "rot", 110)
	stop()
	var a, b []string
	for _, m := range got {
		if strings.HasPrefix(m, "a") {
			a = append(a, m)
		} else {
			b = append(b, m)
		}
	}
	requireSame(t, a, numbered("a", 0, 60))
	requireSame(t, b, numbered("b", 0, 50))
}

// TestCopyTruncateAndTruncateInPlace: a file cut to zero is read again
// from its start.
func TestCopyTruncateAndTruncateInPlace(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	log := filepath.Join(dir, "t.log")
	appendLines(t, log, numbered("a", 0, 30)...)
	stop := plugintest.Start(t, plugintest.Build(t, tailConf(log, filepath.Join(dir, "t.pos"), "trunc", "")))
	messages(t, "trunc", 30)
	data, _ := os.ReadFile(log)
	plugintest.Must(t, os.WriteFile(log+".1", data, 0o644)) // copy
	plugintest.Must(t, os.Truncate(log, 0))                 // truncate
	appendLines(t, log, numbered("b", 0, 5)...)
	got := messages(t, "trunc", 35)
	stop()
	requireSame(t, got, append(numbered("a", 0, 30), numbered("b", 0, 5)...))
}

// TestDeleteWhileOpen: a deleted file still being written is read for
// rotate_wait, then let go; its pos_file line is marked unwatched.
func TestDeleteWhileOpen(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	log, pos := filepath.Join(dir, "d.log"), filepath.Join(dir, "d.pos")
	w, err := os.OpenFile(log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	plugintest.Must(t, err)
	defer w.Close()
	_, _ = w.WriteString("before\n")
	stop := plugintest.Start(t, plugintest.Build(t, tailConf(log, pos, "del", "")))
	messages(t, "del", 1)
	plugintest.Must(t, os.Remove(log))
	_, _ = w.WriteString("after delete\n")
	got := messages(t, "del", 2)
	plugintest.WaitFor(t, "the unwatched mark", func() bool {
		data, _ := os.ReadFile(pos)
		return strings.Contains(string(data), "\tffffffffffffffff\t")
	})
	stop()
	requireSame(t, got, []string{"before", "after delete"})
}

// TestSymlinkedPaths: Kubernetes' /var/log/containers holds symlinks to
// files under /var/log/pods; the tag is the link's path, and a rotation
// behind the link is followed.
func TestSymlinkedPaths(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	pods, containers := filepath.Join(dir, "pods", "ns_web_1", "app"), filepath.Join(dir, "containers")
	plugintest.Must(t, os.MkdirAll(pods, 0o755))
	plugintest.Must(t, os.MkdirAll(containers, 0o755))
	target := filepath.Join(pods, "0.log")
	link := filepath.Join(containers, "web_ns_app-0123.log")
	appendLines(t, target, numbered("x", 0, 10)...)
	plugintest.Must(t, os.Symlink(target, link))
	stop := plugintest.Start(t, plugintest.Build(t, tailConf(filepath.Join(containers, "*.log"), filepath.Join(dir, "k.pos"), "link", "")))
	messages(t, "link", 10)
	// The kubelet rotates the target: rename, new file.
	plugintest.Must(t, os.Rename(target, target+".20261206"))
	appendLines(t, target, numbered("y", 0, 10)...)
	got := messages(t, "link", 20)
	stop()
	requireSame(t, got, append(numbered("x", 0, 10), numbered("y", 0, 10)...))
	if tag := plugintest.Captured("link")[0].Tag; !strings.HasSuffix(tag, ".containers.web_ns_app-0123.log") {
		t.Errorf("tag %q, want the link's path", tag)
	}
}

// TestPartialAndLongLines: a last line without its newline waits for it;
// a line past max_line_size is skipped, the lines around it kept.
func TestPartialAndLongLines(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	log := filepath.Join(dir, "p.log")
	plugintest.Must(t, os.WriteFile(log, []byte("first\nhal"), 0o644))
	stop := plugintest.Start(t, plugintest.Build(t, tailConf(log, filepath.Join(dir, "p.pos"), "part", "  max_line_size 100")))
	messages(t, "part", 1)
	f, err := os.OpenFile(log, os.O_WRONLY|os.O_APPEND, 0)
	plugintest.Must(t, err)
	_, _ = f.WriteString("f done\n" + strings.Repeat("z", 300) + "\nafter long\n" + strings.Repeat("w", 150000) + "\nlast\n")
	f.Close()
	got := messages(t, "part", 4)
	stop()
	requireSame(t, got, []string{"first", "half done", "after long", "last"})
}

// TestManyFilesAndLateFiles: two thousand files, and files that appear
// after the start (read from their beginning whatever read_from_head).
func TestManyFilesAndLateFiles(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	const files = 2000
	for i := 0; i < files; i++ {
		appendLines(t, filepath.Join(dir, fmt.Sprintf("f%04d.log", i)), numbered(fmt.Sprintf("f%04d", i), 0, 3)...)
	}
	stop := plugintest.Start(t, plugintest.Build(t, tailConf(filepath.Join(dir, "*.log"), filepath.Join(dir, "m.pos"), "many", "")))
	messages(t, "many", files*3)
	appendLines(t, filepath.Join(dir, "late.log"), numbered("late", 0, 3)...)
	got := messages(t, "many", files*3+3)
	stop()
	seen := map[string]int{}
	for _, m := range got {
		seen[m]++
	}
	for i := 0; i < files; i++ {
		for _, l := range numbered(fmt.Sprintf("f%04d", i), 0, 3) {
			if seen[l] != 1 {
				t.Fatalf("%q seen %d times", l, seen[l])
			}
		}
	}
	for _, l := range numbered("late", 0, 3) {
		if seen[l] != 1 {
			t.Fatalf("late file's %q seen %d times", l, seen[l])
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, "m.pos"))
	if n := strings.Count(string(data), "\n"); n != files+1 {
		t.Errorf("pos_file has %d lines, want %d", n, files+1)
	}
	if !regexp.MustCompile(`(?m)^/.+\tf?[0-9a-f]{16}\t[0-9a-f]{16}$`).Match(data) {
		t.Errorf("pos_file not in Fluentd's format: %.200q", data)
	}
}

// TestRefusedBatchesWait: while the output refuses, the file waits and
// its lines are offered again; each arrives once.
func TestRefusedBatchesWait(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	log := filepath.Join(dir, "b.log")
	appendLines(t, log, numbered("l", 0, 40)...)
	conf := strings.Replace(tailConf(log, filepath.Join(dir, "b.pos"), "bp", "  read_lines_limit 10"), "name bp", "name bp\n  fail 3", 1)
	stop := plugintest.Start(t, plugintest.Build(t, conf))
	got := messages(t, "bp", 40)
	stop()
	requireSame(t, got, numbered("l", 0, 40))
}

// TestMultilineAndCRI: a multiline parser groups lines by
// format_firstline (the last block goes out after
// multiline_flush_interval); the cri parser gets partial lines joined.
func TestMultilineAndCRI(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	ml := filepath.Join(dir, "java.log")
	appendLines(t, ml, "orphan line", "2026-12-06 ERROR boom", "  at A.b", "  at C.d", "2026-12-06 INFO ok")
	conf := strings.Replace(tailConf(ml, filepath.Join(dir, "j.pos"), "ml", "  multiline_flush_interval 0.3s"),
		"    @type none", "    @type multiline\n    format_firstline /^\\d{4}-/\n    format1 /^(?<day>\\S+) (?<level>\\S+) (?<message>.*)/", 1)
	stop := plugintest.Start(t, plugintest.Build(t, conf))
	got := messages(t, "ml", 2)
	stop()
	requireSame(t, got, []string{"boom\n  at A.b\n  at C.d", "ok"})

	plugintest.Reset()
	cri := filepath.Join(dir, "cri.log")
	appendLines(t, cri,
		"2026-12-06T10:00:00.000000001Z stdout P part one, ",
		"2026-12-06T10:00:00.000000002Z stderr F an error",
		"2026-12-06T10:00:00.000000003Z stdout P part two, ",
		"2026-12-06T10:00:00.000000004Z stdout F the end",
		"2026-12-06T10:00:01Z stdout F whole")
	conf = strings.Replace(tailConf(cri, filepath.Join(dir, "c.pos"), "cri", ""), "    @type none", "    @type cri", 1)
	stop = plugintest.Start(t, plugintest.Build(t, conf))
	got = messages(t, "cri", 3)
	stop()
	requireSame(t, got, []string{"an error", "part one, part two, the end", "whole"})
	if ev := plugintest.Captured("cri")[1]; ev.Record["stream"] != "stdout" || ev.Record["logtag"] != "F" || ev.Time.Std().Nanosecond() != 1 {
		t.Errorf("joined CRI event %v at %v", ev.Record, ev.Time.Std())
	}
}

// TestGroupRateLimit: <group> shares a rule's limit among its files; a
// file over its share waits for the next period, nothing is dropped, and
// files no rule takes are not limited.
func TestGroupRateLimit(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	for _, name := range []string{"web_prod_a.log", "api_prod_b.log", "job_dev_c.log"} {
		appendLines(t, filepath.Join(dir, name), numbered(name, 0, 30)...)
	}
	group := fmt.Sprintf(`  <group>
    pattern /%s\/(?<podname>[^_]+)_(?<namespace>[^_]+)_.*\.log$/
    rate_period 2s
    <rule>
      match {"namespace": "/^prod$/"}
      limit 20
    </rule>
  </group>`, strings.ReplaceAll(dir, "/", `\/`))
	e := plugintest.Build(t, tailConf(filepath.Join(dir, "*.log"), filepath.Join(dir, "g.pos"), "grp", group))
	stop := plugintest.Start(t, e)
	// Within the first period the two prod files read 10 lines each (20
	// shared by two) and the dev file all 30; a slow machine may be in
	// the second period when it looks, hence at most 20.
	plugintest.WaitFor(t, "the first period's lines", func() bool { return len(plugintest.Captured("grp")) >= 50 })
	perFile := func() map[string]int {
		n := map[string]int{}
		for _, ev := range plugintest.Captured("grp") {
			n[strings.Fields(fmt.Sprint(ev.Record["message"]))[0]]++
		}
		return n
	}
	first := perFile()
	if first["web_prod_a.log"] > 20 || first["api_prod_b.log"] > 20 || first["job_dev_c.log"] != 30 {
		t.Errorf("after the first period: %v", first)
	}
	got := messages(t, "grp", 90)
	stop()
	if n := perFile(); n["web_prod_a.log"] != 30 || n["api_prod_b.log"] != 30 || len(got) != 90 {
		t.Errorf("in the end: %v (%d events)", n, len(got))
	}
}

// TestRotationWithoutPosFile: without a pos_file a rotation is followed
// all the same.
func TestRotationWithoutPosFile(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	log := filepath.Join(dir, "np.log")
	appendLines(t, log, numbered("a", 0, 5)...)
	conf := strings.Replace(tailConf(log, "", "nopos", ""), "  pos_file \n", "", 1)
	stop := plugintest.Start(t, plugintest.Build(t, conf))
	messages(t, "nopos", 5)
	plugintest.Must(t, os.Rename(log, log+".1"))
	appendLines(t, log, numbered("b", 0, 5)...)
	got := messages(t, "nopos", 10)
	stop()
	requireSame(t, got, append(numbered("a", 0, 5), numbered("b", 0, 5)...))
}

// TestFollowInodes: with follow_inodes, a rotated file that path still
// matches goes on from where it was under its new name, also when it was
// renamed while Sluice was stopped; without it, Fluentd's default, the
// rotated name is read again from its start.
func TestFollowInodes(t *testing.T) {
	for _, follow := range []bool{true, false} {
		plugintest.Reset()
		dir := t.TempDir()
		log, pos := filepath.Join(dir, "app.log"), filepath.Join(dir, "app.pos")
		extra := ""
		if follow {
			extra = "  follow_inodes true"
		}
		conf := tailConf(log+"*", pos, "inodes", extra)
		appendLines(t, log, numbered("a", 0, 10)...)
		stop := plugintest.Start(t, plugintest.Build(t, conf))
		messages(t, "inodes", 10)
		plugintest.Must(t, os.Rename(log, log+".1"))
		appendLines(t, log, numbered("b", 0, 5)...)
		appendLines(t, log+".1", numbered("a", 10, 13)...)
		if !follow {
			// app.log.1 is read again from its start: a 0-12 twice
			// (its late lines were read by the drainer too).
			got := messages(t, "inodes", 31)
			stop()
			if n := len(got); n != 31 {
				t.Errorf("without follow_inodes: %d events, want 31", n)
			}
			continue
		}
		messages(t, "inodes", 18)
		stop()
		// Renamed while stopped: app.log.1 → app.log.2, app.log → app.log.1.
		plugintest.Must(t, os.Rename(log+".1", log+".2"))
		plugintest.Must(t, os.Rename(log, log+".1"))
		appendLines(t, log+".1", numbered("b", 5, 8)...)
		stop = plugintest.Start(t, plugintest.Build(t, conf))
		got := messages(t, "inodes", 21)
		stop()
		seen := map[string]int{}
		for _, m := range got {
			seen[m]++
		}
		for _, l := range append(numbered("a", 0, 13), numbered("b", 0, 8)...) {
			if seen[l] != 1 {
				t.Errorf("with follow_inodes %q seen %d times (%d events)", l, seen[l], len(got))
			}
		}
	}
}

// TestParameters: exclude_path, strftime in path, path_key,
// emit_unmatched_lines, limit_recently_modified, open_on_every_update,
// read_bytes_limit_per_second, and Docker's json-file lines through the
// json parser with their time.
func TestParameters(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	today := filepath.Join(dir, "app-"+time.Now().Format("20060102")+".log")
	docker := `{"log":"hello from docker\n","stream":"stdout","time":"2026-12-06T10:00:00.123456789Z"}`
	appendLines(t, today, docker, "not json")
	appendLines(t, filepath.Join(dir, "app-skip.log"), `{"log":"excluded"}`)
	old := filepath.Join(dir, "app-old.log")
	appendLines(t, old, `{"log":"too old"}`)
	plugintest.Must(t, os.Chtimes(old, time.Now().Add(-2*time.Hour), time.Now().Add(-2*time.Hour)))
	conf := strings.Replace(tailConf(filepath.Join(dir, "app-%Y%m%d.log")+","+filepath.Join(dir, "app-*.log"), filepath.Join(dir, "p.pos"), "params",
		`  exclude_path ["`+filepath.Join(dir, "*skip*")+`"]
  path_key file
  emit_unmatched_lines true
  limit_recently_modified 1h
  open_on_every_update true
  read_bytes_limit_per_second 8192`), "    @type none", "    @type json\n    time_format %Y-%m-%dT%H:%M:%S.%NZ", 1)
	e := plugintest.Build(t, conf)
	stop := plugintest.Start(t, e)
	got := waitAll(t, "params", 2)
	if got[0].Record["log"] != "hello from docker\n" || got[0].Record["stream"] != "stdout" || got[0].Record["file"] != today ||
		got[0].Time.Std().Nanosecond() != 123456789 {
		t.Errorf("docker line: %v at %v", got[0].Record, got[0].Time.Std())
	}
	if got[1].Record["unmatched_line"] != "not json" || got[1].Record["file"] != today {
		t.Errorf("unmatched line: %v", got[1].Record)
	}
	// open_on_every_update: lines appended after a close are read on
	// reopening; read_bytes_limit_per_second spreads a 30 KiB burst over
	// seconds: when its first lines are in, most are still to come.
	var burst []string
	for i := 0; i < 300; i++ {
		burst = append(burst, fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("p", 80)))
	}
	appendLines(t, today, burst...)
	if early := waitAll(t, "params", 3); len(early) > 2+150 {
		t.Errorf("%d of the burst's 300 lines read at once, past read_bytes_limit_per_second", len(early)-2)
	}
	got = waitAll(t, "params", 302)
	var throttled int64
	for _, p := range e.Inputs() {
		if m, ok := p.(plugin.Measured); ok {
			m.Measure(func(name, _ string, v int64, _ bool) {
				if name == "throttled_total" {
					throttled = v
				}
			})
		}
	}
	stop()
	for _, ev := range got {
		if s := fmt.Sprint(ev.Record["log"]); s == "excluded" || s == "too old" {
			t.Errorf("read a file it should not: %v", ev.Record)
		}
	}
	if len(got) != 302 || throttled == 0 {
		t.Errorf("%d events, throttled %d times; want 302 and some", len(got), throttled)
	}
}

func waitAll(t *testing.T, name string, n int) []plugintest.Event {
	t.Helper()
	plugintest.WaitFor(t, fmt.Sprintf("%d events", n), func() bool { return len(plugintest.Captured(name)) >= n })
	return plugintest.Captured(name)
}

// TestFromEncoding: a Shift_JIS file is read as UTF-8 records, as
// Fluentd's from_encoding converts; UTF-16 is refused at check.
func TestFromEncoding(t *testing.T) {
	plugintest.Reset()
	dir := t.TempDir()
	log := filepath.Join(dir, "sjis.log")
	sjis, err := japanese.ShiftJIS.NewEncoder().Bytes([]byte("ログ一行目\nエラー発生\n"))
	plugintest.Must(t, err)
	plugintest.Must(t, os.WriteFile(log, sjis, 0o644))
	conf := tailConf(log, filepath.Join(dir, "e.pos"), "enc", "  from_encoding Shift_JIS\n  encoding UTF-8")
	stop := plugintest.Start(t, plugintest.Build(t, conf))
	got := messages(t, "enc", 2)
	stop()
	requireSame(t, got, []string{"ログ一行目", "エラー発生"})
	if _, err := plugintest.BuildErr(strings.Replace(conf, "Shift_JIS", "UTF-16LE", 1)); err == nil || !strings.Contains(err.Error(), "UTF-16LE") {
		t.Errorf("UTF-16 from_encoding: %v, want a refusal", err)
	}
}

// TestInotifyWakes: with polling of watched files pushed out to an hour,
// appended lines, a rotation and a truncation are still seen: inotify
// wakes the follower.
func TestInotifyWakes(t *testing.T) {
	plugintest.Reset()
	defer tail.SetNotifiedPoll(time.Hour, time.Hour)()
	dir := t.TempDir()
	log := filepath.Join(dir, "w.log")
	appendLines(t, log, "first")
	stop := plugintest.Start(t, plugintest.Build(t, tailConf(log, filepath.Join(dir, "w.pos"), "wake", "")))
	messages(t, "wake", 1)
	appendLines(t, log, "appended")
	messages(t, "wake", 2)
	plugintest.Must(t, os.Rename(log, log+".1"))
	appendLines(t, log, "after rotation")
	messages(t, "wake", 3)
	// Shorter than what was there: a file refilled past the old position
	// before anyone looks cannot be told from one that grew.
	plugintest.Must(t, os.Truncate(log, 0))
	appendLines(t, log, "cut")
	got := messages(t, "wake", 4)
	stop()
	requireSame(t, got, []string{"first", "appended", "after rotation", "cut"})
}
