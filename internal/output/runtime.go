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
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Stats are the runtime's counters, named after Fluentd's output metrics.
type Stats struct {
	EmitCount       atomic.Int64
	EmitRecords     atomic.Int64
	WriteCount      atomic.Int64
	WriteRecords    atomic.Int64
	WriteBytes      atomic.Int64 // buffered bytes of the chunks written
	NumErrors       atomic.Int64
	RetryCount      atomic.Int64
	RollbackCount   atomic.Int64
	OverflowCount   atomic.Int64
	SecondaryWrites atomic.Int64
	// DroppedRecords counts every record lost (each drop is also logged);
	// Dropped splits it by reason. Count drops with Drop.
	DroppedRecords atomic.Int64
	Dropped        [numDropReasons]atomic.Int64
	// BackupRecords counts records moved to the backup directory: not
	// delivered, but kept for an operator to replay.
	BackupRecords atomic.Int64
	// CorruptChunks counts chunk files found damaged and moved aside.
	CorruptChunks atomic.Int64
	// ShutdownLeftover is what the last stop could not deliver: kept on
	// disk by a file buffer, lost by a memory buffer.
	ShutdownLeftover atomic.Int64
	// SlowFlushes counts writes over SlowFlushThreshold.
	SlowFlushes atomic.Int64
	// WriteSeconds is the distribution of write durations; its sum is
	// Fluentd's flush_time_count.
	WriteSeconds Histogram
}

// DropReason says why records were lost.
type DropReason int

const (
	// DropOverflow: overflow_action drop_oldest_chunk discarded a chunk.
	DropOverflow DropReason = iota
	// DropOversized: one record was larger than chunk_limit_size.
	DropOversized
	// DropFormat: the output's formatter refused the record.
	DropFormat
	// DropUndeliverable: a chunk failed for good and could not go to the
	// backup directory (disable_chunk_backup, or the backup failed).
	DropUndeliverable
	// DropShutdown: a memory buffer still held the records when the
	// shutdown deadline passed.
	DropShutdown
	numDropReasons
)

// DropReasons are the reasons' names, the values of the metrics' reason label.
var DropReasons = [numDropReasons]string{"overflow", "oversized_record", "format_error", "undeliverable", "shutdown"}

// Drop counts n records lost for reason.
func (s *Stats) Drop(reason DropReason, n int64) {
	s.Dropped[reason].Add(n)
	s.DroppedRecords.Add(n)
}

// WriteBuckets are the upper bounds, in seconds, of WriteSeconds' buckets:
// from a local file write to a slow cloud upload.
var WriteBuckets = [...]float64{0.001, 0.005, 0.025, 0.1, 0.5, 1, 2.5, 10, 30, 60}

// Histogram counts durations into WriteBuckets without locks.
type Histogram struct {
	counts [len(WriteBuckets) + 1]atomic.Int64 // the last is +Inf
	sumNs  atomic.Int64
}

// Observe adds one duration.
func (h *Histogram) Observe(d time.Duration) {
	i := 0
	for i < len(WriteBuckets) && d.Seconds() > WriteBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(int64(d))
}

// SumMillis is the total of the durations in milliseconds.
func (h *Histogram) SumMillis() int64 { return h.sumNs.Load() / 1e6 }

// Snapshot returns the cumulative count per bucket bound, the total count
// and the sum in seconds, as Prometheus expects them.
func (h *Histogram) Snapshot() (buckets map[float64]uint64, count uint64, sum float64) {
	buckets = make(map[float64]uint64, len(WriteBuckets))
	for i, le := range WriteBuckets {
		count += uint64(h.counts[i].Load())
		buckets[le] = count
	}
	count += uint64(h.counts[len(WriteBuckets)].Load())
	return buckets, count, float64(h.sumNs.Load()) / 1e9
}

// SlowFlushThreshold is Fluentd's default slow_flush_log_threshold: a
// write that takes longer is logged and counted.
const SlowFlushThreshold = 20 * time.Second

