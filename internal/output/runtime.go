// Package output is the buffered-output runtime: it groups entries into
// chunks by key, decides when a chunk is ready, flushes chunks from a pool of
// workers, retries failures with backoff, falls back to <secondary>, and
// drains at shutdown. Plugins only implement plugin.BufferedOutput.Write;
// retry logic lives here, once. Chunk bytes live in a buffer.Store: memory,
// or crash-safe files.
//
//	Emit ──▶ staged[key] ──(full | flush_interval | timekey+wait)──▶ queue ──▶ workers ──▶ Write
//	   │                                                                ▲            │ error
//	   └─ store.Append (+ fsync per policy) before Emit returns          └─ backoff ──┘
//	                                                        permanent / retries exhausted ──▶ <secondary>
//	                                                                         or the backup directory
//
// Memory is bounded: staged, queued and in-flight bytes together never exceed
// total_limit_size; past it overflow_action decides (throw_exception returns
// plugin.ErrOverflow so the input does not acknowledge; block waits, which
// stops the input's reading; drop_oldest_chunk drops the oldest queued chunk
// and counts it). A memory buffer holds its chunks in memory; a file buffer
// holds at most flush_thread_count loaded chunks.
package output

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-log/sluice/internal/budget"
	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Options are what the runtime needs beyond <buffer>.
type Options struct {
	// RootDir is <system> root_dir: the default home of file buffers and
	// backups.
	RootDir string
	// Secondary receives chunks the output cannot deliver.
	Secondary plugin.BufferedOutput
	// DoneWithData and SecondaryDoneWithData are the outputs'
	// plugin.Info.DoneWithDataOnReturn.
	DoneWithData, SecondaryDoneWithData bool
	// Logger logs with the output's plugin_id.
	Logger *slog.Logger
	// Perm is <system> file_permission and dir_permission, which the
	// buffer's own parameters override.
	Perm buffer.Perm
	// SlowFlushThreshold is the output's slow_flush_log_threshold; zero
	// means Fluentd's default, SlowFlushThreshold.
	SlowFlushThreshold time.Duration
}

// DefaultBackupRoot holds backups when there is no root_dir, as Fluentd's
// /tmp/fluent does.
const DefaultBackupRoot = "/tmp/sluice"

// Runtime buffers and flushes for one output.
type Runtime struct {
	id        string
	out       plugin.BufferedOutput
	secondary plugin.BufferedOutput
	fmtr      plugin.EntryFormatter
	cfg       BufferConfig
	keys      buffer.ChunkKeys
	loc       *time.Location
	log       *slog.Logger
	now       func() time.Time
	store     buffer.Store
	backupDir string
	// outDone and secondaryDone: the output (the secondary) is done with a
	// chunk's bytes when Write returns.
	outDone, secondaryDone bool
	// loadBufs holds memory to read chunks into, for outputs that are done
	// with a chunk's bytes when Write returns: at most one per flush
	// thread, of at most maxKeptLoadBuf each.
	loadMu   sync.Mutex
	loadBufs [][]byte // guarded by loadMu

	mu       sync.Mutex
	staged   map[buffer.Key]*buffer.Chunk // guarded by mu
	queue    []*buffer.Chunk              // guarded by mu; chunks that have not failed, oldest first
	retrying []task                       // guarded by mu; failed chunks waiting for their next write
	inflight map[*buffer.Chunk]*write     // guarded by mu; chunks being written
	space    budget.Space                 // guarded by mu; bytes staged, queued and in flight, within total_limit_size
	stopping bool                         // guarded by mu
	// abandoned is set when Stop gave up on writes that ignored their
	// cancelled context; a write that returns after it changes nothing.
	abandoned atomic.Bool // set under mu
	stopped   bool        // guarded by mu; Stop has counted what it left
	policy    retryPolicy

	wake   chan struct{} // capacity 1: there may be work for the workers
	stopCh chan struct{} // closed by Stop
	// slowFlush is slow_flush_log_threshold: a longer write is logged.
	slowFlush time.Duration
	stopOnce  sync.Once
	left      int // set by the first Stop
	writeCtx  context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	Stats Stats
}

