package buffer

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// File keeps each chunk in its own file under Path. docs/buffer-format.md
// draws the format: a versioned header with the chunk's key, then frames of
// [length, records, CRC-32C, payload], one per append. A crash can tear only
// the last frame, which recovery cuts off; a chunk whose header is damaged
// is moved to BackupDir, never loaded, never fatal.
//
// Fsync policy (when an acknowledged append is safe):
//
//	every_write  Durable fsyncs before returning (grouped across callers):
//	             acked data survives a machine crash. Slowest.
//	interval     appends reach the OS at once and disk within Interval:
//	             acked data survives a process crash; a machine crash can
//	             lose the last Interval. The default.
//	never        appends reach the OS at once; the OS writes them back when
//	             it likes. Survives a process crash only.
type File struct {
	Path      string // the directory chunks live in
	BackupDir string
	Policy    string // every_write, interval, never
	Interval  time.Duration
	Gzip      bool
	// Formatted is whether the output stores formatted bytes; chunks
	// imported from Fluentd are taken to match.
	Formatted bool
	// Keys are the chunk keys, to map Fluentd's chunk variables.
	Keys ChunkKeys
	Log  *slog.Logger
	// MemoryLimit is how many bytes of the chunks this process writes are
	// also kept in memory, so that flushing them needs no read back (see
	// filecache.go). 0 keeps no copies.
	MemoryLimit int64
	// ChunkLimit caps a single copy (chunk_limit_size).
	ChunkLimit int64
	// Perm is the mode of the files and directories the store creates
	// (the zero value: DefaultPerm).
	Perm Perm

	mu    sync.Mutex            // guards dirty, open, queued, gen and names
	dirty map[*os.File]struct{} // files with writes not yet fsynced
	// names: a chunk file was created in Dir (or a spare renamed to a new
	// chunk's name) since the last fsync round, which then fsyncs Dir too:
	// a file's data is found after a machine crash only if its name
	// survives it.
	names  bool
	open   map[*os.File]struct{} // chunk files open, closed by Close
	queued map[*os.File]struct{} // queued chunks' files kept open for the syncer
	gen    uint64                // count of appends

	// failed is the last Create or Append when it failed, nil after one
	// that succeeded: while it is set, written chunks' files are deleted,
	// not kept as spares. An atomic, so that an append that succeeds
	// takes no lock for it.
	failed atomic.Pointer[writeFailure]

	syncMu sync.Mutex // serialises fsync rounds; guards synced
	synced uint64     // appends covered by the last fsync round

	spares     []spareFile // guarded by mu: written chunks' files, for reuse
	spareBytes int64       // guarded by mu

	copyMu     sync.Mutex // guards copyBytes and idleCopies
	copyBytes  int64      // memory held for copies, idle ones included
	idleCopies [][]byte   // released chunks' copies, for the next chunks

	stop chan struct{}
	wg   sync.WaitGroup
}

// fileChunk is the file store's state for one chunk.
type fileChunk struct {
	path  string
	f     *os.File // open while staged
	end   int64    // offset after the last complete frame
	size  int64    // of the file: past end while a reused file has old bytes
	seed  uint32   // frameSeed of the chunk
	frame []byte   // reused to write a small frame in one call
	// unsynced is a queued chunk's file, kept open so that the interval
	// syncer can fsync it. A chunk the output takes before the next round
	// leaves with its writes still in the page cache, unsynced: the next
	// chunk mostly writes over them before the kernel writes them back, and
	// the promise of the interval policy holds.
	unsynced *os.File
	// mem is the chunk's bytes, when cached: a copy of every append
	// since Create, within the store's MemoryLimit.
	mem    []byte
	cached bool
}

// maxQueuedOpen bounds the queued chunk files kept open for the syncer;
// beyond it a chunk is fsynced and closed as it is queued.
const maxQueuedOpen = 64

// smallFrame is the payload size below which a frame is written with one
// call instead of two.
const smallFrame = 64 << 10

// Fsync policies.
const (
	SyncEveryWrite = "every_write"
	SyncInterval   = "interval"
	SyncNever      = "never"
)

