package buffer

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
)

func spareFiles(t *testing.T, s *File) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(s.Path, "sluice.s*.chunk"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// fill creates a chunk and appends the frames to it.
func fill(t *testing.T, s *File, tag string, frames ...[]byte) *Chunk {
	t.Helper()
	c := newChunk(tag)
	if err := s.Create(c); err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := s.Append(c, f, 1); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestFileStoreReusesWrittenFiles: a written chunk's file becomes the next
// chunk's, which holds exactly its own frames once queued.
func TestFileStoreReusesWrittenFiles(t *testing.T) {
	s := newFileStore(t, SyncNever)
	frame := bytes.Repeat([]byte("x"), 1000)
	first := fill(t, s, "t", frame, frame, frame, frame)
	s.Enqueue(first)
	before, err := os.Stat(ChunkFile(first))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(first); err != nil {
		t.Fatal(err)
	}
	if n := len(spareFiles(t, s)); n != 1 {
		t.Fatalf("%d spare files after a commit, want 1", n)
	}
	second := fill(t, s, "t", frame[:10])
	after, err := os.Stat(ChunkFile(second))
	if err != nil {
		t.Fatal(err)
	}
	if !os.SameFile(before, after) {
		t.Fatal("the next chunk got a new file, not the written one")
	}
	if len(spareFiles(t, s)) != 0 {
		t.Error("the reused spare is still there")
	}
	if err := s.Enqueue(second); err != nil {
		t.Fatal(err)
	}
	if got, want := fileSize(t, ChunkFile(second)), second.file.end; got != want {
		t.Errorf("queued reused file is %d bytes, its chunk ends at %d", got, want)
	}
	got, err := s.Load(second)
	if err != nil || !bytes.Equal(got, frame[:10]) {
		t.Fatalf("Load: %v, %q", err, got)
	}
}

// TestReusedFileRecoversOnlyItsChunk: frames of the file's earlier chunk
// that line up exactly with the new chunk's (same sizes) fail the new
// chunk's CRCs, so a crash does not bring delivered records back.
func TestReusedFileRecoversOnlyItsChunk(t *testing.T) {
	s := newFileStore(t, SyncNever)
	frame := entries(t, 3, "t")
	old := fill(t, s, "t", frame, frame, frame, frame)
	s.Enqueue(old)
	if err := s.Commit(old); err != nil {
		t.Fatal(err)
	}
	staged := fill(t, s, "t", frame, frame)
	if staged.file.size <= staged.file.end {
		t.Fatal("the staged chunk did not reuse the bigger file")
	}
	r := reopen(t, s) // a crash: nothing closed
	st, qu, problems := r.Recover()
	if len(st) != 1 || len(qu) != 0 || len(problems) != 0 {
		t.Fatalf("recovered %d staged, %d queued, problems %v", len(st), len(qu), problems)
	}
	if st[0].Records != 2 {
		t.Fatalf("recovered %d records, want the 2 appended since the reuse", st[0].Records)
	}
	if got := fileSize(t, ChunkFile(st[0])); got != staged.file.end {
		t.Errorf("recovered file is %d bytes, want %d", got, staged.file.end)
	}
	r.Enqueue(st[0])
	if got, err := r.Load(st[0]); err != nil || !bytes.Equal(got, append(frame, frame...)) {
		t.Errorf("Load after recovery: %v, %d bytes", err, len(got))
	}
}

// TestFileStoreClosesCleanly: Close cuts staged reused files to their
// chunk and deletes the spares; Recover deletes spares a crash left.
func TestFileStoreClosesCleanly(t *testing.T) {
	s := newFileStore(t, SyncNever)
	frame := bytes.Repeat([]byte("y"), 5000)
	for _, c := range []*Chunk{fill(t, s, "a", frame, frame), fill(t, s, "b", frame, frame)} {
		s.Enqueue(c)
		s.Commit(c)
	}
	staged := fill(t, s, "t", frame[:1])
	if len(spareFiles(t, s)) != 1 {
		t.Fatalf("spares: %v", spareFiles(t, s))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left := spareFiles(t, s); len(left) != 0 {
		t.Errorf("spares left after Close: %v", left)
	}
	if got := fileSize(t, ChunkFile(staged)); got != staged.file.end {
		t.Errorf("staged file is %d bytes after Close, its chunk ends at %d", got, staged.file.end)
	}

	crashed := newFileStore(t, SyncNever)
	c := fill(t, crashed, "t", frame)
	crashed.Enqueue(c)
	crashed.Commit(c)
	r := reopen(t, crashed)
	r.Recover()
	if left := spareFiles(t, r); len(left) != 0 {
		t.Errorf("spares left after Recover: %v", left)
	}
}

// TestSpareFilesBounded: spares are kept only up to maxSpareBytes.
func TestSpareFilesBounded(t *testing.T) {
	s := newFileStore(t, SyncNever)
	big := make([]byte, maxSpareBytes/2+1)
	a, b := fill(t, s, "a", big), fill(t, s, "b", big)
	for _, c := range []*Chunk{a, b} {
		s.Enqueue(c)
		if err := s.Commit(c); err != nil {
			t.Fatal(err)
		}
	}
	var total int64
	for _, f := range spareFiles(t, s) {
		total += fileSize(t, f)
	}
	if total == 0 || total > maxSpareBytes {
		t.Errorf("spare files hold %d bytes, want some and at most %d", total, maxSpareBytes)
	}
	if _, err := os.Stat(ChunkFile(b)); !os.IsNotExist(err) {
		t.Errorf("the chunk past the bound is still on disk: %v", err)
	}
}

// TestBackupOfReusedChunk: a chunk moved aside holds only its own frames.
func TestBackupOfReusedChunk(t *testing.T) {
	s := newFileStore(t, SyncNever)
	frame := bytes.Repeat([]byte("z"), 3000)
	c := fill(t, s, "t", frame, frame, frame)
	s.Enqueue(c)
	s.Commit(c)
	staged := fill(t, s, "t", frame[:7])
	if err := s.Backup(staged, s.BackupDir, "test"); err != nil {
		t.Fatal(err)
	}
	moved, _ := filepath.Glob(filepath.Join(s.BackupDir, "*.test"))
	if len(moved) != 1 {
		t.Fatalf("backups: %v", moved)
	}
	if got := fileSize(t, moved[0]); got != staged.file.end {
		t.Errorf("backup is %d bytes, its chunk ends at %d", got, staged.file.end)
	}
}

// TestVersion1ChunksStillRead: a chunk written before frame CRCs took the
// chunk id is recovered and loaded.
func TestVersion1ChunksStillRead(t *testing.T) {
	s := newFileStore(t, SyncNever)
	c := newChunk("old")
	h := encodeHeader(c, 0)
	h[4] = 1
	data := entries(t, 2, "old")
	var fr [frameHeaderLen]byte
	binary.BigEndian.PutUint32(fr[0:4], uint32(len(data)))
	binary.BigEndian.PutUint32(fr[4:8], 2)
	binary.BigEndian.PutUint32(fr[8:12], crc32.Update(crc32.Checksum(fr[4:8], crcTable), crcTable, data))
	file := append(append(h, fr[:]...), data...)
	if err := os.WriteFile(s.chunkPath(c, 'q'), file, 0o644); err != nil {
		t.Fatal(err)
	}
	_, queued, problems := s.Recover()
	if len(queued) != 1 || len(problems) != 0 || queued[0].Records != 2 {
		t.Fatalf("recovered %d queued, problems %v", len(queued), problems)
	}
	if got, err := s.Load(queued[0]); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Load of a version 1 chunk: %v", err)
	}
}
