package buffer

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Store keeps the contents of chunks. The output runtime decides which
// chunks exist and in what state; the store only keeps bytes. Calls that
// change a chunk happen under the runtime's lock, one at a time per chunk;
// Durable and Load are called without it.
type Store interface {
	// Open readies the store (a file buffer takes its directory's lock)
	// before Recover.
	Open() error
	// Dir is the directory the store keeps chunks in, "" for memory. Two
	// stores must never have the same one open.
	Dir() string
	// Create prepares storage for a new staged chunk.
	Create(c *Chunk) error
	// Append adds n records held in data to a staged chunk.
	Append(c *Chunk, data []byte, n int) error
	// Durable returns once every Append made before the call is as safe as
	// the store promises (see the file store's fsync policy).
	Durable(ctx context.Context) error
	// Enqueue closes a chunk for appends.
	Enqueue(c *Chunk) error
	// Load returns the chunk's contents, decompressed, for a write.
	Load(c *Chunk) ([]byte, error)
	// Commit forgets a chunk that was written.
	Commit(c *Chunk) error
	// SaveMeta stores c.Meta so that Recover returns it with the chunk.
	SaveMeta(c *Chunk) error
	// Backup moves a chunk that cannot be delivered into dir, so that an
	// operator can replay it; the file name carries reason.
	Backup(c *Chunk, dir, reason string) error
	// Recover returns the chunks a previous run left, and one error for
	// each chunk it could not read (those were moved aside). It never
	// fails the start because of what it found.
	Recover() (staged, queued []*Chunk, problems []error)
	// Persistent reports whether chunks survive a restart.
	Persistent() bool
	// WriteError is why the store cannot take appends now (the last one
	// failed: a full disk), nil when it can.
	WriteError() error
	// Close releases open files; chunks stay where they are.
	Close() error
}

// IntoLoader is a Store that reads a chunk into memory the caller gives
// (and may reuse), growing it when it is too small.
type IntoLoader interface {
	LoadInto(c *Chunk, dst []byte) ([]byte, error)
}

// Settings choose and configure a store: <buffer>'s parameters as the
// store needs them.
type Settings struct {
	// Type is <buffer> @type: "memory" or "file".
	Type string
	// Perm is the mode of the files and directories a buffer creates
	// (chunks, metadata, backups); the zero value is DefaultPerm.
	Perm Perm
	// Dir and BackupDir are a file buffer's chunk and backup directories.
	Dir, BackupDir string
	// Fsync and FsyncInterval are a file buffer's fsync policy.
	Fsync         string
	FsyncInterval time.Duration
	// Gzip compresses each append (compress gzip).
	Gzip bool
	// Formatted is whether the output stores formatted bytes.
	Formatted bool
	// Keys are the chunk keys.
	Keys ChunkKeys
	// MemoryCache is how much of the chunks a file buffer also keeps in
	// memory (memory_cache_size); ChunkLimit is chunk_limit_size.
	MemoryCache, ChunkLimit int64
	Log                     *slog.Logger
}

// New returns the store s describes, not yet open.
func New(s Settings) (Store, error) {
	perm := s.Perm.OrDefault()
	switch s.Type {
	case "memory", "":
		return &Memory{Gzip: s.Gzip, ChunkLimit: s.ChunkLimit, Perm: perm}, nil
	case "file":
		if s.Dir == "" {
			return nil, fmt.Errorf("a file buffer needs a directory")
		}
		return &File{Path: s.Dir, BackupDir: s.BackupDir, Policy: s.Fsync, Interval: s.FsyncInterval, Gzip: s.Gzip,
			Formatted: s.Formatted, Keys: s.Keys, Log: s.Log, MemoryLimit: s.MemoryCache, ChunkLimit: s.ChunkLimit, Perm: perm}, nil
	}
	return nil, fmt.Errorf("unknown buffer type %q (memory or file)", s.Type)
}

// Perm is the mode of the files and directories Sluice creates, as
// Fluentd's file_permission and dir_permission (the umask still applies).
type Perm struct{ File, Dir os.FileMode }

// DefaultPerm is Fluentd's default: 0644 files, 0755 directories.
var DefaultPerm = Perm{File: 0o644, Dir: 0o755}

// OrDefault fills a zero mode with DefaultPerm's.
func (p Perm) OrDefault() Perm {
	if p.File == 0 {
		p.File = DefaultPerm.File
	}
	if p.Dir == 0 {
		p.Dir = DefaultPerm.Dir
	}
	return p
}