// Options are what the runtime needs beyond <buffer>.
type Options struct {
	// RootDir is <system> root_dir: the default home of file buffers and
	// backups.
	RootDir string
	// Secondary receives chunks the output cannot deliver.
	Secondary plugin.BufferedOutput
	// Logger logs with the output's plugin_id.
	Logger *slog.Logger
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
	// loadBufs holds memory to read chunks into, for outputs that are done
	// with a chunk's bytes when Write returns (plugin.DataBorrower): at
	// most one per flush thread, of at most maxKeptLoadBuf each.
	loadMu   sync.Mutex
	loadBufs [][]byte // guarded by loadMu

	mu       sync.Mutex
	staged   map[buffer.Key]*buffer.Chunk // guarded by mu
	queue    []*buffer.Chunk              // guarded by mu; oldest first
	inFlight int                          // guarded by mu
	size     int64                        // guarded by mu; bytes staged, queued and in flight
	retry    retryState                   // guarded by mu
	stopping bool                         // guarded by mu
	spaceCh  chan struct{}                // guarded by mu; closed when space frees

	wake     chan struct{} // capacity 1: there may be work for the workers
	stopCh   chan struct{} // closed by Stop
	stopOnce sync.Once
	left     int // set by the first Stop
	writeCtx context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup

	Stats Stats
}

