package file_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-log/sluice/internal/plugintest"
)

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, rel)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// emitTwice sends two one-record streams (1362020400 = 2013-02-28 03:00
// UTC); with chunk_limit_records 1 each is its own chunk. Stopping the
// engine flushes them.
func emitTwice(t *testing.T, conf string) {
	t.Helper()
	e := plugintest.Build(t, conf)
	stop := plugintest.Start(t, e)
	for i := 0; i < 2; i++ {
		plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "web.access", map[string]any{"n": i})))
	}
	stop()
}

func TestDefaultPathGetsSliceIndexAndSuffix(t *testing.T) {
	dir := t.TempDir()
	emitTwice(t, `
<match **>
  @type file
  path `+dir+`/app
  <buffer time>
    timekey 1d
    timekey_use_utc true
    chunk_limit_records 1
  </buffer>
</match>`)
	got := listFiles(t, dir)
	if strings.Join(got, " ") != "app.20130228_0.log app.20130228_1.log" {
		t.Fatalf("files %v", got)
	}
	data, _ := os.ReadFile(filepath.Join(dir, got[0]))
	if !strings.HasPrefix(string(data), "2013-02-28T") || !strings.Contains(string(data), "\tweb.access\t{\"n\":") {
		t.Errorf("content %q", data)
	}
}

func TestPlaceholdersAppendAndFormat(t *testing.T) {
	dir := t.TempDir()
	emitTwice(t, `
<match **>
  @type file
  path `+dir+`/${tag[0]}/${tag}/%Y%m%d%H
  append true
  <format>
    @type single_value
    message_key n
  </format>
  <buffer tag,time>
    timekey 1h
    timekey_use_utc true
    chunk_limit_records 1
  </buffer>
</match>`)
	got := listFiles(t, dir)
	if strings.Join(got, " ") != "web/web.access/2013022803.log" {
		t.Fatalf("files %v", got)
	}
	data, _ := os.ReadFile(filepath.Join(dir, got[0]))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	sort.Strings(lines)
	if strings.Join(lines, ",") != "0,1" {
		t.Errorf("appended content %q", data)
	}
}

func TestGzipAppendIsReadable(t *testing.T) {
	dir := t.TempDir()
	emitTwice(t, `
<match **>
  @type file
  path `+dir+`/out
  append true
  compress gzip
  add_path_suffix false
  <format>
    @type json
  </format>
  <buffer time>
    timekey 1d
    timekey_use_utc true
    chunk_limit_records 1
  </buffer>
</match>`)
	got := listFiles(t, dir)
	if strings.Join(got, " ") != "out.20130228.gz" {
		t.Fatalf("files %v", got)
	}
	f, err := os.Open(filepath.Join(dir, got[0]))
	plugintest.Must(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f) // reads every member of a multi-member file
	plugintest.Must(t, err)
	data, err := io.ReadAll(zr)
	plugintest.Must(t, err)
	if n := strings.Count(string(data), "{\"n\":"); n != 2 {
		t.Errorf("decompressed %q: want 2 records", data)
	}
}

// TestInjectAddsFields: <inject>, and v0.12's flat include_tag_key and
// include_time_key, add the tag, host and time to the records the file
// output writes.
func TestInjectAddsFields(t *testing.T) {
	for _, c := range []struct{ name, params, want string }{
		{"section", "<inject>\n    tag_key tag\n    hostname_key host\n    hostname node-9\n    time_key ts\n    time_type unixtime\n  </inject>",
			`{"n":0,"host":"node-9","tag":"web.access","ts":1362020400}`},
		{"v0.12", "include_tag_key true\n  include_time_key true\n  time_format %Y%m%d\n  utc true",
			`{"n":0,"tag":"web.access","time":"20130228"}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			emitTwice(t, `
<match **>
  @type file
  path `+dir+`/app
  `+c.params+`
  <format>
    @type json
  </format>
  <buffer>
    chunk_limit_records 1
  </buffer>
</match>`)
			files := listFiles(t, dir)
			if len(files) == 0 {
				t.Fatal("no output")
			}
			data, _ := os.ReadFile(filepath.Join(dir, files[0]))
			if !strings.Contains(string(data), c.want) {
				t.Errorf("wrote %s\nwant a line %s", data, c.want)
			}
		})
	}
}

// TestFilePermissions: <system> file_permission and dir_permission set the
// modes of out_file's files and directories and of a file buffer's
// chunks; the buffer's own dir_permission overrides the system's.
func TestFilePermissions(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	conf := `
<system>
  file_permission 0600
  dir_permission 0700
</system>
<match **>
  @type file
  path ` + dir + `/out/app
  <buffer time>
    @type file
    path ` + dir + `/buf
    dir_permission 0750
    timekey 1d
    timekey_use_utc true
    flush_at_shutdown false
  </buffer>
</match>`
	e := plugintest.Build(t, conf)
	stop := plugintest.Start(t, e)
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "web", map[string]any{"n": 1})))
	chunks, _ := filepath.Glob(filepath.Join(dir, "buf", "sluice.*.chunk"))
	stop()
	mode := func(p string) os.FileMode {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if len(chunks) == 0 {
		t.Fatal("no chunk file in the buffer")
	}
	if m := mode(chunks[0]); m != 0o600 {
		t.Errorf("chunk file mode %o, want 600 (system file_permission)", m)
	}
	if m := mode(filepath.Join(dir, "buf")); m != 0o750 {
		t.Errorf("buffer directory mode %o, want 750 (the buffer's dir_permission)", m)
	}

	// out_file's own files, from a memory buffer flushed at shutdown.
	out := t.TempDir()
	emitTwice(t, `
<system>
  file_permission 0600
  dir_permission 0700
</system>
<match **>
  @type file
  path `+out+`/logs/app
</match>`)
	files, _ := filepath.Glob(filepath.Join(out, "logs", "app.*"))
	if len(files) == 0 {
		t.Fatal("no output file")
	}
	if m := mode(files[0]); m != 0o600 {
		t.Errorf("output file mode %o, want 600", m)
	}
	if m := mode(filepath.Join(out, "logs")); m != 0o700 {
		t.Errorf("output directory mode %o, want 700", m)
	}
}