var (
	_ Store      = (*File)(nil)
	_ IntoLoader = (*File)(nil)
)

const (
	fileMagic      = "SLCK"
	fileVersion    = 2 // 1: frame CRCs without the chunk id (still read)
	flagFormatted  = 1 << 0
	flagGzip       = 1 << 1
	frameHeaderLen = 12
	// maxMetaLen bounds a header's metadata when reading untrusted files.
	maxMetaLen = 1 << 20
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

var chunkName = regexp.MustCompile(`^sluice\.([bqs])([0-9a-f]{32})\.chunk$`)

// Dir implements Store.
func (s *File) Dir() string { return s.Path }

func (s *File) perm() Perm { return s.Perm.OrDefault() }

// Open implements Store: it prepares the directories and starts the
// interval syncer.
func (s *File) Open() error {
	if err := os.MkdirAll(s.Path, s.perm().Dir); err != nil {
		return fmt.Errorf("buffer path: %w", err)
	}
	s.dirty = map[*os.File]struct{}{}
	s.open = map[*os.File]struct{}{}
	s.queued = map[*os.File]struct{}{}
	s.stop = make(chan struct{})
	if s.Policy == SyncInterval {
		s.wg.Add(1)
		go s.syncer()
	}
	return nil
}

func (s *File) syncer() {
	defer s.wg.Done()
	t := time.NewTicker(s.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.syncRound(); err != nil && s.Log != nil {
				s.Log.Error("buffer fsync failed", "dir", s.Path, "err", err)
			}
		}
	}
}

func (s *File) chunkPath(c *Chunk, state byte) string {
	return filepath.Join(s.Path, "sluice."+string(state)+c.ID.String()+".chunk")
}

func (s *File) flags() byte {
	var f byte
	if s.Formatted {
		f |= flagFormatted
	}
	if s.Gzip {
		f |= flagGzip
	}
	return f
}

// encodeHeader lays out the file header for c.
func encodeHeader(c *Chunk, flags byte) []byte {
	meta := msgp.AppendMapHeader(nil, 5)
	meta = msgp.AppendBytes(msgp.AppendString(meta, "id"), c.ID[:])
	meta = msgp.AppendString(msgp.AppendString(meta, "tag"), c.Key.Tag)
	meta = msgp.AppendInt64(msgp.AppendString(meta, "timekey"), c.Key.Timekey)
	values := c.Key.Values()
	meta = msgp.AppendArrayHeader(msgp.AppendString(meta, "values"), uint32(len(values)))
	for _, v := range values {
		meta = msgp.AppendString(meta, v)
	}
	meta = msgp.AppendInt64(msgp.AppendString(meta, "created"), c.Created.UnixNano())
	h := append([]byte(fileMagic), fileVersion, flags, 0, 0)
	h = binary.BigEndian.AppendUint32(h, uint32(len(meta)))
	h = append(h, meta...)
	return binary.BigEndian.AppendUint32(h, crc32.Checksum(meta, crcTable))
}

// Create implements Store: over a spare file if there is one.
func (s *File) Create(c *Chunk) error {
	path := s.chunkPath(c, 'b')
	h := encodeHeader(c, s.flags())
	if n := len(h) - 16; n > maxMetaLen {
		// Recovery refuses such a header as damaged: never acknowledge
		// what cannot be read back.
		return fmt.Errorf("buffer: a chunk key (tag and chunk-key values) of %d bytes is more than the file buffer reads back (%d)", n, maxMetaLen)
	}
	return s.writing(func() error { return s.create(c, path, h) })
}