type retryState struct {
	steps int       // consecutive failures
	start time.Time // first failure of the current run
	next  time.Time // no write before this
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
		id: id, out: out, secondary: opts.Secondary, cfg: cfg, keys: keys, loc: loc, log: log, now: time.Now,
		staged:  map[buffer.Key]*buffer.Chunk{},
		spaceCh: make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stopCh:  make(chan struct{}),
	}
	r.fmtr, _ = out.(plugin.EntryFormatter)
	backupRoot := opts.RootDir
	if backupRoot == "" {
		backupRoot = DefaultBackupRoot
	}
	r.backupDir = filepath.Join(backupRoot, "backup", safeName(id))
	switch cfg.Type {
	case "file":
		dir := cfg.Path
		if dir == "" {
			if opts.RootDir == "" {
				return nil, fmt.Errorf("<buffer> @type file needs path (or <system> root_dir)")
			}
			dir = filepath.Join(opts.RootDir, safeName(id), "buffer")
		}
		if opts.RootDir == "" {
			r.backupDir = filepath.Join(dir, "backup")
		}
		r.store = &buffer.File{Dir: dir, BackupDir: r.backupDir, Policy: cfg.Fsync, Interval: cfg.FsyncInterval,
			Gzip: cfg.Compress == "gzip", Formatted: r.fmtr != nil, Keys: keys, Log: log,
			MemoryLimit: int64(cfg.MemoryCacheSize), ChunkLimit: int64(cfg.ChunkLimitSize)}
	default:
		r.store = &buffer.Memory{Gzip: cfg.Compress == "gzip", ChunkLimit: int64(cfg.ChunkLimitSize)}
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

// Keys returns the parsed chunk keys, for plugins that check templates.
func (r *Runtime) Keys() buffer.ChunkKeys { return r.keys }

// Timekey returns the configured timekey (0 when unset).
func (r *Runtime) Timekey() time.Duration { return r.cfg.Timekey }

// Location returns the zone of timekeys and time placeholders.
func (r *Runtime) Location() *time.Location { return r.loc }

// Dir is the file buffer's directory, "" for a memory buffer. Two runtimes
// must never have the same one open.
func (r *Runtime) Dir() string {
	if fs, ok := r.store.(*buffer.File); ok {
		return fs.Dir
	}
	return ""
}

// BackupDir is where undeliverable chunks go.
func (r *Runtime) BackupDir() string { return r.backupDir }

// Start opens the store, recovers what a previous run left, and launches
// the flush workers. Damaged chunks are moved aside and logged; they never
// fail the start.
func (r *Runtime) Start() error {
	if fs, ok := r.store.(*buffer.File); ok {
		if err := fs.Open(); err != nil {
			return err
		}
	}
	staged, queued, problems := r.store.Recover()
	for _, err := range problems {
		r.Stats.CorruptChunks.Add(1)
		r.log.Error("buffer chunk moved aside", "output", r.id, "backup_dir", r.backupDir, "err", err)
	}
	r.mu.Lock()
	sort.Slice(staged, func(i, j int) bool { return staged[i].Created.Before(staged[j].Created) })
	for _, c := range staged {
		if old := r.staged[c.Key]; old != nil {
			r.enqueueLocked(old)
		}
		r.staged[c.Key] = c
		r.size += c.Size
	}
	sort.Slice(queued, func(i, j int) bool { return queued[i].Created.Before(queued[j].Created) })
	for _, c := range queued {
		r.queue = append(r.queue, c)
		r.size += c.Size
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

// Emit appends the stream's entries to chunks and returns once they are as
// durable as the store promises. It returns plugin.ErrOverflow when the
// buffer is full and overflow_action is throw_exception; nothing of the
// stream is kept then.
func (r *Runtime) Emit(ctx context.Context, s event.Stream) error {
	if s.Len == 0 {
		return nil
	}
	if err := r.emit(ctx, s); err != nil {
		return err
	}
	return r.store.Durable(ctx)
}

func (r *Runtime) emit(ctx context.Context, s event.Stream) error {
	need := int64(len(s.Data))
	simple := r.fmtr == nil && !r.keys.Time && len(r.keys.Names) == 0 &&
		need <= int64(r.cfg.ChunkLimitSize) && (r.cfg.ChunkLimitRecords <= 0 || s.Len <= r.cfg.ChunkLimitRecords)
	var p *prepared
	if !simple {
		// Formatting and keying take most of an emit's time; done here,
		// before the lock, they run on every emitting goroutine at once.
		p = preparedPool.Get().(*prepared)
		defer p.release()
		if err := r.prepare(s, p); err != nil {
			return err
		}
		need = int64(len(p.data))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		// Stop has taken the staged chunks: a late stream would be left behind.
		if r.stopping {
			return fmt.Errorf("output %s is shutting down", r.id)
		}
		if r.size+need <= int64(r.cfg.TotalLimitSize) {
			break
		}
		switch r.cfg.OverflowAction {
		case "block":
			ch := r.spaceCh
			r.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				r.mu.Lock()
				return ctx.Err()
			}
			r.mu.Lock()
			continue
		case "drop_oldest_chunk":
			if len(r.queue) > 0 {
				old := r.queue[0]
				r.queue = r.queue[1:]
				r.discardLocked(old, "drop_oldest_chunk")
				continue
			}
		}
		r.Stats.OverflowCount.Add(1)
		return plugin.ErrOverflow
	}
	r.Stats.EmitCount.Add(1)
	r.Stats.EmitRecords.Add(int64(s.Len))
	if simple {
		if err := r.appendLocked(r.keyFor(s.Tag, nil, nil), s.Data, s.Len); err != nil {
			return err
		}
	} else {
		start := 0
		for _, run := range p.runs {
			if err := r.appendLocked(run.key, p.data[start:run.end], run.n); err != nil {
				return err
			}
			start = run.end
		}
	}
	if r.cfg.FlushMode == "immediate" {
		for _, c := range r.staged {
			r.enqueueLocked(c)
		}
	}
	return nil
}

// prepared is a stream made ready for the buffer: its entries formatted
// (or as they came), in runs of consecutive entries that share a key and
// fit one chunk, each run one append.
type prepared struct {
	data []byte
	runs []entryRun
	tk   timekeyCache // valid for one stream: pooled values move between runtimes
}

type entryRun struct {
	key buffer.Key
	end int // the run is data[previous run's end:end]
	n   int // entries
}

var preparedPool = sync.Pool{New: func() any { return new(prepared) }}

// maxPooledPrepared bounds the buffers kept for reuse: one huge stream
// must not pin its memory in the pool.
const maxPooledPrepared = 4 << 20

func (p *prepared) release() {
	if cap(p.data) > maxPooledPrepared {
		return
	}
	p.data, p.runs = p.data[:0], p.runs[:0]
	preparedPool.Put(p)
}

// prepare formats and keys s's entries into p. It touches nothing the
// lock guards; drops (a record the formatter refuses, or one larger than
// chunk_limit_size) are counted and logged here.
func (r *Runtime) prepare(s event.Stream, p *prepared) error {
	p.data, p.runs, p.tk = p.data[:0], p.runs[:0], timekeyCache{}
	runStart, runN := 0, 0
	var runKey buffer.Key
	rd := s.Reader()
	for rd.Next() {
		e := rd.Entry()
		before := len(p.data)
		if r.fmtr != nil {
			var err error
			p.data, err = r.fmtr.FormatEntry(p.data, s.Tag, e.Time, e.Record)
			if err != nil {
				p.data = p.data[:before]
				r.Stats.Drop(DropFormat, 1)
				r.log.Warn("dropping a record the formatter refused", "output", r.id, "tag", s.Tag, "err", err)
				continue
			}
		} else {
			p.data = append(p.data, e.Raw...)
		}
		size := len(p.data) - before
		if int64(size) > int64(r.cfg.ChunkLimitSize) {
			p.data = p.data[:before]
			r.Stats.Drop(DropOversized, 1)
			r.log.Warn("dropping a record larger than chunk_limit_size", "output", r.id, "tag", s.Tag,
				"bytes", size, "chunk_limit_size", int64(r.cfg.ChunkLimitSize))
			continue
		}
		k, same := runKey, runN > 0 && r.inRunKey(e, &p.tk)
		if !same {
			k = r.keyFor(s.Tag, e, &p.tk)
			same = runN > 0 && k == runKey
		}
		if runN > 0 && (!same || int64(len(p.data)-runStart) > int64(r.cfg.ChunkLimitSize) ||
			(r.cfg.ChunkLimitRecords > 0 && runN >= r.cfg.ChunkLimitRecords)) {
			p.runs = append(p.runs, entryRun{key: runKey, end: before, n: runN})
			runStart, runN = before, 0
		}
		runKey = k
		runN++
	}
	if runN > 0 {
		p.runs = append(p.runs, entryRun{key: runKey, end: len(p.data), n: runN})
	}
	return rd.Err()
}

// keyFor is the chunk key of an entry of tag (nil: of the whole stream,
// when only the tag matters). tk caches the last timekey window.
func (r *Runtime) keyFor(tag string, e *event.Entry, tk *timekeyCache) buffer.Key {
	var k buffer.Key
	if r.keys.Tag {
		k.Tag = tag
	}
	if e == nil {
		return k
	}
	var window int64
	if r.keys.Time {
		window = tk.timekey(e.Time, r.cfg.Timekey, r.loc)
	}
	var values []string
	if len(r.keys.Paths) > 0 {
		values = make([]string, len(r.keys.Paths))
		for i, p := range r.keys.Paths {
			if v, ok := e.Record.Lookup(p); ok {
				values[i] = v.String()
			}
		}
	}
	return buffer.NewKey(k.Tag, window, values)
}

// inRunKey reports whether an entry of the stream has the key of the run
// before it without computing it: when the chunk keys are at most tag and
// time, and its time is in the window of the run's key, which is the one
// tk holds.
func (r *Runtime) inRunKey(e *event.Entry, tk *timekeyCache) bool {
	if len(r.keys.Paths) > 0 {
		return false
	}
	if !r.keys.Time {
		return true
	}
	sec := e.Time.Unix()
	return sec >= tk.start && sec < tk.end
}

// timekeyCache remembers the last timekey window, [start, end):
// consecutive events mostly share one. The zero value is empty.
type timekeyCache struct{ start, end int64 }

// timekey aligns t to the start of its window in loc, as Fluentd does.
func (c *timekeyCache) timekey(t event.Time, timekey time.Duration, loc *time.Location) int64 {
	sec := t.Unix()
	if sec >= c.start && sec < c.end {
		return c.start
	}
	size := int64(timekey / time.Second)
	var off int64
	if loc != time.UTC {
		_, o := time.Unix(sec, 0).In(loc).Zone()
		off = int64(o)
	}
	c.start = sec - floorMod(sec+off, size)
	c.end = c.start + size
	return c.start
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func (r *Runtime) appendLocked(k buffer.Key, data []byte, n int) error {
	c := r.staged[k]
	if c != nil && (c.Size+int64(len(data)) > int64(r.cfg.ChunkLimitSize) ||
		(r.cfg.ChunkLimitRecords > 0 && c.Records+n > r.cfg.ChunkLimitRecords)) {
		r.enqueueLocked(c)
		c = nil
	}
	if c == nil {
		c = &buffer.Chunk{ID: buffer.NewID(), Key: k, Created: r.now(), Formatted: r.fmtr != nil}
		if err := r.store.Create(c); err != nil {
			return err
		}
		r.staged[k] = c
	}
	before := c.Size
	if err := r.store.Append(c, data, n); err != nil {
		return err
	}
	r.size += c.Size - before
	full := float64(c.Size) >= float64(r.cfg.ChunkLimitSize)*r.cfg.ChunkFullThreshold ||
		(r.cfg.ChunkLimitRecords > 0 && float64(c.Records) >= float64(r.cfg.ChunkLimitRecords)*r.cfg.ChunkFullThreshold)
	if full {
		r.enqueueLocked(c)
	}
	return nil
}

// enqueueLocked moves a staged chunk to the queue. The store's part (for a
// file buffer: fsync, close and rename, tens of milliseconds for a full
// chunk) is left to the worker that takes the chunk, outside the lock:
// done here it would stop every emit meanwhile. Until then the chunk stays
// as durable as any staged one, and after a crash it is recovered as one.
func (r *Runtime) enqueueLocked(c *buffer.Chunk) {
	delete(r.staged, c.Key)
	r.queue = append(r.queue, c)
	r.signal()
}

// scheduler moves staged chunks to the queue when their time comes.
func (r *Runtime) scheduler() {
	defer r.wg.Done()
	t := time.NewTicker(r.cfg.FlushThreadInterval)
	defer t.Stop()
	for {
		select {
		case <-r.stopCh:
			return
		case <-t.C:
		}
		now := r.now()
		r.mu.Lock()
		for _, c := range r.staged {
			if r.cfg.QueuedChunksLimitSize > 0 && len(r.queue) >= r.cfg.QueuedChunksLimitSize {
				break
			}
			if r.readyLocked(c, now) {
				r.enqueueLocked(c)
			}
		}
		r.mu.Unlock()
	}
}

func (r *Runtime) readyLocked(c *buffer.Chunk, now time.Time) bool {
	mode := r.cfg.FlushMode
	if mode == "default" {
		mode = "interval"
		if r.keys.Time {
			mode = "lazy"
		}
	}
	switch mode {
	case "immediate":
		return true
	case "interval":
		return now.Sub(c.Created) >= r.cfg.FlushInterval
	case "lazy":
		if !r.keys.Time {
			return false // lazy without a timekey flushes only full chunks
		}
		end := time.Unix(c.Key.Timekey, 0).Add(r.cfg.Timekey + r.cfg.TimekeyWait)
		return !now.Before(end)
	}
	return false
}

func (r *Runtime) worker() {
	defer r.wg.Done()
	for {
		c, toSecondary := r.next()
		if c == nil {
			return
		}
		r.flush(c, toSecondary)
	}
}

// flush loads a chunk and writes it to the output (or the secondary).
func (r *Runtime) flush(c *buffer.Chunk, toSecondary bool) {
	if err := r.store.Enqueue(c); err != nil { // a no-op when done before
		// The chunk is still readable where it is; flush it anyway.
		r.log.Error("buffer enqueue failed", "output", r.id, "chunk", c.ID.String(), "err", err)
	}
	var reuse *[]byte
	if r.borrows(toSecondary) {
		reuse = r.takeLoadBuf()
		defer r.giveLoadBuf(reuse)
	}
	data, err := r.load(c, reuse)
	if err != nil {
		r.mu.Lock()
		r.inFlight--
		r.Stats.CorruptChunks.Add(1)
		r.log.Error("cannot read a buffered chunk; moving it aside", "output", r.id, "chunk", c.ID.String(), "err", err)
		r.backupLocked(c, "corrupt")
		r.mu.Unlock()
		return
	}
	wc := *c
	wc.Data = data
	wc.Formatted = r.fmtr != nil
	wc.SaveMeta = func(key, value string) error {
		if c.Meta == nil {
			c.Meta = map[string]string{}
		}
		c.Meta[key] = value
		wc.Meta = c.Meta
		return r.store.SaveMeta(c)
	}
	began := r.now()
	defer func() {
		took := r.now().Sub(began)
		r.Stats.WriteSeconds.Observe(took)
		if took > SlowFlushThreshold {
			r.Stats.SlowFlushes.Add(1)
			r.log.Warn("buffer flush took longer than slow_flush_log_threshold", "output", r.id,
				"elapsed", took.String(), "threshold", SlowFlushThreshold.String(), "chunk", c.ID.String())
		}
	}()
	if toSecondary {
		err = r.secondary.Write(r.writeCtx, &wc)
		if err == nil {
			r.Stats.SecondaryWrites.Add(1)
			r.log.Warn("chunk written to <secondary>", "output", r.id, "chunk", c.ID.String(), "records", c.Records)
		}
	} else {
		err = r.out.Write(r.writeCtx, &wc)
	}
	r.finish(c, err, toSecondary)
}

// borrows says whether the output that writes a chunk is done with its
// bytes when Write returns.
func (r *Runtime) borrows(toSecondary bool) bool {
	out := r.out
	if toSecondary {
		out = r.secondary
	}
	_, ok := out.(plugin.DataBorrower)
	return ok
}

func (r *Runtime) takeLoadBuf() *[]byte {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	var b []byte
	if n := len(r.loadBufs); n > 0 {
		b, r.loadBufs = r.loadBufs[n-1], r.loadBufs[:n-1]
	}
	return &b
}

// maxKeptLoadBuf is the largest read memory a runtime keeps between
// chunks. Larger chunks (the file buffer's default chunk_limit_size is
// 256 MB) are read into fresh memory that the GC returns, as an idle
// output should not hold a chunk's worth per flush thread.
const maxKeptLoadBuf = 16 << 20

func (r *Runtime) giveLoadBuf(b *[]byte) {
	r.loadMu.Lock()
	defer r.loadMu.Unlock()
	if len(r.loadBufs) < r.cfg.FlushThreadCount && cap(*b) > 0 && cap(*b) <= maxKeptLoadBuf {
		r.loadBufs = append(r.loadBufs, *b)
	}
}

// load returns a chunk's data as the output expects it: a chunk stored as
// entries is formatted now if the output formats (a Fluentd chunk
// imported for a formatting output, say). With reuse (the output borrows),
// a chunk the store holds in memory is handed over as it is, and one it
// must read is read into *reuse, which keeps the grown memory.
func (r *Runtime) load(c *buffer.Chunk, reuse *[]byte) ([]byte, error) {
	var data []byte
	var err error
	var held []byte
	if holder, ok := r.store.(buffer.Holder); ok && reuse != nil {
		held = holder.Held(c)
	}
	into, _ := r.store.(buffer.IntoLoader)
	switch {
	case held != nil:
		// The store's own memory, no read back: a borrower is done with it
		// before the chunk's Commit or Backup, the only calls that reuse it.
		data = held
	case reuse != nil && into != nil:
		data, err = into.LoadInto(c, *reuse)
		if err == nil {
			*reuse = data[:0]
		}
	default:
		data, err = r.store.Load(c)
	}
	if err != nil {
		return nil, err
	}
	switch {
	case c.Formatted == (r.fmtr != nil):
		return data, nil
	case c.Formatted:
		return nil, errors.New("the chunk holds formatted text, but this output takes entries")
	}
	var out []byte
	rd := event.NewReader(data)
	for rd.Next() {
		e := rd.Entry()
		if out, err = r.fmtr.FormatEntry(out, c.Key.Tag, e.Time, e.Record); err != nil {
			return nil, err
		}
	}
	return out, rd.Err()
}

// next waits for a chunk that may be written now, and says whether it goes
// to the secondary. It returns nil when the runtime is stopping and nothing
// is left, or when writes are cancelled.
func (r *Runtime) next() (*buffer.Chunk, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.writeCtx.Err() != nil {
			return nil, false
		}
		now := r.now()
		var wait time.Duration = -1
		if len(r.queue) > 0 {
			if wait = r.retry.next.Sub(now); wait <= 0 {
				c := r.queue[0]
				r.queue = r.queue[1:]
				r.inFlight++
				return c, r.secondaryDueLocked(now)
			}
		} else if r.stopping {
			// A chunk still in flight is retried by the worker holding it.
			return nil, false
		}
		r.mu.Unlock()
		if wait < 0 {
			select {
			case <-r.wake:
			case <-r.stopCh:
			case <-r.writeCtx.Done():
			}
		} else {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-r.writeCtx.Done():
			}
			t.Stop()
		}
		r.mu.Lock()
	}
}

// secondaryDueLocked reports whether retries have run long enough
// (retry_secondary_threshold of retry_timeout or of retry_max_times) to
// try the secondary.
func (r *Runtime) secondaryDueLocked(now time.Time) bool {
	if r.secondary == nil || r.retry.steps == 0 {
		return false
	}
	if r.cfg.RetryMaxTimes >= 0 && float64(r.retry.steps) >= r.cfg.RetrySecondaryThreshold*float64(r.cfg.RetryMaxTimes) {
		return true
	}
	return now.Sub(r.retry.start) >= time.Duration(r.cfg.RetrySecondaryThreshold*float64(r.cfg.RetryTimeout))
}

func (r *Runtime) finish(c *buffer.Chunk, err error, toSecondary bool) {
	if err == nil {
		// The chunk is this worker's alone until freed, so its removal (an
		// unlink that frees megabytes of page cache) need not stop emits.
		if cerr := r.store.Commit(c); cerr != nil {
			r.log.Error("written chunk not removed from the buffer; it will be sent again after a restart",
				"output", r.id, "chunk", c.ID.String(), "err", cerr)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	if err == nil {
		r.Stats.WriteCount.Add(1)
		r.Stats.WriteRecords.Add(int64(c.Records))
		r.Stats.WriteBytes.Add(c.Size)
		r.retry = retryState{}
		r.freeLocked(c)
		return
	}
	r.Stats.NumErrors.Add(1)
	if r.writeCtx.Err() != nil && errors.Is(err, context.Canceled) {
		// Shutdown deadline: keep it for the leftover count.
		r.queue = append([]*buffer.Chunk{c}, r.queue...)
		return
	}
	if plugin.IsPermanent(err) && !toSecondary {
		r.log.Error("the destination refused a chunk permanently", "output", r.id,
			"chunk", c.ID.String(), "records", c.Records, "err", err)
		if r.secondary != nil {
			r.requeueLocked(c, 0, true)
			return
		}
		r.backupLocked(c, "permanent_error")
		return
	}
	now := r.now()
	if r.retry.steps == 0 {
		r.retry.start = now
	}
	r.retry.steps++
	c.Retries++
	if r.giveUpLocked(now) {
		r.log.Error("giving up on a chunk after the retry limit", "output", r.id, "chunk", c.ID.String(),
			"records", c.Records, "retries", r.retry.steps, "err", err)
		r.backupLocked(c, "retry_limit")
		r.retry = retryState{}
		return
	}
	wait := r.backoffLocked()
	var ra *plugin.RetryAfter
	if errors.As(err, &ra) && ra.Delay > wait {
		wait = ra.Delay
	}
	r.Stats.RetryCount.Add(1)
	r.Stats.RollbackCount.Add(1)
	where := "output"
	if toSecondary {
		where = "secondary"
	}
	r.log.Warn("failed to flush the buffer", "output", r.id, "to", where, "chunk", c.ID.String(),
		"retry_times", r.retry.steps, "next_retry_in", wait.Round(time.Millisecond).String(), "err", err)
	r.requeueLocked(c, wait, false)
}

// requeueLocked puts a chunk back at the head of the queue, due after wait.
// A permanent refusal with a secondary (now) skips the wait.
func (r *Runtime) requeueLocked(c *buffer.Chunk, wait time.Duration, now bool) {
	if now {
		r.retry.steps = max(r.retry.steps, 1)
		r.retry.start = r.now().Add(-r.cfg.RetryTimeout) // makes the secondary due
		r.retry.next = r.now()
	} else {
		r.retry.next = r.now().Add(wait)
	}
	r.queue = append([]*buffer.Chunk{c}, r.queue...)
	r.signal()
}

func (r *Runtime) freeLocked(c *buffer.Chunk) {
	r.size -= c.Size
	close(r.spaceCh)
	r.spaceCh = make(chan struct{})
}

// backupLocked moves a chunk that cannot be delivered to the backup
// directory (Fluentd's behaviour), or drops it with disable_chunk_backup.
func (r *Runtime) backupLocked(c *buffer.Chunk, reason string) {
	r.freeLocked(c)
	if r.cfg.DisableChunkBackup {
		r.dropLocked(c, DropUndeliverable, reason+" (disable_chunk_backup)")
		return
	}
	if err := r.store.Backup(c, r.backupDir, reason); err != nil {
		r.log.Error("backing up an undeliverable chunk failed", "output", r.id, "chunk", c.ID.String(), "err", err)
		r.dropLocked(c, DropUndeliverable, reason)
		return
	}
	r.Stats.BackupRecords.Add(int64(c.Records))
	r.log.Warn("undeliverable chunk moved to the backup directory", "output", r.id, "reason", reason,
		"records", c.Records, "chunk", c.ID.String(), "backup_dir", r.backupDir)
}

// discardLocked removes a queued chunk for good (drop_oldest_chunk).
func (r *Runtime) discardLocked(c *buffer.Chunk, reason string) {
	r.freeLocked(c)
	_ = r.store.Commit(c)
	r.dropLocked(c, DropOverflow, reason)
}

func (r *Runtime) dropLocked(c *buffer.Chunk, why DropReason, reason string) {
	r.Stats.Drop(why, int64(c.Records))
	r.log.Warn("records dropped", "output", r.id, "reason", reason, "records", c.Records, "chunk", c.ID.String())
}

func (r *Runtime) giveUpLocked(now time.Time) bool {
	if r.cfg.RetryForever {
		return false
	}
	if r.cfg.RetryMaxTimes >= 0 && r.retry.steps > r.cfg.RetryMaxTimes {
		return true
	}
	return now.Sub(r.retry.start) >= r.cfg.RetryTimeout
}

// backoffLocked is Fluentd's retry interval: retry_wait * base^(steps-1)
// (or retry_wait for periodic), capped by retry_max_interval, and spread
// by ±12.5% when retry_randomize is on.
func (r *Runtime) backoffLocked() time.Duration {
	wait := float64(r.cfg.RetryWait)
	if r.cfg.RetryType == "exponential_backoff" {
		wait *= math.Pow(r.cfg.RetryExponentialBackoffBase, float64(r.retry.steps-1))
	}
	if r.cfg.RetryMaxInterval > 0 && wait > float64(r.cfg.RetryMaxInterval) {
		wait = float64(r.cfg.RetryMaxInterval)
	}
	if r.cfg.RetryRandomize {
		wait *= 0.875 + rand.Float64()*0.25
	}
	if wait > float64(365*24*time.Hour) {
		wait = float64(365 * 24 * time.Hour)
	}
	return time.Duration(wait)
}

// Flush queues every staged chunk now (SIGUSR1, tests).
func (r *Runtime) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.staged {
		r.enqueueLocked(c)
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
	select {
	case <-done:
	case <-ctx.Done():
		r.cancel()
		<-done
	}
	r.cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	left, chunks := 0, 0
	for _, c := range r.queue {
		left += c.Records
		chunks++
	}
	for _, c := range r.staged {
		left += c.Records
		chunks++
	}
	r.Stats.ShutdownLeftover.Store(int64(left))
	if err := r.store.Close(); err != nil {
		r.log.Error("closing the buffer", "output", r.id, "err", err)
	}
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

// Status is the buffer's state, as fluent-plugin-prometheus reports it.
type Status struct {
	StageLength, QueueLength int   // chunks
	StageBytes, QueueBytes   int64 // queued includes chunks being written
	TotalBytes               int64
	// AvailableSpaceRatio is the percentage of total_limit_size free.
	AvailableSpaceRatio float64
	// RetryWait is the seconds until the next retry, 0 when not retrying.
	RetryWait float64
}

// Status returns the buffer's state now.
func (r *Runtime) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{StageLength: len(r.staged), QueueLength: len(r.queue), TotalBytes: r.size}
	for _, c := range r.staged {
		st.StageBytes += c.Size
	}
	st.QueueBytes = r.size - st.StageBytes
	if limit := float64(r.cfg.TotalLimitSize); limit > 0 {
		st.AvailableSpaceRatio = 100 * (1 - float64(r.size)/limit)
	}
	if r.retry.steps > 0 {
		if w := r.retry.next.Sub(r.now()).Seconds(); w > 0 {
			st.RetryWait = w
		}
	}
	return st
}

// Pending returns the chunks and bytes staged, queued or in flight.
func (r *Runtime) Pending() (chunks int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.staged) + len(r.queue) + r.inFlight, r.size
}
