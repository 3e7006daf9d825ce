// Package output is the buffered-output runtime: it groups entries into
// chunks by key, decides when a chunk is ready, flushes chunks from a pool of
// workers, retries failures with backoff and drains at shutdown. Plugins only
// implement plugin.BufferedOutput.Write; retry logic lives here, once.
//
//	Emit ──▶ staged[key] ──(full | flush_interval | timekey+wait)──▶ queue ──▶ workers ──▶ Write
//	                                                                   ▲            │ error
//	                                                                   └─ backoff ──┘
//
// Memory is bounded: staged, queued and in-flight bytes together never exceed
// total_limit_size; past it overflow_action decides (throw_exception returns
// plugin.ErrOverflow so the input does not acknowledge; block waits; and
// drop_oldest_chunk drops the oldest queued chunk and counts it).
package output

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Stats are the runtime's counters, named after Fluentd's output metrics.
type Stats struct {
	EmitCount      atomic.Int64
	EmitRecords    atomic.Int64
	WriteCount     atomic.Int64
	WriteRecords   atomic.Int64
	NumErrors      atomic.Int64
	RetryCount     atomic.Int64
	RollbackCount  atomic.Int64
	OverflowCount  atomic.Int64
	DroppedRecords atomic.Int64 // every drop, whatever the reason (also logged)
}

// Runtime buffers and flushes for one output.
type Runtime struct {
	id   string
	out  plugin.BufferedOutput
	fmtr plugin.EntryFormatter
	cfg  BufferConfig
	keys buffer.ChunkKeys
	loc  *time.Location
	log  *slog.Logger
	now  func() time.Time

	mu       sync.Mutex
	staged   map[buffer.Key]*buffer.Chunk // guarded by mu
	queue    []*buffer.Chunk              // guarded by mu; oldest first
	inFlight int                          // guarded by mu
	size     int64                        // guarded by mu; bytes staged, queued and in flight
	retry    retryState                   // guarded by mu
	stopping bool                         // guarded by mu
	spaceCh  chan struct{}                // guarded by mu; closed when space frees
	scratch  []byte                       // guarded by mu; formatting buffer

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
// plugin.EntryFormatter, chunks hold its formatted bytes.
func New(id string, out plugin.BufferedOutput, cfg BufferConfig, log *slog.Logger) (*Runtime, error) {
	keys, err := buffer.ParseChunkKeys(cfg.ChunkKeys)
	if err != nil {
		return nil, err
	}
	if err := cfg.validate(keys); err != nil {
		return nil, err
	}
	loc, err := cfg.location()
	if err != nil {
		return nil, err
	}
	r := &Runtime{
		id: id, out: out, cfg: cfg, keys: keys, loc: loc, log: log, now: time.Now,
		staged:  map[buffer.Key]*buffer.Chunk{},
		spaceCh: make(chan struct{}),
		wake:    make(chan struct{}, 1),
		stopCh:  make(chan struct{}),
	}
	r.fmtr, _ = out.(plugin.EntryFormatter)
	return r, nil
}

// Keys returns the parsed chunk keys, for plugins that check templates.
func (r *Runtime) Keys() buffer.ChunkKeys { return r.keys }

// Timekey returns the configured timekey (0 when unset).
func (r *Runtime) Timekey() time.Duration { return r.cfg.Timekey }

// Location returns the zone of timekeys and time placeholders.
func (r *Runtime) Location() *time.Location { return r.loc }

// Start launches the flush workers. They run until Stop.
func (r *Runtime) Start() {
	r.writeCtx, r.cancel = context.WithCancel(context.Background())
	r.wg.Add(1)
	go r.scheduler()
	for i := 0; i < r.cfg.FlushThreadCount; i++ {
		r.wg.Add(1)
		go r.worker()
	}
}

func (r *Runtime) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Emit appends the stream's entries to chunks. It returns plugin.ErrOverflow
// when the buffer is full and overflow_action is throw_exception; nothing of
// the stream is kept in that case.
func (r *Runtime) Emit(ctx context.Context, s event.Stream) error {
	if s.Len == 0 {
		return nil
	}
	need := int64(len(s.Data))
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
				r.size -= int64(len(old.Data))
				r.drop(old, "drop_oldest_chunk")
				continue
			}
		}
		r.Stats.OverflowCount.Add(1)
		return plugin.ErrOverflow
	}
	r.Stats.EmitCount.Add(1)
	r.Stats.EmitRecords.Add(int64(s.Len))
	simple := r.fmtr == nil && !r.keys.Time && len(r.keys.Names) == 0 &&
		need <= int64(r.cfg.ChunkLimitSize) && (r.cfg.ChunkLimitRecords <= 0 || s.Len <= r.cfg.ChunkLimitRecords)
	if simple {
		r.appendLocked(r.keyFor(s.Tag, nil), s.Data, s.Len)
	} else if err := r.appendEntriesLocked(s); err != nil {
		return err
	}
	if r.cfg.FlushMode == "immediate" {
		for _, c := range r.staged {
			r.enqueueLocked(c)
		}
	}
	return nil
}

