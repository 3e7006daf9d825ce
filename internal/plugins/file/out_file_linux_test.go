//go:build linux

package file_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sluice-log/sluice/internal/plugintest"
)

// residentPages counts the pages of path's [off, off+n) in the page cache.
func residentPages(t *testing.T, path string, off, n int64) int {
	t.Helper()
	fh, err := os.Open(path)
	plugintest.Must(t, err)
	defer fh.Close()
	mem, err := unix.Mmap(int(fh.Fd()), off, int(n), unix.PROT_READ, unix.MAP_SHARED)
	plugintest.Must(t, err)
	defer unix.Munmap(mem)
	vec := make([]byte, (len(mem)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal("mincore:", errno)
	}
	resident := 0
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident
}

// emitLarge writes two records of about 1 MiB each, one chunk each, and
// returns the output directory once the engine has stopped.
func emitLarge(t *testing.T, options string) string {
	t.Helper()
	dir := t.TempDir()
	var st unix.Statfs_t
	plugintest.Must(t, unix.Statfs(dir, &st))
	if st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC {
		t.Skip("memory filesystem: its pages cannot be dropped")
	}
	e := plugintest.Build(t, `
<match **>
  @type file
  path `+dir+`/out
  `+options+`
  <format>
    @type single_value
    message_key m
  </format>
  <buffer>
    chunk_limit_records 1
  </buffer>
</match>`)
	stop := plugintest.Start(t, e)
	for _, c := range "ab" {
		m := strings.Repeat(string(c), 1<<20)
		plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "web.access", map[string]any{"m": m})))
	}
	stop()
	return dir
}

// TestDropPageCacheAppend: in one appended file, the first chunk leaves the
// page cache when the second is written; the second stays.
func TestDropPageCacheAppend(t *testing.T) {
	dir := emitLarge(t, "append true")
	got := listFiles(t, dir)
	if len(got) != 1 {
		t.Fatalf("files %v", got)
	}
	path := filepath.Join(dir, got[0])
	const chunk = 1<<20 + 1 // a record and its newline
	page := int64(os.Getpagesize())
	whole := chunk / page * page // the first chunk's whole pages
	if n := residentPages(t, path, 0, whole); n != 0 {
		t.Errorf("first chunk: %d of %d pages still cached", n, whole/page)
	}
	if n := residentPages(t, path, whole+page, whole); n == 0 {
		t.Error("second chunk: dropped already; it should stay until the next chunk")
	}
}

// firstFileCached returns the name of the first of two output files and
// how many of its pages are in the page cache.
func firstFileCached(t *testing.T, dir string) (string, int) {
	t.Helper()
	got := listFiles(t, dir)
	if len(got) != 2 {
		t.Fatalf("files %v", got)
	}
	first := filepath.Join(dir, got[0])
	info, err := os.Stat(first)
	plugintest.Must(t, err)
	return got[0], residentPages(t, first, 0, info.Size())
}

// TestDropPageCacheNewFiles: a finished file leaves the page cache, its
// last partial page too, once the next chunk goes to another file.
func TestDropPageCacheNewFiles(t *testing.T) {
	if name, n := firstFileCached(t, emitLarge(t, "")); n != 0 {
		t.Errorf("%s: %d pages still cached after the next chunk", name, n)
	}
}

// TestDropPageCacheOff: drop_page_cache false leaves the cache alone.
func TestDropPageCacheOff(t *testing.T) {
	if name, n := firstFileCached(t, emitLarge(t, "drop_page_cache false")); n == 0 {
		t.Errorf("%s: dropped from the page cache with drop_page_cache false", name)
	}
}
