package buffer

import (
	"bytes"
	"os"
	"testing"
)

// diskBytes reads a chunk's bytes from its file, as a restart would.
func diskBytes(t *testing.T, s *File, c *Chunk) []byte {
	t.Helper()
	cold := &File{Path: s.Path, BackupDir: s.BackupDir, Policy: SyncNever, Gzip: s.Gzip}
	data, err := cold.Load(&Chunk{ID: c.ID, file: &fileChunk{path: ChunkFile(c)}})
	if err != nil {
		t.Fatalf("reading %s: %v", ChunkFile(c), err)
	}
	return data
}

// TestFileStoreHoldsCopy: a chunk's appends are held in memory as well as
// written to its file; Load hands out a copy the caller may keep, and the
// memory of a committed chunk serves the next one.
func TestFileStoreHoldsCopy(t *testing.T) {
	for _, gz := range []bool{false, true} {
		s := newFileStore(t, SyncNever)
		s.Gzip, s.MemoryLimit = gz, 1<<20
		c := newChunk("t")
		if err := s.Create(c); err != nil {
			t.Fatal(err)
		}
		var want []byte
		for i := 1; i <= 3; i++ {
			data := entries(t, i, "t")
			if err := s.Append(c, data, i); err != nil {
				t.Fatal(err)
			}
			want = append(want, data...)
		}
		if err := s.Enqueue(c); err != nil {
			t.Fatal(err)
		}
		held := s.Held(c)
		if !bytes.Equal(held, want) {
			t.Fatalf("gzip=%v: held %d bytes, want the %d appended", gz, len(held), len(want))
		}
		if disk := diskBytes(t, s, c); !bytes.Equal(disk, want) {
			t.Fatalf("gzip=%v: the file holds %d bytes, want %d", gz, len(disk), len(want))
		}
		loaded, err := s.Load(c)
		if err != nil || !bytes.Equal(loaded, want) {
			t.Fatalf("gzip=%v: Load: %v", gz, err)
		}
		loaded[0] ^= 0xff
		if !bytes.Equal(s.Held(c), want) {
			t.Fatalf("gzip=%v: changing what Load returned changed the held copy", gz)
		}
		inUse := s.CopyBytes()
		if inUse <= 0 || inUse > s.MemoryLimit {
			t.Fatalf("gzip=%v: %d bytes held for copies, limit %d", gz, inUse, s.MemoryLimit)
		}
		if err := s.Commit(c); err != nil {
			t.Fatal(err)
		}
		next := newChunk("t")
		s.Create(next)
		s.Append(next, want, 6)
		if s.CopyBytes() != inUse {
			t.Errorf("gzip=%v: the next chunk of the same size grew the copies from %d to %d bytes", gz, inUse, s.CopyBytes())
		}
		if !bytes.Equal(s.Held(next), want) {
			t.Errorf("gzip=%v: the next chunk's copy is wrong", gz)
		}
	}
}

// TestFileStoreCopyLimit: a copy that would pass MemoryLimit is dropped,
// the chunk is read from its file, and the memory is accounted for.
func TestFileStoreCopyLimit(t *testing.T) {
	s := newFileStore(t, SyncNever)
	s.MemoryLimit = 100 << 10 // room for the first 64 KiB, not its doubling
	frame := bytes.Repeat([]byte{0xc0}, 40<<10)
	small, big := newChunk("small"), newChunk("big")
	for _, c := range []*Chunk{big, small} {
		if err := s.Create(c); err != nil {
			t.Fatal(err)
		}
	}
	s.Append(big, frame, 1)
	if s.Held(big) == nil {
		t.Fatal("the first frame was not held")
	}
	s.Append(big, frame, 1)
	s.Append(big, frame, 1)
	if s.Held(big) != nil {
		t.Fatal("a copy past the memory limit was kept")
	}
	if s.CopyBytes() != 0 {
		t.Errorf("%d bytes still counted for the dropped copy", s.CopyBytes())
	}
	// The dropped copy's memory is free for another chunk, and the big
	// chunk, with room again, stays uncopied: its copy would lack frames.
	s.Append(small, frame[:100], 1)
	s.Append(big, frame[:100], 1)
	if s.Held(small) == nil || s.Held(big) != nil {
		t.Errorf("after the drop: small held %v, big held %v", s.Held(small) != nil, s.Held(big) != nil)
	}
	s.Enqueue(big)
	got, err := s.Load(big)
	if want := append(bytes.Repeat(frame, 3), frame[:100]...); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Load of the uncopied chunk: %v, %d bytes, want %d", err, len(got), len(want))
	}
	if s.CopyBytes() > s.MemoryLimit {
		t.Errorf("%d bytes held, limit %d", s.CopyBytes(), s.MemoryLimit)
	}
}

// TestFileStoreRecoveredChunkNotHeld: a chunk recovered after a restart
// has its earlier frames only on disk, so later appends do not start a
// copy that would hand the output half a chunk.
func TestFileStoreRecoveredChunkNotHeld(t *testing.T) {
	s := newFileStore(t, SyncNever)
	s.MemoryLimit = 1 << 20
	first := entries(t, 2, "t")
	fill(t, s, "t", first)
	r := reopen(t, s)
	staged, _, problems := r.Recover()
	if len(staged) != 1 || len(problems) != 0 {
		t.Fatalf("recovered %d staged chunks, problems %v", len(staged), problems)
	}
	more := entries(t, 1, "t")
	if err := r.Append(staged[0], more, 1); err != nil {
		t.Fatal(err)
	}
	if r.Held(staged[0]) != nil {
		t.Fatal("a recovered chunk holds a copy of only its later appends")
	}
	got, err := r.Load(staged[0])
	if err != nil || !bytes.Equal(got, append(first, more...)) {
		t.Fatalf("Load: %v, %d bytes", err, len(got))
	}
}

// TestFileStoreLoadsFromCopy: with a copy held, Load does not read the
// file: damage to it after the append shows only after a restart (when
// the CRCs catch it). Backup still moves the file aside.
func TestFileStoreLoadsFromCopy(t *testing.T) {
	s := newFileStore(t, SyncNever)
	s.MemoryLimit = 1 << 20
	want := entries(t, 4, "t")
	c := fill(t, s, "t", want)
	s.Enqueue(c)
	raw, _ := os.ReadFile(ChunkFile(c))
	raw[len(raw)-3] ^= 0x01
	os.WriteFile(ChunkFile(c), raw, 0o644)
	if got, err := s.Load(c); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Load with a held copy: %v", err)
	}
	if err := s.Backup(c, s.BackupDir, "test"); err != nil {
		t.Fatal(err)
	}
	if s.Held(c) != nil {
		t.Error("a chunk moved aside still holds its copy")
	}
}