func (r *Runtime) keyFor(tag string, e *event.Entry) buffer.Key {
	var k buffer.Key
	if r.keys.Tag {
		k.Tag = tag
	}
	if e == nil {
		return k
	}
	var tk int64
	if r.keys.Time {
		tk = r.timekey(e.Time)
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
	return buffer.NewKey(k.Tag, tk, values)
}

// timekey aligns t to the start of its window in the configured zone, as
// Fluentd does.
func (r *Runtime) timekey(t event.Time) int64 {
	sec := t.Unix()
	size := int64(r.cfg.Timekey / time.Second)
	var off int64
	if r.loc != time.UTC {
		_, o := time.Unix(sec, 0).In(r.loc).Zone()
		off = int64(o)
	}
	return sec - floorMod(sec+off, size)
}

func floorMod(a, b int64) int64 {
	m := a % b
	if m < 0 {
		m += b
	}
	return m
}

func (r *Runtime) appendEntriesLocked(s event.Stream) error {
	rd := event.NewReader(s.Data)
	for rd.Next() {
		e := rd.Entry()
		data := e.Raw
		if r.fmtr != nil {
			var err error
			r.scratch, err = r.fmtr.FormatEntry(r.scratch[:0], s.Tag, e.Time, e.Record)
			if err != nil {
				r.Stats.DroppedRecords.Add(1)
				r.log.Warn("dropping a record the formatter refused", "output", r.id, "tag", s.Tag, "err", err)
				continue
			}
			data = r.scratch
		}
		if int64(len(data)) > int64(r.cfg.ChunkLimitSize) {
			r.Stats.DroppedRecords.Add(1)
			r.log.Warn("dropping a record larger than chunk_limit_size", "output", r.id, "tag", s.Tag,
				"bytes", len(data), "chunk_limit_size", int64(r.cfg.ChunkLimitSize))
			continue
		}
		r.appendLocked(r.keyFor(s.Tag, e), data, 1)
	}
	return rd.Err()
}

func (r *Runtime) appendLocked(k buffer.Key, data []byte, n int) {
	c := r.staged[k]
	if c != nil && (len(c.Data)+len(data) > int(r.cfg.ChunkLimitSize) ||
		(r.cfg.ChunkLimitRecords > 0 && c.Records+n > r.cfg.ChunkLimitRecords)) {
		r.enqueueLocked(c)
		c = nil
	}
	if c == nil {
		c = &buffer.Chunk{ID: buffer.NewID(), Key: k, Created: r.now(), Formatted: r.fmtr != nil}
		r.staged[k] = c
	}
	c.Data = append(c.Data, data...)
	c.Records += n
	r.size += int64(len(data))
	full := float64(len(c.Data)) >= float64(r.cfg.ChunkLimitSize)*r.cfg.ChunkFullThreshold ||
		(r.cfg.ChunkLimitRecords > 0 && float64(c.Records) >= float64(r.cfg.ChunkLimitRecords)*r.cfg.ChunkFullThreshold)
	if full {
		r.enqueueLocked(c)
	}
}

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
		c := r.next()
		if c == nil {
			return
		}
		err := r.out.Write(r.writeCtx, c)
		r.finish(c, err)
	}
}

// next waits for a chunk that may be written now. It returns nil when the
// runtime is stopping and nothing is left, or when writes are cancelled.
func (r *Runtime) next() *buffer.Chunk {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.writeCtx.Err() != nil {
			return nil
		}
		now := r.now()
		var wait time.Duration = -1
		if len(r.queue) > 0 {
			if wait = r.retry.next.Sub(now); wait <= 0 {
				c := r.queue[0]
				r.queue = r.queue[1:]
				r.inFlight++
				return c
			}
		} else if r.stopping {
			// A chunk still in flight is retried by the worker holding it.
			return nil
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

func (r *Runtime) finish(c *buffer.Chunk, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inFlight--
	if err == nil {
		r.Stats.WriteCount.Add(1)
		r.Stats.WriteRecords.Add(int64(c.Records))
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
	if plugin.IsPermanent(err) {
		r.log.Error("dropping a chunk the destination refused permanently", "output", r.id,
			"chunk", c.ID.String(), "records", c.Records, "err", err)
		r.freeLocked(c)
		r.drop(c, "permanent_error")
		return
	}
	now := r.now()
	if r.retry.steps == 0 {
		r.retry.start = now
	}
	r.retry.steps++
	c.Retries++
	if r.giveUpLocked(now) {
		r.log.Error("dropping a chunk after the retry limit", "output", r.id, "chunk", c.ID.String(),
			"records", c.Records, "retries", r.retry.steps, "err", err)
		r.freeLocked(c)
		r.drop(c, "retry_limit")
		r.retry = retryState{}
		return
	}
	wait := r.backoffLocked()
	var ra *plugin.RetryAfter
	if errors.As(err, &ra) && ra.Delay > wait {
		wait = ra.Delay
	}
	r.retry.next = now.Add(wait)
	r.Stats.RetryCount.Add(1)
	r.Stats.RollbackCount.Add(1)
	r.log.Warn("failed to flush the buffer", "output", r.id, "chunk", c.ID.String(),
		"retry_times", r.retry.steps, "next_retry_in", wait.Round(time.Millisecond).String(), "err", err)
	r.queue = append([]*buffer.Chunk{c}, r.queue...)
	r.signal()
}

func (r *Runtime) freeLocked(c *buffer.Chunk) {
	r.size -= int64(len(c.Data))
	close(r.spaceCh)
	r.spaceCh = make(chan struct{})
}

func (r *Runtime) drop(c *buffer.Chunk, reason string) {
	r.Stats.DroppedRecords.Add(int64(c.Records))
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

// Stop stops accepting new chunks and, when flush_at_shutdown is on, queues
// every staged chunk; the workers then keep writing, with retries, until
// the queue is empty or ctx is done. It returns how many records were left
// undelivered, which are logged and counted as dropped.
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
	left := 0
	for _, c := range r.queue {
		left += c.Records
	}
	for _, c := range r.staged {
		left += c.Records
	}
	if left > 0 {
		r.Stats.DroppedRecords.Add(int64(left))
		r.log.Error("records left undelivered at shutdown (memory buffer)", "output", r.id, "records", left)
	}
	return left
}

// Pending returns the records staged, queued or in flight.
func (r *Runtime) Pending() (chunks int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.staged) + len(r.queue) + r.inFlight, r.size
}
