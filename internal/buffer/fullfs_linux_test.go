package buffer

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// smallFS mounts a tmpfs of size bytes for the test, which needs root.
func smallFS(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("a small file system is needed (mount -t tmpfs, as root): %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", dir).Run() })
	return dir
}

// A full disk: spare files yield to real data, the store says it cannot
// take appends while it cannot, and says it can again once the file
// system has room for a chunk (spares had kept the disk full after the
// destination recovered, and readiness stayed 200 throughout).
func TestFullDiskSparesYieldAndWriteErrorClears(t *testing.T) {
	dir := smallFS(t, "4m")
	s := &File{Path: filepath.Join(dir, "buf"), BackupDir: filepath.Join(dir, "backup"), Policy: SyncNever, ChunkLimit: 1 << 20}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mb := bytes.Repeat([]byte{'x'}, 1<<20-frameHeaderLen-200)
	write := func(c *Chunk) error {
		if err := s.Create(c); err != nil {
			return err
		}
		return s.Append(c, mb, 1)
	}
	// Two delivered chunks leave two spare files of 1 MiB each.
	delivered := []*Chunk{newChunk("a1"), newChunk("a2")}
	for _, c := range delivered {
		if err := write(c); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range delivered {
		if err := s.Enqueue(c); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(c); err != nil {
			t.Fatal(err)
		}
	}
	if len(s.spares) != 2 {
		t.Fatalf("%d spares, want 2", len(s.spares))
	}
	// Fill the rest of the disk.
	ballast := filepath.Join(dir, "ballast")
	f, _ := os.Create(ballast)
	for {
		if _, err := f.Write(bytes.Repeat([]byte{0}, 64<<10)); err != nil {
			break
		}
	}
	f.Close()
	// One chunk reuses a spare; the next needs room only the other spare
	// holds.
	if err := write(newChunk("b")); err != nil {
		t.Fatalf("a chunk over a spare file: %v", err)
	}
	if err := write(newChunk("c")); err != nil {
		t.Fatalf("a spare kept the room real data needed: %v", err)
	}
	if len(s.spares) != 0 {
		t.Errorf("%d spares left on a full disk", len(s.spares))
	}
	// Now nothing is left to give.
	full := newChunk("d")
	if err := write(full); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("a write to a full disk: %v", err)
	}
	if err := s.WriteError(); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("WriteError on a full disk: %v", err)
	}
	// The disk frees (the destination took the chunks): the store can
	// take appends again, before any append says so.
	os.Remove(ballast)
	if err := s.WriteError(); err != nil {
		t.Errorf("WriteError with room again: %v", err)
	}
}
