package output

import (
	"fmt"
	"strings"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/strftime"
)

// BufferConfig is Fluentd's <buffer> section with its names and defaults.
type BufferConfig struct {
	Type      string `conf:"@type" enum:"memory,file,file_single" desc:"Where chunks are kept: memory (fast, lost with the process) or file (one file per chunk, kept across restarts and crashes); file_single, Fluentd's other file buffer, is the same file buffer here."`
	Path      string `conf:"path" desc:"The directory of a file buffer. Defaults to <system> root_dir/<@id>/buffer; must differ between outputs."`
	ChunkKeys string `conf:",arg" desc:"The chunk keys: tag, time, and record keys (a.b for nested ones), comma-separated. Events that share them go into one chunk, and ${tag}, %Y... and ${key} placeholders in the output's parameters take their values."`

	Timekey       time.Duration `conf:"timekey" desc:"The width of a time chunk's window (with time among the chunk keys): events are grouped by the window their time falls in."`
	TimekeyWait   time.Duration `conf:"timekey_wait" desc:"How long after its window closes a time chunk waits for late events before it is flushed."`
	TimekeyUseUTC bool          `conf:"timekey_use_utc" desc:"Compute time windows and time placeholders in UTC instead of local time."`
	TimekeyZone   string        `conf:"timekey_zone" desc:"The time zone of time windows and time placeholders, as +0900 or a zone name."`

	ChunkLimitSize        config.Size `conf:"chunk_limit_size" desc:"The largest a chunk grows before it is queued for writing; an event larger than this is dropped and counted. Defaults to 8MB for memory and 256MB for file."`
	ChunkLimitRecords     int         `conf:"chunk_limit_records" desc:"The most events a chunk holds before it is queued (0: no limit)."`
	TotalLimitSize        config.Size `conf:"total_limit_size" desc:"The most bytes the buffer holds, staged, queued and being written together; past it overflow_action decides. Defaults to 512MB for memory and 64GB for file."`
	QueueLimitLength      int         `conf:"queue_limit_length" desc:"Fluentd's older spelling of a limit: when set, total_limit_size becomes chunk_limit_size times this."`
	QueuedChunksLimitSize int         `conf:"queued_chunks_limit_size" desc:"The most chunks queued at once; a chunk waiting for the queue stays staged (0: no limit)."`
	ChunkFullThreshold    float64     `conf:"chunk_full_threshold" desc:"The fraction of chunk_limit_size at which a chunk counts as full and is queued."`
	Compress              string      `conf:"compress" enum:"text,gzip" desc:"gzip compresses each chunk in the buffer, to trade CPU for memory or disk; the output is handed the decompressed bytes."`

	FlushMode                string        `conf:"flush_mode" enum:"default,lazy,interval,immediate" desc:"When staged chunks are queued: lazy at each timekey, interval every flush_interval, immediate as soon as events arrive; default is lazy with time among the chunk keys, else interval."`
	FlushInterval            time.Duration `conf:"flush_interval" desc:"How often staged chunks are queued in interval mode."`
	FlushThreadCount         int           `conf:"flush_thread_count" desc:"How many chunks are written at once, each by its own flush thread."`
	FlushThreadInterval      time.Duration `conf:"flush_thread_interval" desc:"How long an idle flush thread sleeps before it looks for work again."`
	FlushThreadBurstInterval time.Duration `conf:"flush_thread_burst_interval" desc:"How long a flush thread waits between chunks while more are queued."`
	DelayedCommitTimeout     time.Duration `conf:"delayed_commit_timeout" desc:"Accepted for Fluentd's delayed-commit outputs; Sluice's outputs commit when Write returns." ignored:"Sluice's outputs commit when Write returns"`
	FlushAtShutdown          bool          `conf:"flush_at_shutdown" desc:"Queue and write every staged chunk at shutdown. Defaults to true for memory (what is not written is lost) and false for file (chunks wait for the next start)."`
	OverflowAction           string        `conf:"overflow_action" enum:"throw_exception,block,drop_oldest_chunk" desc:"What happens when the buffer is full: throw_exception refuses the events (inputs then do not acknowledge them), block waits for space, drop_oldest_chunk drops the oldest queued chunk and counts it."`

	RetryType                   string        `conf:"retry_type" enum:"exponential_backoff,periodic" desc:"How the wait between retries grows: exponential_backoff doubles it (by retry_exponential_backoff_base), periodic keeps retry_wait."`
	RetryWait                   time.Duration `conf:"retry_wait" desc:"The wait before the first retry of a failed chunk."`
	RetryExponentialBackoffBase float64       `conf:"retry_exponential_backoff_base" desc:"The factor by which the wait grows at each retry."`
	RetryMaxInterval            time.Duration `conf:"retry_max_interval" desc:"The longest wait between two retries (0: no cap)."`
	RetryRandomize              bool          `conf:"retry_randomize" desc:"Vary each wait randomly, so that many instances do not retry in step."`
	RetryTimeout                time.Duration `conf:"retry_timeout" desc:"How long a chunk is retried before it is given up on (to <secondary>, or the backup directory)."`
	RetryMaxTimes               int           `conf:"retry_max_times" desc:"How many retries a chunk gets before it is given up on (-1: until retry_timeout)."`
	RetryForever                bool          `conf:"retry_forever" desc:"Retry every chunk until it is written; it is never given up on."`
	RetrySecondaryThreshold     float64       `conf:"retry_secondary_threshold" desc:"The fraction of retry_timeout after which a failing chunk goes to <secondary>."`
	DisableChunkBackup          bool          `conf:"disable_chunk_backup" desc:"Drop, and count, chunks that cannot be delivered instead of writing them to the backup directory."`

	// Sluice: the deadline of one write attempt. A write still running
	// after it is cancelled and retried like any failure.
	WriteTimeout time.Duration `conf:"write_timeout" desc:"The longest one write may run: past it the write is cancelled and retried like any failure."`

	// Sluice's file buffer: when an acknowledged append is safe on disk
	// (see buffer.File). every_write fsyncs before the ack; interval
	// fsyncs every fsync_interval; never leaves it to the OS.
	Fsync         string        `conf:"fsync" enum:"every_write,interval,never" desc:"When an acknowledged event is safe on disk in a file buffer: every_write before the ack, interval every fsync_interval, never leaves it to the kernel."`
	FsyncInterval time.Duration `conf:"fsync_interval" desc:"How often a file buffer fsyncs its chunks with fsync interval."`
	// Sluice's file buffer: bytes of the chunks it writes also kept in
	// memory, so that a flush does not read them back from disk.
	MemoryCacheSize config.Size `conf:"memory_cache_size" desc:"How many bytes of the chunks a file buffer writes are also kept in memory, so that writing them out needs no read back."`

	// Fluentd's buf_file and buf_file_single parameters.
	FilePermission string `conf:"file_permission" desc:"The octal mode of a file buffer's chunk, metadata and backup files; <system> file_permission, else 0644, when unset."`
	DirPermission  string `conf:"dir_permission" desc:"The octal mode of a file buffer's directories; <system> dir_permission, else 0755, when unset."`
	PathSuffix     string `conf:"path_suffix" desc:"Accepted for Fluentd compatibility (its chunk files' suffix)." ignored:"Sluice names its chunk files itself (sluice.<state><id>.chunk, see docs/buffer-format.md)"`
	ChunkFormat    string `conf:"chunk_format" desc:"Accepted for Fluentd compatibility (file_single's chunk format)." ignored:"chunks hold what the output stores: msgpack, or its formatted bytes"`
	CalcNumRecords bool   `conf:"calc_num_records" desc:"Accepted for Fluentd compatibility (file_single)." ignored:"record counts are always kept with each chunk"`
}

