package output

import (
	"context"
	"errors"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

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