// ParsePerm reads an octal mode such as 0640 (Fluentd's file_permission).
func ParsePerm(s string) (os.FileMode, error) {
	v, err := strconv.ParseUint(strings.TrimPrefix(s, "0o"), 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("invalid permission %q: want an octal mode such as 0644", s)
	}
	return os.FileMode(v), nil
}

// Memory keeps chunks in memory: fast, and lost with the process.
type Memory struct {
	// Gzip compresses each append (<buffer> compress gzip).
	Gzip bool
	// ChunkLimit caps how far a chunk's memory grows ahead of its data.
	ChunkLimit int64
	// Perm is the mode of backup files (the zero value: DefaultPerm).
	Perm Perm
}

var _ Store = (*Memory)(nil)

// Open implements Store.
func (m *Memory) Open() error { return nil }

// Dir implements Store: memory has none.
func (m *Memory) Dir() string { return "" }

// Create implements Store.
func (m *Memory) Create(*Chunk) error { return nil }

// Append implements Store.
func (m *Memory) Append(c *Chunk, data []byte, n int) error {
	before := len(c.Data)
	if m.Gzip {
		var err error
		if c.Data, err = appendGzip(c.Data, data); err != nil {
			return err
		}
	} else {
		c.Data = m.grow(c.Data, len(data))
		c.Data = append(c.Data, data...)
	}
	c.Size += int64(len(c.Data) - before)
	c.Records += n
	return nil
}

// grow makes room for n more bytes by doubling, up to ChunkLimit, so that
// filling a chunk copies it about twice in all (append alone grows large
// slices by a quarter at a time and copies them many times).
func (m *Memory) grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b
	}
	size := max(2*cap(b), len(b)+n, 64<<10)
	if m.ChunkLimit > 0 && int64(size) > m.ChunkLimit {
		size = max(int(m.ChunkLimit), len(b)+n)
	}
	grown := make([]byte, len(b), size)
	copy(grown, b)
	return grown
}

// Durable implements Store: memory is as durable as it gets.
func (m *Memory) Durable(context.Context) error { return nil }

// Enqueue implements Store.
func (m *Memory) Enqueue(*Chunk) error { return nil }

// Load implements Store.
func (m *Memory) Load(c *Chunk) ([]byte, error) {
	if m.Gzip {
		return gunzipAll(c.Data)
	}
	return c.Data, nil
}

// SaveMeta implements Store: nothing to keep, memory chunks do not outlive
// the process.
func (m *Memory) SaveMeta(*Chunk) error { return nil }

// Commit implements Store.
func (m *Memory) Commit(c *Chunk) error {
	c.Data = nil
	return nil
}

// Backup implements Store: the chunk's bytes are written to a file.
func (m *Memory) Backup(c *Chunk, dir, reason string) error {
	data, err := m.Load(c)
	if err != nil {
		data = c.Data
	}
	perm := m.Perm.OrDefault()
	if err := os.MkdirAll(dir, perm.Dir); err != nil {
		return err
	}
	name := filepath.Join(dir, c.ID.String()+"."+reason+".log")
	if err := os.WriteFile(name, data, perm.File); err != nil {
		return err
	}
	c.Data = nil
	return nil
}

// Recover implements Store: a memory buffer starts empty.
func (m *Memory) Recover() ([]*Chunk, []*Chunk, []error) { return nil, nil, nil }

// Persistent implements Store.
func (m *Memory) Persistent() bool { return false }

// WriteError implements Store: memory takes appends within the runtime's
// limits.
func (m *Memory) WriteError() error { return nil }

// Close implements Store.
func (m *Memory) Close() error { return nil }

// appendGzip appends data to dst as one gzip member; members concatenate.
func appendGzip(dst, data []byte) ([]byte, error) {
	buf := bytes.NewBuffer(dst)
	zw := gzip.NewWriter(buf)
	if _, err := zw.Write(data); err != nil {
		return dst, err
	}
	if err := zw.Close(); err != nil {
		return dst, err
	}
	return buf.Bytes(), nil
}

// gunzipAll decompresses concatenated gzip members.
func gunzipAll(data []byte) ([]byte, error) {
	if len(data) == 0 {
		return nil, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("buffer: gzip: %w", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("buffer: gzip: %w", err)
	}
	return out, nil
}