func (s *File) create(c *Chunk, path string, h []byte) error {
	fc := &fileChunk{path: path, end: int64(len(h)), seed: frameSeed(fileVersion, c.ID)}
	if f, size := s.openSpare(path, h); f != nil {
		fc.f, fc.size = f, size
	} else {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, s.perm().File)
		if errors.Is(err, os.ErrNotExist) {
			// The directory went away (an operator cleaned up): make it again.
			if err = os.MkdirAll(s.Path, s.perm().Dir); err == nil {
				f, err = os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, s.perm().File)
			}
		}
		if err != nil {
			return fmt.Errorf("buffer: %w", err)
		}
		if _, err := f.Write(h); err != nil {
			f.Close()
			os.Remove(path)
			return fmt.Errorf("buffer: %w", err)
		}
		fc.f = f
	}
	fc.size = max(fc.size, fc.end)
	c.file = fc
	s.startCopy(fc)
	c.Formatted = s.Formatted
	s.track(fc.f)
	s.mu.Lock()
	s.names = true
	s.mu.Unlock()
	return nil
}

// track notes a chunk file open for appends.
func (s *File) track(f *os.File) {
	s.mu.Lock()
	if s.open != nil {
		s.open[f] = struct{}{}
	}
	s.mu.Unlock()
}

// Append implements Store: one frame per call.
func (s *File) Append(c *Chunk, data []byte, n int) error {
	return s.writing(func() error { return s.appendFrame(c, data, n) })
}

// writing runs a write of the store's (a chunk's header, a frame) and
// keeps its outcome for WriteError. A write the disk has no room for is
// tried again once the spare files are gone: they hold space only to be
// reused, and real data comes first.
func (s *File) writing(write func() error) error {
	err := write()
	if errors.Is(err, syscall.ENOSPC) && s.removeSpares() > 0 {
		err = write()
	}
	switch {
	case err != nil:
		s.failed.Store(&writeFailure{err: err, at: time.Now()})
	case s.failed.Load() != nil:
		s.failed.Store(nil)
	}
	return err
}

// writeFailure is a failed write of the store's, and when it failed.
type writeFailure struct {
	err error
	at  time.Time
}

// WriteError implements Store. It clears before the next append proves
// the store can take one, because a readiness probe that waited for an
// append would keep away the traffic that brings one: after a full disk,
// as soon as the file system has room for a chunk again; after any other
// failure, writeErrorHold later, so that appends may try again.
func (s *File) WriteError() error {
	f := s.failed.Load()
	switch {
	case f == nil:
		return nil
	case errors.Is(f.err, syscall.ENOSPC):
		if freeBytes(s.Path) >= uint64(min(max(s.ChunkLimit, 1<<20), maxFreeForWrites)) {
			return nil
		}
	case time.Since(f.at) >= writeErrorHold:
		return nil
	}
	return f.err
}

// writeErrorHold is how long a write failure other than a full disk keeps
// a file buffer reporting that it cannot take appends.
const writeErrorHold = 10 * time.Second

// maxFreeForWrites caps the room (a chunk's, chunk_limit_size) a file
// buffer that found its disk full waits for before it says it can take
// appends again: the default chunk_limit_size, 256 MiB, may be more than
// a small volume ever has.
const maxFreeForWrites = 64 << 20

// freeBytes is the space left to unprivileged writers on dir's file
// system, 0 when it cannot be read.
func freeBytes(dir string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0
	}
	return uint64(st.Bavail) * uint64(st.Bsize)
}

func (s *File) appendFrame(c *Chunk, data []byte, n int) error {
	fc := c.file
	if fc == nil || fc.f == nil {
		return fmt.Errorf("buffer: chunk %s is not open for appends", c.ID)
	}
	payload := data
	if s.Gzip {
		var err error
		if payload, err = appendGzip(nil, data); err != nil {
			return err
		}
	}
	var hdr [frameHeaderLen]byte
	binary.BigEndian.PutUint32(hdr[0:4], uint32(len(payload)))
	binary.BigEndian.PutUint32(hdr[4:8], uint32(n))
	binary.BigEndian.PutUint32(hdr[8:12], frameCRC(fc.seed, hdr[4:8], payload))
	var err error
	if len(payload) <= smallFrame {
		// One write for a small frame: a syscall costs more than the copy.
		fc.frame = append(append(fc.frame[:0], hdr[:]...), payload...)
		_, err = fc.f.Write(fc.frame)
	} else if _, err = fc.f.Write(hdr[:]); err == nil {
		_, err = fc.f.Write(payload)
	}
	if err == nil {
		fc.end += int64(frameHeaderLen + len(payload))
		fc.size = max(fc.size, fc.end)
		c.Size += int64(frameHeaderLen + len(payload))
		c.Records += n
		s.mu.Lock()
		s.dirty[fc.f] = struct{}{}
		s.gen++
		s.mu.Unlock()
		s.appendCopy(fc, data)
		return nil
	}
	// A failed write (disk full) leaves no half frame behind.
	err = fmt.Errorf("buffer: append to %s failed: %w", fc.path, err)
	if terr := fc.f.Truncate(fc.end); terr != nil {
		err = fmt.Errorf("%w (and truncating it back failed: %v)", err, terr)
	} else {
		fc.size = fc.end
	}
	_, _ = fc.f.Seek(fc.end, io.SeekStart)
	return err
}

