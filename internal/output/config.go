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
	Type      string `conf:"@type" enum:"memory,file"`
	Path      string `conf:"path"`
	ChunkKeys string `conf:",arg"`

	Timekey       time.Duration `conf:"timekey"`
	TimekeyWait   time.Duration `conf:"timekey_wait"`
	TimekeyUseUTC bool          `conf:"timekey_use_utc"`
	TimekeyZone   string        `conf:"timekey_zone"`

	ChunkLimitSize        config.Size `conf:"chunk_limit_size"`
	ChunkLimitRecords     int         `conf:"chunk_limit_records"`
	TotalLimitSize        config.Size `conf:"total_limit_size"`
	QueueLimitLength      int         `conf:"queue_limit_length"`
	QueuedChunksLimitSize int         `conf:"queued_chunks_limit_size"`
	ChunkFullThreshold    float64     `conf:"chunk_full_threshold"`
	Compress              string      `conf:"compress" enum:"text,gzip"`

	FlushMode                string        `conf:"flush_mode" enum:"default,lazy,interval,immediate"`
	FlushInterval            time.Duration `conf:"flush_interval"`
	FlushThreadCount         int           `conf:"flush_thread_count"`
	FlushThreadInterval      time.Duration `conf:"flush_thread_interval"`
	FlushThreadBurstInterval time.Duration `conf:"flush_thread_burst_interval"`
	DelayedCommitTimeout     time.Duration `conf:"delayed_commit_timeout"`
	FlushAtShutdown          bool          `conf:"flush_at_shutdown"`
	OverflowAction           string        `conf:"overflow_action" enum:"throw_exception,block,drop_oldest_chunk"`

	RetryType                   string        `conf:"retry_type" enum:"exponential_backoff,periodic"`
	RetryWait                   time.Duration `conf:"retry_wait"`
	RetryExponentialBackoffBase float64       `conf:"retry_exponential_backoff_base"`
	RetryMaxInterval            time.Duration `conf:"retry_max_interval"`
	RetryRandomize              bool          `conf:"retry_randomize"`
	RetryTimeout                time.Duration `conf:"retry_timeout"`
	RetryMaxTimes               int           `conf:"retry_max_times"`
	RetryForever                bool          `conf:"retry_forever"`
	RetrySecondaryThreshold     float64       `conf:"retry_secondary_threshold"`
	DisableChunkBackup          bool          `conf:"disable_chunk_backup"`

	// Sluice: the deadline of one write attempt. A write still running
	// after it is cancelled and retried like any failure.
	WriteTimeout time.Duration `conf:"write_timeout"`

	// Sluice's file buffer: when an acknowledged append is safe on disk
	// (see buffer.File). every_write fsyncs before the ack; interval
	// fsyncs every fsync_interval; never leaves it to the OS.
	Fsync         string        `conf:"fsync" enum:"every_write,interval,never"`
	FsyncInterval time.Duration `conf:"fsync_interval"`
	// Sluice's file buffer: bytes of the chunks it writes also kept in
	// memory, so that a flush does not read them back from disk.
	MemoryCacheSize config.Size `conf:"memory_cache_size"`
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