// DefaultBufferConfig returns Fluentd's defaults for a buffer of type typ
// ("memory" or "file"). Limits and flush_at_shutdown differ by type.
func DefaultBufferConfig(typ string) BufferConfig {
	c := BufferConfig{
		Type:                        typ,
		TimekeyWait:                 600 * time.Second,
		ChunkLimitSize:              8 << 20,
		TotalLimitSize:              512 << 20,
		ChunkFullThreshold:          0.95,
		Compress:                    "text",
		FlushMode:                   "default",
		FlushInterval:               60 * time.Second,
		FlushThreadCount:            1,
		FlushThreadInterval:         time.Second,
		FlushThreadBurstInterval:    time.Second,
		DelayedCommitTimeout:        60 * time.Second,
		FlushAtShutdown:             true,
		OverflowAction:              "throw_exception",
		RetryType:                   "exponential_backoff",
		RetryWait:                   time.Second,
		RetryExponentialBackoffBase: 2,
		RetryRandomize:              true,
		RetryTimeout:                72 * time.Hour,
		RetryMaxTimes:               -1, // unset: bounded by retry_timeout only
		RetrySecondaryThreshold:     0.8,
		WriteTimeout:                DefaultWriteTimeout,
		Fsync:                       "interval",
		FsyncInterval:               time.Second,
		MemoryCacheSize:             DefaultMemoryCacheSize,
	}
	if typ == "file" {
		c.ChunkLimitSize = 256 << 20
		c.TotalLimitSize = 64 << 30
		c.FlushAtShutdown = false
	}
	return c
}

