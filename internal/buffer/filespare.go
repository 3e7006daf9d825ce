package buffer

import (
	"errors"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
)

// Reusing chunk files. A written chunk's file is renamed to a spare
// (sluice.s<id>.chunk) instead of deleted, and the next chunk is written
// over it. Its pages are still in the page cache, so the appends overwrite
// memory the kernel already holds: no page allocation, no block
// reservation, and no freeing at delete. That was about a third of the
// kernel time a file buffer cost at a million events a second.
//
// A reused file has the old chunk's bytes after the new chunk's end until
// the new chunk is queued (then it is cut to its end). Recovery reads
// frames until one fails its CRC and cuts the rest off, so the old bytes
// must never pass for new frames: since format version 2 each frame's CRC
// starts from the CRC of the chunk id (frameSeed), and a frame of another
// chunk fails it even where it lines up exactly.

// maxSpareBytes bounds the size of the spare files kept, that is the page
// cache held for reuse per file buffer.
const maxSpareBytes = 64 << 20

type spareFile struct {
	path string
	size int64
}

// frameSeed is where a frame's CRC starts: the CRC of the chunk id, or 0
// in version 1 files.
func frameSeed(version byte, id ID) uint32 {
	if version < 2 {
		return 0
	}
	return crc32.Checksum(id[:], crcTable)
}

// frameCRC is a frame's checksum: its record count and payload, from seed.
func frameCRC(seed uint32, records, payload []byte) uint32 {
	return crc32.Update(crc32.Update(seed, crcTable, records), crcTable, payload)
}

// openSpare returns a spare file, and its size, with header h written
// over its start, renamed to path and positioned after h; nil if there is
// no spare or it fails (the caller then creates a file).
func (s *File) openSpare(path string, h []byte) (*os.File, int64) {
	s.mu.Lock()
	n := len(s.spares)
	if n == 0 {
		s.mu.Unlock()
		return nil, 0
	}
	sp := s.spares[n-1]
	s.spares = s.spares[:n-1]
	s.spareBytes -= sp.size
	s.mu.Unlock()
	// The header goes in before the rename: a crash in between leaves a
	// spare, which recovery deletes, never the old chunk under a new name.
	f, err := os.OpenFile(sp.path, os.O_WRONLY, 0)
	if err == nil {
		if _, err = f.WriteAt(h, 0); err == nil {
			if _, err = f.Seek(int64(len(h)), io.SeekStart); err == nil {
				err = os.Rename(sp.path, path)
			}
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		os.Remove(sp.path)
		if s.Log != nil {
			s.Log.Warn("buffer: could not reuse a chunk file; creating one", "path", sp.path, "err", err)
		}
		return nil, 0
	}
	return f, sp.size
}

// retire disposes of a written chunk's file: kept as a spare while the
// spares stay within maxSpareBytes, else deleted.
func (s *File) retire(fc *fileChunk) error {
	s.mu.Lock()
	keep := s.spareBytes+fc.size <= maxSpareBytes && s.failed.Load() == nil
	if keep {
		s.spareBytes += fc.size // claimed now, so that concurrent retires stay within the bound
	}
	s.mu.Unlock()
	if keep {
		spare := filepath.Join(s.Path, "sluice.s"+NewID().String()+".chunk")
		if err := os.Rename(fc.path, spare); err == nil {
			s.mu.Lock()
			s.spares = append(s.spares, spareFile{path: spare, size: fc.size})
			s.mu.Unlock()
			return nil
		}
		s.mu.Lock()
		s.spareBytes -= fc.size
		s.mu.Unlock()
	}
	if err := os.Remove(fc.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// trimTail cuts a reused file's old bytes off after the chunk's end.
func trimTail(fc *fileChunk) error {
	if fc.size <= fc.end {
		return nil
	}
	var err error
	if fc.f != nil {
		err = fc.f.Truncate(fc.end)
	} else {
		err = os.Truncate(fc.path, fc.end)
	}
	if err == nil {
		fc.size = fc.end
	}
	return err
}

// removeSpares deletes the spare files, which hold nothing to deliver,
// and returns how many there were.
func (s *File) removeSpares() int {
	s.mu.Lock()
	spares := s.spares
	s.spares, s.spareBytes = nil, 0
	s.mu.Unlock()
	for _, sp := range spares {
		os.Remove(sp.path)
	}
	return len(spares)
}