// Durable implements Store.
func (s *File) Durable(context.Context) error {
	if s.Policy != SyncEveryWrite {
		return nil
	}
	s.mu.Lock()
	mine := s.gen
	s.mu.Unlock()
	s.syncMu.Lock()
	covered := s.synced >= mine
	s.syncMu.Unlock()
	if covered {
		return nil
	}
	return s.syncRound()
}

// syncRound fsyncs every dirty file. Concurrent callers take turns, and a
// caller whose appends an earlier round covered returns at once, so one
// fsync serves every append made before it: a group commit.
func (s *File) syncRound() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.mu.Lock()
	gen := s.gen
	if s.synced >= gen {
		s.mu.Unlock()
		return nil
	}
	files := make([]*os.File, 0, len(s.dirty))
	for f := range s.dirty {
		files = append(files, f)
	}
	clear(s.dirty)
	names := s.names
	s.names = false
	s.mu.Unlock()
	var first error
	var failed map[*os.File]struct{}
	for _, f := range files {
		if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
			if failed == nil {
				failed = map[*os.File]struct{}{}
			}
			failed[f] = struct{}{}
			if first == nil {
				first = fmt.Errorf("buffer: fsync: %w", err)
			}
		}
	}
	var dirErr error
	if names {
		if dirErr = syncDirHook(s.Path); dirErr != nil && first == nil {
			first = fmt.Errorf("buffer: fsync of the directory: %w", dirErr)
		}
	}
	s.mu.Lock()
	for _, f := range files {
		if _, bad := failed[f]; bad {
			s.dirty[f] = struct{}{} // the next round tries again
			continue
		}
		if _, ok := s.queued[f]; ok {
			// A queued chunk now on disk needs its descriptor no more.
			delete(s.queued, f)
			delete(s.open, f)
			f.Close()
		}
	}
	if dirErr != nil {
		s.names = true // the next round tries again
	}
	s.mu.Unlock()
	if first == nil {
		s.synced = gen
	}
	return first
}

func (s *File) forget(f *os.File) {
	s.mu.Lock()
	delete(s.dirty, f)
	delete(s.open, f)
	delete(s.queued, f)
	s.mu.Unlock()
}

// release closes whatever the store holds open for a chunk.
func (s *File) release(fc *fileChunk) {
	for _, f := range []*os.File{fc.f, fc.unsynced} {
		if f != nil {
			s.forget(f)
			f.Close()
		}
	}
	fc.f, fc.unsynced = nil, nil
	s.dropCopy(fc)
}

// Enqueue implements Store: the chunk is closed for appends and renamed
// from b to q. Under every_write its file is fsynced now. Under interval
// it is left to the syncer (see fileChunk.unsynced), unless too many are
// waiting.
func (s *File) Enqueue(c *Chunk) error {
	fc := c.file
	if fc == nil {
		return nil
	}
	// A queued file holds just its chunk. Should the cut fail, recovery
	// cuts the old bytes off instead: they fail the chunk's CRCs.
	_ = trimTail(fc)
	if f := fc.f; f != nil {
		fc.f = nil
		if s.keepForSyncer(f) {
			fc.unsynced = f
		} else {
			if s.Policy != SyncNever {
				if err := f.Sync(); err != nil {
					fc.f = f
					return fmt.Errorf("buffer: fsync %s: %w", fc.path, err)
				}
			}
			s.forget(f)
			f.Close()
		}
	}
	q := s.chunkPath(c, 'q')
	if fc.path != q {
		if err := os.Rename(fc.path, q); err != nil {
			return fmt.Errorf("buffer: %w", err)
		}
		fc.path = q
	}
	return nil
}