// New validates cfg and returns a runtime for out. If out implements
// plugin.EntryFormatter, chunks hold its formatted bytes. New opens
// nothing; Start does.
func New(id string, out plugin.BufferedOutput, cfg BufferConfig, opts Options) (*Runtime, error) {
	keys, err := buffer.ParseChunkKeys(cfg.ChunkKeys)
	if err != nil {
		return nil, err
	}
	if cfg.QueueLimitLength > 0 && cfg.TotalLimitSize == DefaultBufferConfig(cfg.Type).TotalLimitSize {
		// Fluentd's deprecated spelling of total_limit_size.
		cfg.TotalLimitSize = cfg.ChunkLimitSize * config.Size(cfg.QueueLimitLength)
	}
	if err := cfg.validate(keys); err != nil {
		return nil, err
	}
	loc, err := cfg.location()
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	r := &Runtime{
		id: id, out: out, secondary: opts.Secondary, outDone: opts.DoneWithData, secondaryDone: opts.SecondaryDoneWithData, cfg: cfg, keys: keys, loc: loc, log: log, now: time.Now,
		staged:    map[buffer.Key]*buffer.Chunk{},
		inflight:  map[*buffer.Chunk]*write{},
		policy:    newRetryPolicy(cfg, opts.Secondary != nil),
		space:     budget.NewSpace(int64(cfg.TotalLimitSize)),
		wake:      make(chan struct{}, 1),
		stopCh:    make(chan struct{}),
		slowFlush: opts.SlowFlushThreshold,
	}
	if r.slowFlush <= 0 {
		r.slowFlush = SlowFlushThreshold
	}
	r.fmtr, _ = out.(plugin.EntryFormatter)
	backupRoot := opts.RootDir
	if backupRoot == "" {
		backupRoot = DefaultBackupRoot
	}
	r.backupDir = filepath.Join(backupRoot, "backup", safeName(id))
	settings := buffer.Settings{Type: cfg.Type, Fsync: cfg.Fsync, FsyncInterval: cfg.FsyncInterval, Gzip: cfg.Compress == "gzip",
		Formatted: r.fmtr != nil, Keys: keys, Log: log, MemoryCache: int64(cfg.MemoryCacheSize), ChunkLimit: int64(cfg.ChunkLimitSize),
		Perm: opts.Perm}
	if cfg.FilePermission != "" {
		settings.Perm.File, _ = buffer.ParsePerm(cfg.FilePermission) // validated
	}
	if cfg.DirPermission != "" {
		settings.Perm.Dir, _ = buffer.ParsePerm(cfg.DirPermission)
	}
	if cfg.Type == "file" {
		settings.Dir = cfg.Path
		if settings.Dir == "" {
			if opts.RootDir == "" {
				return nil, fmt.Errorf("<buffer> @type file needs path (or <system> root_dir)")
			}
			settings.Dir = filepath.Join(opts.RootDir, safeName(id), "buffer")
		}
		if opts.RootDir == "" {
			r.backupDir = filepath.Join(settings.Dir, "backup")
		}
		settings.BackupDir = r.backupDir
	}
	if r.store, err = buffer.New(settings); err != nil {
		return nil, err
	}
	return r, nil
}

func safeName(id string) string {
	out := []byte(id)
	for i, c := range out {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			out[i] = '_'
		}
	}
	return string(out)
}

// MemoryBound is the most the buffer holds in memory: total_limit_size
// for a memory buffer; for a file buffer its memory cache and the chunks
// its flush threads have read in to write out.
func (r *Runtime) MemoryBound() int64 {
	if r.cfg.Type == "memory" {
		return int64(r.cfg.TotalLimitSize)
	}
	return int64(r.cfg.MemoryCacheSize) + int64(r.cfg.FlushThreadCount)*int64(r.cfg.ChunkLimitSize)
}

// Keys returns the parsed chunk keys, for plugins that check templates.
func (r *Runtime) Keys() buffer.ChunkKeys { return r.keys }

// Timekey returns the configured timekey (0 when unset).
func (r *Runtime) Timekey() time.Duration { return r.cfg.Timekey }

// Location returns the zone of timekeys and time placeholders.
func (r *Runtime) Location() *time.Location { return r.loc }

// Dir is the file buffer's directory, "" for a memory buffer. Two runtimes
// must never have the same one open.
func (r *Runtime) Dir() string { return r.store.Dir() }

