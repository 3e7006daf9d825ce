package output

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

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
	blocked := false
	for {
		// Stop has taken the staged chunks: a late stream would be left behind.
		if r.stopping {
			return fmt.Errorf("output %s is shutting down", r.id)
		}
		if r.space.Fits(need) {
			break
		}
		switch r.cfg.OverflowAction {
		case "block":
			if !blocked {
				blocked = true // one count per emit that had to wait
				r.Stats.OverflowCount.Add(1)
			}
			ch := r.space.Freed()
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
			if old := r.takeOldestLocked(); old != nil {
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
			formatted, err := r.fmtr.FormatEntry(p.data, s.Tag, e.Time, e.Record)
			if err != nil {
				r.refused(s.Tag, err) // p.data is as it was
				continue
			}
			p.data = formatted
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
	r.space.Add(c.Size - before)
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

// takeOldestLocked removes and returns the oldest chunk waiting to be
// written, failed or not; nil when none waits.
func (r *Runtime) takeOldestLocked() *buffer.Chunk {
	oldest := -1
	for i, t := range r.retrying {
		if oldest < 0 || t.c.Created.Before(r.retrying[oldest].c.Created) {
			oldest = i
		}
	}
	if oldest >= 0 && (len(r.queue) == 0 || !r.queue[0].Created.Before(r.retrying[oldest].c.Created)) {
		c := r.retrying[oldest].c
		r.retrying = append(r.retrying[:oldest], r.retrying[oldest+1:]...)
		return c
	}
	if len(r.queue) == 0 {
		return nil
	}
	c := r.queue[0]
	r.queue = r.queue[1:]
	return c
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
		r.expireLocked(now)
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

// Flush queues every staged chunk now (SIGUSR1, tests).
func (r *Runtime) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.staged {
		r.enqueueLocked(c)
	}
}