// DefaultWriteTimeout bounds one write attempt. It is above every
// plugin's own default wait (out_forward's ack_response_timeout is 190 s
// after a send_timeout of 60 s), so that it ends only writes that are
// stuck, not slow.
const DefaultWriteTimeout = 5 * time.Minute

// DefaultMemoryCacheSize is the file buffer's memory_cache_size: room for
// a few default-sized memory chunks in flight.
const DefaultMemoryCacheSize = 64 << 20

func (c *BufferConfig) validate(keys buffer.ChunkKeys) error {
	if keys.Time && c.Timekey <= 0 {
		return fmt.Errorf("<buffer> chunk keys include time, but timekey is not set")
	}
	if c.Timekey > 0 && c.Timekey < time.Second {
		return fmt.Errorf("timekey must be at least 1s")
	}
	if c.ChunkLimitSize <= 0 || c.TotalLimitSize <= 0 {
		return fmt.Errorf("chunk_limit_size and total_limit_size must be positive")
	}
	if c.ChunkLimitSize > c.TotalLimitSize {
		return fmt.Errorf("chunk_limit_size (%d) is larger than total_limit_size (%d)", c.ChunkLimitSize, c.TotalLimitSize)
	}
	if c.FlushThreadCount < 1 {
		return fmt.Errorf("flush_thread_count must be at least 1")
	}
	if c.FlushThreadInterval <= 0 || c.FlushThreadBurstInterval <= 0 {
		return fmt.Errorf("flush_thread_interval and flush_thread_burst_interval must be positive")
	}
	if c.RetryExponentialBackoffBase < 1 {
		return fmt.Errorf("retry_exponential_backoff_base must be at least 1")
	}
	if c.Type == "file" && strings.Contains(c.Path, "*") {
		return fmt.Errorf("<buffer> path %q: a file pattern with '*' (the v0.12 buffer_path style) is not supported; give a directory", c.Path)
	}
	if c.RetrySecondaryThreshold <= 0 || c.RetrySecondaryThreshold > 1 {
		return fmt.Errorf("retry_secondary_threshold must be in (0, 1]")
	}
	if c.Type == "file_single" {
		c.Type = "file" // both keep one file per chunk; Sluice has one file buffer
	}
	for _, p := range []string{c.FilePermission, c.DirPermission} {
		if p != "" {
			if _, err := buffer.ParsePerm(p); err != nil {
				return err
			}
		}
	}
	if c.MemoryCacheSize < 0 {
		return fmt.Errorf("memory_cache_size must not be negative")
	}
	if c.WriteTimeout <= 0 {
		return fmt.Errorf("write_timeout must be positive")
	}
	if c.FsyncInterval <= 0 {
		return fmt.Errorf("fsync_interval must be positive")
	}
	return nil
}

// location returns the zone timekeys and time placeholders use.
func (c *BufferConfig) location() (*time.Location, error) {
	switch {
	case c.TimekeyUseUTC:
		return time.UTC, nil
	case c.TimekeyZone != "":
		return strftime.ParseZone(c.TimekeyZone)
	}
	return time.Local, nil
}
