package output

import (
	"sync/atomic"
	"time"
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
	// CorruptChunks counts chunk files found damaged: moved aside whole,
	// or salvaged with their damaged bytes moved aside.
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

// Status is the buffer's state, as fluent-plugin-prometheus reports it.
type Status struct {
	StageLength, QueueLength int   // chunks
	StageBytes, QueueBytes   int64 // queued includes chunks being written
	TotalBytes               int64
	// AvailableSpaceRatio is the percentage of total_limit_size free.
	AvailableSpaceRatio float64
	// RetryWait is the seconds until the next retry, 0 when not retrying.
	RetryWait float64
	// Retrying is the number of chunks waiting for a retry.
	Retrying int
	// OldestWrite is the age in seconds of the oldest write in flight, 0
	// when none is: a write that never returns shows here.
	OldestWrite float64
	// WriteError is why the buffer cannot take appends now (a full disk),
	// "" when it can.
	WriteError string
	// Undelivered is, while the shutdown drains, the records not yet
	// delivered: what the deadline would leave if it passed now. After
	// the stop it is what the stop left. 0 before any stop.
	Undelivered int64
}

// Status returns the buffer's state now.
func (r *Runtime) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := Status{StageLength: len(r.staged), QueueLength: len(r.queue) + len(r.retrying), TotalBytes: r.space.Used()}
	for _, c := range r.staged {
		st.StageBytes += c.Size
	}
	st.QueueBytes = r.space.Used() - st.StageBytes
	if limit := float64(r.cfg.TotalLimitSize); limit > 0 {
		st.AvailableSpaceRatio = 100 * (1 - float64(r.space.Used())/limit)
	}
	st.Undelivered = r.Stats.ShutdownLeftover.Load()
	if r.stopping && !r.stopped {
		st.Undelivered = int64(r.pendingRecordsLocked())
	}
	now := r.now()
	st.Retrying = len(r.retrying)
	if _, wait := r.dueRetryLocked(now); wait > 0 {
		st.RetryWait = wait.Seconds()
	}
	if err := r.store.WriteError(); err != nil {
		st.WriteError = err.Error()
	}
	for _, w := range r.inflight {
		st.OldestWrite = max(st.OldestWrite, now.Sub(w.began).Seconds())
	}
	return st
}

// pendingRecordsLocked counts the records staged, queued, waiting for a
// retry (less what the destination reported it took) or in flight.
func (r *Runtime) pendingRecordsLocked() int {
	n := 0
	for _, c := range r.staged {
		n += c.Records
	}
	for _, c := range r.queue {
		n += c.Records
	}
	for _, t := range r.retrying {
		n += t.c.Records - min(t.delivered, t.c.Records)
	}
	for c := range r.inflight {
		n += c.Records
	}
	return n
}

// Pending returns the chunks and bytes staged, queued or in flight.
func (r *Runtime) Pending() (chunks int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.staged) + len(r.queue) + len(r.retrying) + len(r.inflight), r.space.Used()
}
