package output

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

func (r *Runtime) worker() {
	defer r.wg.Done()
	for {
		t, ok := r.next()
		if !ok {
			return
		}
		r.flush(t)
	}
}

// task is one write of a chunk, from next through flush to finish.
type task struct {
	c     *buffer.Chunk
	retry chunkRetry // the chunk's state before this write
	// ctx is the write's context: the runtime's write context, cancelled
	// with errWriteTimeout by the scheduler once the write has run for
	// write_timeout (a timer per write cost the workers a third of their
	// rate on fast inputs).
	ctx    context.Context
	cancel context.CancelCauseFunc
	// delivered is how many of the chunk's records the destination holds,
	// as the output reported (plugin.Delivered), for an output that
	// delivers a chunk in parts.
	delivered int
}

// flush loads a chunk and writes it to the output (or the secondary) under
// the write deadline.
func (r *Runtime) flush(t task) {
	c, toSecondary := t.c, t.retry.secondary
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
		t.cancel(nil)
		r.mu.Lock()
		delete(r.inflight, c)
		r.Stats.CorruptChunks.Add(1)
		r.log.Error("cannot read a buffered chunk; moving it aside", "output", r.id, "chunk", c.ID.String(), "err", err)
		r.backupLocked(c, "corrupt")
		r.mu.Unlock()
		return
	}
	view := plugin.NewChunk(plugin.Chunk{ID: c.ID, Key: c.Key, Data: data, Formatted: r.fmtr != nil, Records: c.Records,
		Created: c.Created, Retries: c.Retries}, c.Meta, func(key, value string) error {
		if c.Meta == nil {
			c.Meta = map[string]string{}
		}
		c.Meta[key] = value
		return r.store.SaveMeta(c)
	})
	began := r.now()
	defer func() {
		took := r.now().Sub(began)
		r.Stats.WriteSeconds.Observe(took)
		if took > r.slowFlush {
			r.Stats.SlowFlushes.Add(1)
			r.log.Warn("buffer flush took longer than slow_flush_log_threshold", "output", r.id,
				"elapsed", took.String(), "threshold", r.slowFlush.String(), "chunk", c.ID.String())
		}
	}()
	report := &plugin.WriteReport{Retries: &r.Stats.RetryCount}
	report.Delivered.Store(int64(t.delivered))
	ctx := plugin.WithWriteReport(t.ctx, report)
	if toSecondary {
		err = r.secondary.Write(ctx, view)
		if err == nil {
			r.Stats.SecondaryWrites.Add(1)
			r.log.Warn("chunk written to <secondary>", "output", r.id, "chunk", c.ID.String(), "records", c.Records)
		}
	} else {
		err = r.out.Write(ctx, view)
	}
	if err != nil && errors.Is(context.Cause(t.ctx), errWriteTimeout) {
		err = fmt.Errorf("write_timeout (%v) passed: %w", r.cfg.WriteTimeout, err)
	}
	t.cancel(nil)
	t.delivered = int(report.Delivered.Load())
	r.finish(t, err)
}

// borrows says whether the output that writes a chunk is done with its
// bytes when Write returns.
func (r *Runtime) borrows(toSecondary bool) bool {
	if toSecondary {
		return r.secondaryDone
	}
	return r.outDone
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
		if formatted, err := r.fmtr.FormatEntry(out, c.Key.Tag, e.Time, e.Record); err == nil {
			out = formatted
		} else {
			r.refused(c.Key.Tag, err)
		}
	}
	return out, rd.Err()
}

// refused drops, counts and logs an entry the formatter refuses, whether
// it was being appended or was stored unformatted (a Fluentd chunk
// imported for a formatting output): the rest of its stream or chunk goes
// on. The callers format inline, as a call per entry costs the append path
// a few percent.
func (r *Runtime) refused(tag string, err error) {
	r.Stats.Drop(DropFormat, 1)
	r.log.Warn("dropping a record the formatter refused", "output", r.id, "tag", tag, "err", err)
}

// next waits for a chunk that may be written now and marks it in flight.
// A retry that is due goes first: it is older than any chunk that has not
// failed. It returns false when the runtime is stopping and nothing is
// left, or when writes are cancelled.
func (r *Runtime) next() (task, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if r.writeCtx.Err() != nil {
			return task{}, false
		}
		now := r.now()
		i, wait := r.dueRetryLocked(now)
		var t task
		switch {
		case i >= 0:
			t = r.retrying[i]
			r.retrying = append(r.retrying[:i], r.retrying[i+1:]...)
		case len(r.queue) > 0:
			t.c = r.queue[0]
			r.queue = r.queue[1:]
		case r.stopping && len(r.retrying) == 0:
			// A chunk still in flight is retried by the worker holding it.
			return task{}, false
		}
		if t.c != nil {
			t.ctx, t.cancel = context.WithCancelCause(r.writeCtx)
			r.inflight[t.c] = &write{began: now, cancel: t.cancel}
			return t, true
		}
		r.mu.Unlock()
		if wait < 0 {
			select {
			case <-r.wake:
			case <-r.stopCh:
			case <-r.writeCtx.Done():
			}
		} else {
			tm := time.NewTimer(wait)
			select {
			case <-tm.C:
			case <-r.wake:
			case <-r.writeCtx.Done():
			}
			tm.Stop()
		}
		r.mu.Lock()
	}
}