// keepForSyncer says whether a chunk's file, being queued, stays open for
// the interval syncer instead of being fsynced now.
func (s *File) keepForSyncer(f *os.File) bool {
	if s.Policy != SyncInterval {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dirty := s.dirty[f]; !dirty || len(s.queued) >= maxQueuedOpen {
		return false
	}
	s.queued[f] = struct{}{}
	return true
}

// Load implements Store: the frames' payloads, checked and joined, or a
// copy of the bytes held in memory.
func (s *File) Load(c *Chunk) ([]byte, error) { return s.LoadInto(c, nil) }

// LoadInto implements IntoLoader.
func (s *File) LoadInto(c *Chunk, dst []byte) ([]byte, error) {
	fc := c.file
	if fc == nil {
		return nil, fmt.Errorf("buffer: chunk %s has no file", c.ID)
	}
	if held := s.Held(c); held != nil {
		return append(dst[:0], held...), nil
	}
	raw, err := readFileInto(fc.path, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("buffer: %w", err)
	}
	_, flags, off, err := parseHeader(raw)
	if err != nil {
		return nil, &CorruptError{Path: fc.path, Err: err}
	}
	seed := frameSeed(raw[4], c.ID)
	out := raw[:0]
	damaged, tail := walkFrames(raw, off, seed, func(start, end int, _ uint32) {
		out = append(out, raw[start+frameHeaderLen:end]...) // moves left, never past what is read
	})
	if len(damaged) > 0 || tail < len(raw) {
		at := tail
		if len(damaged) > 0 {
			at = damaged[0].start
		}
		return nil, &CorruptError{Path: fc.path, Err: fmt.Errorf("frame at %d fails its checks", at)}
	}
	if flags&flagGzip != 0 {
		return gunzipAll(out)
	}
	return out, nil
}

// readFileInto reads the file at path into dst, growing it if needed.
func readFileInto(path string, dst []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	// One byte more than the file, so that the read that finds EOF needs
	// no growth; some more for appends that race the Stat.
	if size := int(fi.Size()) + 1; cap(dst) < size {
		dst = make([]byte, 0, size+512)
	}
	for {
		n, err := f.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return nil, err
		}
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)] // full: grow and read on
		}
	}
}

// CorruptError is a chunk file that fails its checks.
type CorruptError struct {
	Path string
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("corrupt buffer chunk %s: %v", e.Path, e.Err)
}
func (e *CorruptError) Unwrap() error { return e.Err }

// metaPath is where a chunk's Meta lives: by id, so that it stays put
// when the chunk file is renamed from b to q.
func (s *File) metaPath(id ID) string { return filepath.Join(s.Path, "sluice."+id.String()+".meta") }

