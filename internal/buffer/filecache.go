package buffer

// The file store's memory copies. A chunk this process writes is also kept
// in memory, within File.MemoryLimit, so that its flush hands the output
// those bytes instead of reading the file back, checking its CRCs and
// joining its frames. The file stays the record of truth: it is written
// before every acknowledgement exactly as without a copy, and it is what a
// restart recovers. A chunk whose copy would pass the limit loses it and
// is read from disk; so is every chunk a restart recovers.

// Holder is a Store that may hold a chunk's bytes in memory.
type Holder interface {
	// Held returns the chunk's bytes, decompressed, if the store holds
	// them in memory, else nil. They stay valid, and must not be
	// changed, until the chunk's Commit or Backup.
	Held(c *Chunk) []byte
}

var _ Holder = (*File)(nil)

// minCopy is the first allocation of a chunk's memory copy.
const minCopy = 64 << 10

// Held implements Holder.
func (s *File) Held(c *Chunk) []byte {
	if fc := c.file; fc != nil && fc.cached {
		return fc.mem
	}
	return nil
}

// startCopy gives a new chunk a memory copy, if the store keeps copies.
func (s *File) startCopy(fc *fileChunk) { fc.cached = s.MemoryLimit > 0 }

// appendCopy adds an appended frame's data to the chunk's copy. A copy
// that cannot grow within MemoryLimit is dropped for good: the chunk will
// be read from its file.
func (s *File) appendCopy(fc *fileChunk, data []byte) {
	if !fc.cached {
		return
	}
	if need := len(fc.mem) + len(data); need > cap(fc.mem) {
		grown := s.growCopy(fc.mem, need)
		if grown == nil {
			fc.mem, fc.cached = nil, false
			return
		}
		fc.mem = grown
	}
	fc.mem = append(fc.mem, data...)
}

// growCopy returns memory of at least need bytes holding old's bytes, or
// nil (and old given up) when MemoryLimit does not allow it. It doubles,
// as Memory.grow does, and prefers memory a committed chunk left behind.
func (s *File) growCopy(old []byte, need int) []byte {
	size := max(2*cap(old), need, minCopy)
	if s.ChunkLimit > 0 && int64(size) > s.ChunkLimit {
		size = max(int(s.ChunkLimit), need)
	}
	s.copyMu.Lock()
	var mem []byte
	for i, b := range s.idleCopies {
		if cap(b) >= need {
			mem = b
			s.idleCopies = append(s.idleCopies[:i], s.idleCopies[i+1:]...)
			break
		}
	}
	if mem == nil {
		// Fresh memory, within the limit: idle copies too small are let
		// go first, as the chunks ahead will be at least this large.
		for s.copyBytes-int64(cap(old))+int64(size) > s.MemoryLimit && len(s.idleCopies) > 0 {
			last := len(s.idleCopies) - 1
			s.copyBytes -= int64(cap(s.idleCopies[last]))
			s.idleCopies = s.idleCopies[:last]
		}
		if s.copyBytes-int64(cap(old))+int64(size) > s.MemoryLimit {
			s.copyBytes -= int64(cap(old))
			s.copyMu.Unlock()
			return nil
		}
		s.copyBytes += int64(size - cap(old))
	} else if cap(old) > 0 {
		s.idleCopies = append(s.idleCopies, old[:0])
	}
	s.copyMu.Unlock()
	if mem == nil {
		mem = make([]byte, 0, size)
	}
	return append(mem[:0], old...)
}

// dropCopy keeps a released chunk's memory for the next chunks.
func (s *File) dropCopy(fc *fileChunk) {
	if cap(fc.mem) > 0 {
		s.copyMu.Lock()
		s.idleCopies = append(s.idleCopies, fc.mem[:0])
		s.copyMu.Unlock()
	}
	fc.mem, fc.cached = nil, false
}

// releaseIdleCopies lets go of the memory no chunk holds (at Close).
func (s *File) releaseIdleCopies() {
	s.copyMu.Lock()
	defer s.copyMu.Unlock()
	for _, b := range s.idleCopies {
		s.copyBytes -= int64(cap(b))
	}
	s.idleCopies = nil
}

// CopyBytes returns the memory the store holds for copies, idle ones
// included; it never exceeds MemoryLimit.
func (s *File) CopyBytes() int64 {
	s.copyMu.Lock()
	defer s.copyMu.Unlock()
	return s.copyBytes
}