// write is a write in flight.
type write struct {
	began   time.Time
	cancel  context.CancelCauseFunc
	expired bool // cancelled for write_timeout
}

// errWriteTimeout is the cause of a write's context cancelled at
// write_timeout.
var errWriteTimeout = errors.New("write_timeout passed")

// expireLocked cancels the writes that have run for write_timeout.
func (r *Runtime) expireLocked(now time.Time) {
	for _, w := range r.inflight {
		if !w.expired && now.Sub(w.began) >= r.cfg.WriteTimeout {
			w.expired = true
			w.cancel(errWriteTimeout)
		}
	}
}

// dueRetryLocked returns the index in r.retrying of the chunk whose retry
// is due earliest, if it is due at now; else -1 and how long until the
// earliest is due (-1 when none waits).
func (r *Runtime) dueRetryLocked(now time.Time) (int, time.Duration) {
	best := -1
	for i, t := range r.retrying {
		if best < 0 || t.retry.next.Before(r.retrying[best].retry.next) {
			best = i
		}
	}
	if best < 0 {
		return -1, -1
	}
	if wait := r.retrying[best].retry.next.Sub(now); wait > 0 {
		return -1, wait
	}
	return best, 0
}

// finish settles a write: commits the chunk, or decides its retry.
func (r *Runtime) finish(t task, err error) {
	c, toSecondary := t.c, t.retry.secondary
	if err == nil {
		// Read without the lock: emits hold it while they copy a stream,
		// and one more wait for it per chunk slows the workers enough to
		// fall behind a fast input.
		if r.abandoned.Load() {
			// Stop gave up on this write and counted the chunk as left
			// over; a file buffer sends it again after a restart.
			return
		}
		// The chunk is this worker's alone until freed, so its removal (an
		// unlink that frees megabytes of page cache) need not stop emits.
		if cerr := r.store.Commit(c); cerr != nil {
			r.log.Error("written chunk not removed from the buffer; it will be sent again after a restart",
				"output", r.id, "chunk", c.ID.String(), "err", cerr)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.abandoned.Load() {
		return
	}
	delete(r.inflight, c)
	if err == nil {
		r.Stats.WriteCount.Add(1)
		r.Stats.WriteRecords.Add(int64(c.Records))
		r.Stats.WriteBytes.Add(c.Size)
		r.freeLocked(c)
		return
	}
	r.Stats.NumErrors.Add(1)
	if r.writeCtx.Err() != nil && errors.Is(err, context.Canceled) {
		// Shutdown deadline: keep it for the leftover count.
		r.retrying = append(r.retrying, t)
		return
	}
	f := failure{permanent: plugin.IsPermanent(err), onSecondary: toSecondary}
	var ra *plugin.RetryAfter
	if errors.As(err, &ra) {
		f.retryAfter = ra.Delay
	}
	now := r.now()
	st, v := r.policy.decide(t.retry, f, now, rand.Float64())
	c.Retries = st.steps
	where := "output"
	if toSecondary {
		where = "secondary"
	}
	switch {
	case v == giveUp && f.permanent:
		r.log.Error("the destination refused a chunk permanently", "output", r.id, "to", where,
			"chunk", c.ID.String(), "records", c.Records, "err", err)
		r.backupLocked(c, "permanent_error")
		return
	case v == giveUp:
		r.log.Error("giving up on a chunk after the retry limit", "output", r.id, "to", where, "chunk", c.ID.String(),
			"records", c.Records, "retries", st.steps, "err", err)
		r.backupLocked(c, "retry_limit")
		return
	case f.permanent:
		r.log.Error("the destination refused a chunk permanently; trying <secondary>", "output", r.id,
			"chunk", c.ID.String(), "records", c.Records, "err", err)
	default:
		r.Stats.RetryCount.Add(1)
		r.Stats.RollbackCount.Add(1)
		r.log.Warn("failed to flush the buffer", "output", r.id, "to", where, "chunk", c.ID.String(),
			"retry_times", st.steps, "next_retry_in", st.next.Sub(now).Round(time.Millisecond).String(), "err", err)
	}
	r.retrying = append(r.retrying, task{c: c, retry: st, delivered: t.delivered})
	r.signal()
}

func (r *Runtime) freeLocked(c *buffer.Chunk) {
	r.space.Release(c.Size)
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