// SaveMeta implements Store: the map, as msgpack, written to a temporary
// file, synced and renamed into place, so it is whole or absent.
func (s *File) SaveMeta(c *Chunk) error {
	keys := make([]string, 0, len(c.Meta))
	for k := range c.Meta {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b := msgp.AppendMapHeader(nil, uint32(len(keys)))
	for _, k := range keys {
		b = msgp.AppendString(msgp.AppendString(b, k), c.Meta[k])
	}
	b = binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
	path := s.metaPath(c.ID)
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, s.perm().File)
	if err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("buffer: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("buffer: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	return nil
}

// loadMeta reads a chunk's Meta, if it has any; a damaged file is ignored
// (the output decides afresh).
func (s *File) loadMeta(c *Chunk) {
	b, err := os.ReadFile(s.metaPath(c.ID))
	if err != nil || len(b) < 4 {
		return
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return
	}
	n, rest, err := msgp.ReadMapHeaderBytes(body)
	if err != nil {
		return
	}
	meta := make(map[string]string, n)
	for ; n > 0; n-- {
		var k, v string
		if k, rest, err = msgp.ReadStringBytes(rest); err != nil {
			return
		}
		if v, rest, err = msgp.ReadStringBytes(rest); err != nil {
			return
		}
		meta[k] = v
	}
	c.Meta = meta
}

// Commit implements Store.
func (s *File) Commit(c *Chunk) error {
	fc := c.file
	if fc == nil {
		return nil
	}
	os.Remove(s.metaPath(c.ID))
	s.release(fc)
	if err := s.retire(fc); err != nil {
		return fmt.Errorf("buffer: %w", err)
	}
	return nil
}

// Backup implements Store.
func (s *File) Backup(c *Chunk, dir, reason string) error {
	fc := c.file
	if fc == nil {
		return nil
	}
	s.release(fc)
	_ = trimTail(fc) // else the backup holds old bytes after the chunk
	os.Remove(s.metaPath(c.ID))
	return moveAside(fc.path, dir, reason, s.perm())
}

// moveAside renames path into dir, copying when dir is on another
// file system.
func moveAside(path, dir, reason string, perm Perm) error {
	perm = perm.OrDefault()
	if err := os.MkdirAll(dir, perm.Dir); err != nil {
		return err
	}
	dst := filepath.Join(dir, filepath.Base(path)+"."+reason)
	err := os.Rename(path, dst)
	if err == nil {
		return nil
	}
	var le *os.LinkError
	if !errors.As(err, &le) || !errors.Is(le.Err, syscall.EXDEV) {
		return err
	}
	data, rerr := os.ReadFile(path)
	if rerr != nil {
		return rerr
	}
	if werr := os.WriteFile(dst, data, perm.File); werr != nil {
		return werr
	}
	return os.Remove(path)
}

// Persistent implements Store.
func (s *File) Persistent() bool { return true }

// Close implements Store: syncs what is dirty, stops the syncer and closes
// the chunk files still open. Their chunks stay on disk and are recovered
// at the next start; a runtime that a reload retired leaves no descriptor
// behind.
func (s *File) Close() error {
	if s.stop != nil {
		select {
		case <-s.stop:
		default:
			close(s.stop)
		}
		s.wg.Wait()
	}
	// Files stand at their chunk's end: cut off what a reused file still
	// holds of an earlier chunk, so that the next start finds whole chunks.
	s.mu.Lock()
	for f := range s.open {
		if end, err := f.Seek(0, io.SeekCurrent); err == nil {
			_ = f.Truncate(end)
		}
	}
	s.mu.Unlock()
	s.removeSpares()
	var err error
	if s.Policy != SyncNever {
		err = s.syncRound()
	}
	s.mu.Lock()
	for f := range s.open {
		f.Close()
	}
	clear(s.open)
	clear(s.dirty)
	clear(s.queued)
	s.mu.Unlock()
	s.releaseIdleCopies()
	return err
}

// parseHeader checks a chunk file's header (of version b[4]) and returns
// its metadata, flags and the offset of the first frame.
func parseHeader(b []byte) (meta []byte, flags byte, off int, err error) {
	if len(b) < 12 || string(b[:4]) != fileMagic {
		return nil, 0, 0, errors.New("not a Sluice chunk (bad magic)")
	}
	if b[4] < 1 || b[4] > fileVersion { // b[4] is the version
		return nil, 0, 0, fmt.Errorf("unknown chunk format version %d", b[4])
	}
	flags = b[5]
	n := int(binary.BigEndian.Uint32(b[8:12]))
	if n > maxMetaLen || len(b) < 12+n+4 {
		return nil, 0, 0, errors.New("truncated header")
	}
	meta = b[12 : 12+n]
	if crc32.Checksum(meta, crcTable) != binary.BigEndian.Uint32(b[12+n:16+n]) {
		return nil, 0, 0, errors.New("header fails its checksum")
	}
	return meta, flags, 16 + n, nil
}

// decodeMeta rebuilds a chunk's identity from its header metadata.
func decodeMeta(meta []byte, c *Chunk) error {
	n, b, err := msgp.ReadMapHeaderBytes(meta)
	if err != nil {
		return err
	}
	var tag string
	var timekey int64
	var values []string
	for ; n > 0; n-- {
		var key []byte
		if key, b, err = msgp.ReadMapKeyZC(b); err != nil {
			return err
		}
		switch string(key) {
		case "id":
			var id []byte
			if id, b, err = msgp.ReadBytesZC(b); err == nil && len(id) == len(c.ID) {
				copy(c.ID[:], id)
			}
		case "tag":
			tag, b, err = msgp.ReadStringBytes(b)
		case "timekey":
			timekey, b, err = msgp.ReadInt64Bytes(b)
		case "values":
			var m uint32
			if m, b, err = msgp.ReadArrayHeaderBytes(b); err == nil {
				for ; m > 0 && err == nil; m-- {
					var v string
					v, b, err = msgp.ReadStringBytes(b)
					values = append(values, v)
				}
			}
		case "created":
			var ns int64
			if ns, b, err = msgp.ReadInt64Bytes(b); err == nil {
				c.Created = time.Unix(0, ns)
			}
		default:
			b, err = msgp.Skip(b)
		}
		if err != nil {
			return err
		}
	}
	c.Key = NewKey(tag, timekey, values)
	return nil
}

// Recover implements Store.
func (s *File) Recover() (staged, queued []*Chunk, problems []error) {
	entries, err := os.ReadDir(s.Path)
	if err != nil {
		return nil, nil, []error{fmt.Errorf("buffer: %w", err)}
	}
	var scratch []byte
	for _, e := range entries {
		m := chunkName.FindStringSubmatch(e.Name())
		if m == nil {
			if strings.HasSuffix(e.Name(), ".chunk.salvage") {
				os.Remove(filepath.Join(s.Path, e.Name())) // a salvage a crash cut short: the chunk is still whole
			}
			continue
		}
		path := filepath.Join(s.Path, e.Name())
		if m[1] == "s" {
			os.Remove(path) // a spare: its chunk was delivered
			continue
		}
		c, err := s.recoverFile(path, m[1] == "b", &scratch)
		if err != nil {
			problems = append(problems, err)
		}
		if err != nil && c == nil {
			if merr := moveAside(path, s.BackupDir, "corrupt", s.perm()); merr != nil {
				problems = append(problems, fmt.Errorf("buffer: moving %s aside: %w", path, merr))
			}
			continue
		}
		if c == nil {
			continue // empty: removed
		}
		s.loadMeta(c)
		if m[1] == "b" {
			staged = append(staged, c)
		} else {
			queued = append(queued, c)
		}
	}
	imported, iproblems := s.importFluentd()
	problems = append(problems, iproblems...)
	queued = append(queued, imported...)
	return staged, queued, problems
}

// recoverFile reads one chunk file, cutting off a torn last frame. Damage
// between frames is salvaged: the damaged bytes go to BackupDir, the file
// is rewritten with the frames that pass their checks, and the chunk comes
// back with a *CorruptError saying what was moved (the caller counts it).
// It returns nil for a chunk with no records (and removes the file).
// scratch is memory to read the file into, reused across files.
func (s *File) recoverFile(path string, staged bool, scratch *[]byte) (*Chunk, error) {
	raw, err := readFileInto(path, (*scratch)[:0])
	if err != nil {
		return nil, fmt.Errorf("buffer: %w", err)
	}
	*scratch = raw[:0]
	meta, flags, off, err := parseHeader(raw)
	if err != nil {
		return nil, &CorruptError{Path: path, Err: err}
	}
	c := &Chunk{Formatted: flags&flagFormatted != 0}
	if err := decodeMeta(meta, c); err != nil {
		return nil, &CorruptError{Path: path, Err: fmt.Errorf("metadata: %w", err)}
	}
	seed := frameSeed(raw[4], c.ID)
	var frames []span // the good frames
	// The bytes after the last good frame are a write a crash tore, or
	// what a reused spare file held before: cut off either way. (Damage in
	// the last frame itself looks the same, and is cut off with them.)
	damaged, tail := walkFrames(raw, off, seed, func(start, end int, records uint32) {
		frames = append(frames, span{start, end})
		c.Records += int(records)
		c.Size += int64(end - start)
	})
	torn := tail < len(raw)
	if c.Records == 0 {
		if len(damaged) > 0 {
			return nil, &CorruptError{Path: path, Err: errors.New("no frame passes its checks")}
		}
		os.Remove(path)
		return nil, nil
	}
	var problem error
	end := int64(tail)
	switch {
	case len(damaged) > 0:
		lost, err := s.salvage(path, raw[:off], raw, frames, damaged, c.ID)
		if err != nil {
			return nil, &CorruptError{Path: path, Err: fmt.Errorf("damaged, and salvaging failed: %w", err)}
		}
		end = int64(off) + c.Size
		problem = &CorruptError{Path: path, Err: fmt.Errorf("%d damaged bytes in %d places moved to %s; %d records in %d frames kept",
			lost, len(damaged), s.BackupDir, c.Records, len(frames))}
	case torn && s.Log != nil:
		s.Log.Warn("cut a torn write off a buffer chunk", "path", path, "kept_bytes", end, "records", c.Records)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, fmt.Errorf("buffer: %w", err)
	}
	if torn {
		if err := f.Truncate(end); err != nil {
			f.Close()
			return nil, fmt.Errorf("buffer: truncating the torn tail of %s: %w", path, err)
		}
	}
	fc := &fileChunk{path: path, end: end, size: end, seed: seed}
	if staged {
		if _, err := f.Seek(end, io.SeekStart); err != nil {
			f.Close()
			return nil, fmt.Errorf("buffer: %w", err)
		}
		fc.f = f
		s.track(f)
	} else {
		f.Close()
	}
	c.file = fc
	return c, problem
}

// salvage keeps the good frames of a damaged chunk file: the damaged
// bytes go to BackupDir first (each run in its own file, named for the
// chunk and offset), then the file is replaced, through a fsynced
// temporary file and a rename, by its header and the good frames. A crash
// at any step leaves either the old file, to salvage again, or the new
// one. It returns how many bytes were moved aside.
func (s *File) salvage(path string, header, raw []byte, frames, damaged []span, id ID) (int, error) {
	if err := os.MkdirAll(s.BackupDir, s.perm().Dir); err != nil {
		return 0, err
	}
	lost := 0
	for _, d := range damaged {
		name := filepath.Join(s.BackupDir, fmt.Sprintf("%s.damaged-%d.bin", id, d.start))
		if err := writeSynced(name, raw[d.start:d.end], s.perm().File); err != nil {
			return 0, err
		}
		lost += d.end - d.start
	}
	if err := syncDir(s.BackupDir); err != nil {
		return 0, err
	}
	kept := append([]byte(nil), header...)
	for _, f := range frames {
		kept = append(kept, raw[f.start:f.end]...)
	}
	tmp := path + ".salvage"
	if err := writeSynced(tmp, kept, s.perm().File); err != nil {
		os.Remove(tmp)
		return 0, err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return 0, err
	}
	return lost, syncDir(filepath.Dir(path))
}

// writeSynced writes data to a new file at path and fsyncs it.
func writeSynced(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDirHook is syncDir, but for tests that count the calls.
var syncDirHook = syncDir

// syncDir fsyncs a directory, so that the names created, renamed or
// removed in it survive a machine crash, not only their files' data.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ChunkFile returns the path of a chunk's file, for tests and logs.
func ChunkFile(c *Chunk) string {
	if c.file == nil {
		return ""
	}
	return c.file.path
}

// idFromHex parses a 32-digit hex chunk id.
func idFromHex(s string) (ID, bool) {
	var id ID
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(id) {
		return id, false
	}
	copy(id[:], b)
	return id, true
}

// hasPrefixFold is used to skip our own files among Fluentd's.
func isSluiceChunk(name string) bool { return strings.HasPrefix(name, "sluice.") }