// BackupDir is where undeliverable chunks go.
func (r *Runtime) BackupDir() string { return r.backupDir }

// Start opens the store, recovers what a previous run left, and launches
// the flush workers. Damaged chunks are moved aside and logged; they never
// fail the start.
func (r *Runtime) Start() error {
	if err := r.store.Open(); err != nil {
		return err
	}
	staged, queued, problems := r.store.Recover()
	for _, err := range problems {
		r.Stats.CorruptChunks.Add(1)
		r.log.Error("damaged buffer chunk: what could not be read is in the backup directory", "output", r.id,
			"backup_dir", r.backupDir, "err", err)
	}
	r.mu.Lock()
	sort.Slice(staged, func(i, j int) bool { return staged[i].Created.Before(staged[j].Created) })
	for _, c := range staged {
		if old := r.staged[c.Key]; old != nil {
			r.enqueueLocked(old)
		}
		r.staged[c.Key] = c
		r.space.Add(c.Size)
	}
	sort.Slice(queued, func(i, j int) bool { return queued[i].Created.Before(queued[j].Created) })
	for _, c := range queued {
		r.queue = append(r.queue, c)
		r.space.Add(c.Size)
	}
	r.mu.Unlock()
	if n := len(staged) + len(queued); n > 0 {
		records := 0
		for _, c := range append(staged, queued...) {
			records += c.Records
		}
		r.log.Info("resuming buffered chunks", "output", r.id, "chunks", n, "records", records)
	}
	r.writeCtx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(1)
	go r.scheduler()
	for i := 0; i < r.cfg.FlushThreadCount; i++ {
		r.wg.Add(1)
		go r.worker()
	}
	r.signal()
	return nil
}

func (r *Runtime) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Stop stops accepting new chunks and, when flush_at_shutdown is on, queues
// every staged chunk; the workers then keep writing, with retries, until
// the queue is empty or ctx is done. It returns how many records were left:
// a file buffer keeps them for the next start, a memory buffer loses them
// (logged and counted as dropped). Stop is idempotent.
func (r *Runtime) Stop(ctx context.Context) int {
	if r.cancel == nil { // never started (sluice check)
		return 0
	}
	r.stopOnce.Do(func() { r.left = r.stop(ctx) })
	return r.left
}

// StuckWriteGrace is how long Stop waits, once the shutdown deadline has
// cancelled the writes in flight, for them to return. A write that ignores
// its context is abandoned after it: its chunk counts as left over (a file
// buffer keeps it and sends it again after a restart, at least once), and
// the store stays open under it.
const StuckWriteGrace = 2 * time.Second

func (r *Runtime) stop(ctx context.Context) int {
	r.mu.Lock()
	r.stopping = true
	if r.cfg.FlushAtShutdown {
		for _, c := range r.staged {
			r.enqueueLocked(c)
		}
	}
	r.mu.Unlock()
	close(r.stopCh)
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	stuck := false
	select {
	case <-done:
	case <-ctx.Done():
		r.cancel()
		t := time.NewTimer(StuckWriteGrace)
		select {
		case <-done:
		case <-t.C:
			stuck = true
		}
		t.Stop()
	}
	r.cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stopped = true
	// With every worker returned nothing is in flight; with some stuck,
	// what they hold is left over too.
	left := r.pendingRecordsLocked()
	chunks := len(r.queue) + len(r.retrying) + len(r.staged) + len(r.inflight)
	if stuck {
		r.abandoned.Store(true)
		r.log.Error("writes still running after the shutdown deadline; abandoning them", "output", r.id,
			"writes", len(r.inflight), "grace", StuckWriteGrace.String())
	} else if err := r.store.Close(); err != nil {
		r.log.Error("closing the buffer", "output", r.id, "err", err)
	}
	r.Stats.ShutdownLeftover.Store(int64(left))
	if left > 0 {
		if r.store.Persistent() {
			r.log.Info("records kept in the file buffer for the next start", "output", r.id, "records", left, "chunks", chunks)
		} else {
			r.Stats.Drop(DropShutdown, int64(left))
			r.log.Error("records left undelivered at shutdown (memory buffer)", "output", r.id, "records", left)
		}
	}
	return left
}
