// Package plugin defines the contracts between the engine and plugins, and
// the registry plugins add themselves to from init().
//
// A plugin is a struct whose exported fields carry `conf` tags (the
// parameter's name), `desc` tags (one sentence for `sluice plugins TYPE`)
// and defaults set by Info.New. Its kind's interface is the one method the
// engine calls with events: Input.Run, Filter.Filter, SyncOutput.Process or
// BufferedOutput.Write, Formatter.Format, Parser.Parse. Everything else the
// engine knows about a type is a field of Info, checked when it registers.
//
// Life of a plugin: New() builds it with its defaults and no side effects;
// the engine decodes the configuration into it (config.Decode), then calls
// Configure (validation and sub-plugins, no I/O). `sluice check` stops there.
// A run then calls Init (open files, bind sockets), starts inputs with Run,
// and finally Close. Close must be safe without Init and safe twice.
//
// A buffered output is the smallest useful plugin: a struct, an Info with
// Kind KindOutput, and Write. The runtime (internal/output) owns its
// buffer, flush threads, retries, <secondary> and shutdown; Write only
// sends one chunk and says how it went. internal/plugins/file/out_file.go is
// the example to read.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
)

// Emitter accepts streams. Emit may block for backpressure and returns an
// error when the events were not accepted (for example ErrOverflow); the
// caller must then not acknowledge them. Emit borrows s.Data for the length
// of the call and does not change it. Every emitter the engine hands out
// is safe for concurrent use: each connection's goroutine emits at once.
type Emitter interface {
	Emit(ctx context.Context, s event.Stream) error
}

// EmitterFunc adapts a function to Emitter.
type EmitterFunc func(ctx context.Context, s event.Stream) error

// Emit calls f.
func (f EmitterFunc) Emit(ctx context.Context, s event.Stream) error { return f(ctx, s) }

// Input produces events. Run owns the input's whole life: it returns when
// ctx is done, after in-flight messages are finished.
type Input interface {
	Run(ctx context.Context, out Emitter) error
}

// SeriesMonitor is a source that asks for the series one of
// fluent-plugin-prometheus's monitors serves: family "output_status"
// (prometheus_output_monitor: fluentd_output_status_*), "status"
// (prometheus_monitor: fluentd_status_*) or "tail"
// (prometheus_tail_monitor: fluentd_tail_file_*), with the labels of its
// <labels> section added.
type SeriesMonitor interface {
	Series() (family string, labels map[string]string)
}

// FileFollower is an input that follows files (tail), for
// prometheus_tail_monitor's series.
type FileFollower interface {
	FollowedFiles() []FollowedFile
	// FileCounts are the files opened, closed and found rotated, and the
	// reads held back by read_bytes_limit_per_second, since the start.
	FileCounts() (opened, closed, rotated, throttled int64)
}

// FollowedFile is one file a FileFollower reads.
type FollowedFile struct {
	Path     string
	Position int64
	Inode    uint64
}

// Filter transforms a stream. It returns s itself when nothing changed, or a
// stream built in scratch, which the caller owns and resets between calls.
// A stream with Len 0 drops everything.
//
// Filter is called from every input's goroutines at once, so it must be
// safe for concurrent use, and it must never modify s.Data: the same bytes
// may be on their way to other outputs (copy hands one stream to each
// <store> without copying it).
type Filter interface {
	Filter(ctx context.Context, s event.Stream, scratch *event.Builder) (event.Stream, error)
}

// SyncOutput handles streams as they arrive, without a buffer (stdout, null,
// copy, relabel). Like Filter, Process is called concurrently and must not
// modify s.Data, which it borrows for the call.
type SyncOutput interface {
	Process(ctx context.Context, s event.Stream) error
}

// BufferedOutput writes chunks that the output runtime has buffered; it is
// called from up to flush_thread_count goroutines at once, never twice at
// once for one chunk. Return nil, a Permanent error (never retried), or any
// other error (retried with backoff; wrap in RetryAfter to suggest the
// delay). Write must return soon after ctx is done: the runtime cancels it
// at <buffer> write_timeout and at the shutdown deadline.
//
// The chunk is valid for the call. Its Data must not be changed, and must
// not be read after Write returns when the type declares
// Info.DoneWithDataOnReturn.
type BufferedOutput interface {
	Write(ctx context.Context, c *Chunk) error
}

// EntryFormatter is implemented by buffered outputs that format at append
// time (Fluentd's #format); their chunks hold the formatted bytes. The
// runtime calls FormatEntry on the emitting goroutines, concurrently, and
// drops and counts an entry it refuses.
type EntryFormatter interface {
	FormatEntry(dst []byte, tag string, t event.Time, r event.Record) ([]byte, error)
}

// Formatter renders one event as bytes. It must be safe for concurrent
// use: buffers format on the emitting goroutines and outputs in each flush
// thread. State it caches (a time rendering) is replaced whole, never
// changed in place.
type Formatter interface {
	Format(dst []byte, tag string, t event.Time, r event.Record) ([]byte, error)
}

// Parser turns text into events: it calls emit once per record (an
// encoded msgpack map) with the record's time, or 0 when the text carried
// none (the caller then uses the current time). A parser is not safe for
// concurrent use.
type Parser interface {
	Parse(text []byte, emit func(t event.Time, record []byte) error) error
}

// CurrentTimeEstimator is implemented by parsers whose
// estimate_current_event a user of the parser may turn off: the parser
// filter keeps a record's own time when the text has none.
type CurrentTimeEstimator interface {
	SetEstimateCurrentEvent(bool)
}

// Listener is an input that binds TCP addresses ("host:port"), so that a
// check can refuse two sources on one port before a start would fail.
type Listener interface {
	Listens() []string
}

// Configurer validates a decoded plugin and builds its sub-plugins.
type Configurer interface {
	Configure(c *Context) error
}

// Initer acquires resources before events flow.
type Initer interface {
	Init(ctx context.Context) error
}

// Closer releases resources.
type Closer interface {
	Close(ctx context.Context) error
}

// Context is what Configure may use. It is only valid during Configure,
// except for the emitters, which stay valid for the plugin's life.
type Context struct {
	ID       string
	Type     string
	Element  *config.Element
	Logger   *slog.Logger
	Hostname string
	// Build constructs plugins nested in this one (formatters, <store>s).
	Build Builder
	// ErrorOut receives events a plugin rejects (Fluentd's @ERROR label).
	ErrorOut Emitter
	// Reemit routes events into the label the plugin is defined in
	// (rewrite_tag_filter emits under new tags there).
	Reemit Emitter
	// ChunkKeys and Location describe the output's buffer, for checking
	// placeholders; zero for unbuffered plugins.
	ChunkKeys buffer.ChunkKeys
	Location  *time.Location
	Timekey   time.Duration
	// Perm is the mode of files and directories the plugin creates
	// (<system> file_permission and dir_permission; 0644 and 0755).
	Perm buffer.Perm
	// Host is the running instance, for the sources that serve its state
	// (Info.Admin). Besides Health, the engine's value serves its metrics
	// and plugin list over HTTP: such a source asserts the interface it
	// declares itself for that (see internal/plugins/prometheus).
	Host Health
}

// MemoryBounded is an input that holds at most MemoryBound bytes of
// events at once, whatever its clients do (its shared budgets), so that
// the engine can bound the whole process (Engine.MemoryBound).
type MemoryBounded interface {
	MemoryBound() int64
}

// Measured is a plugin with counters of its own. The metrics endpoint
// reports each as sluice_input_NAME or sluice_output_NAME, with plugin_id
// and type labels, reading them at scrape time.
type Measured interface {
	Measure(report Report)
}

// Report receives one counter (gauge: it can go down).
type Report func(name, help string, value int64, gauge bool)

// Health is the engine's state for liveness and readiness probes.
type Health interface {
	// Live fails when the engine has stopped.
	Live() error
	// Ready fails while starting or shutting down, and while any output's
	// buffer holds more than highWater (0 to 1) of its total_limit_size,
	// so that a load balancer sends new connections elsewhere before the
	// buffer overflows.
	Ready(highWater float64) error
}

// Builder constructs nested plugins while the graph is being built.
type Builder interface {
	// Formatter builds the formatter described by a <format> section; a nil
	// section (or one without @type) means defaultType.
	Formatter(sec *config.Element, defaultType string) (Formatter, error)
	// Parser builds the parser described by a <parse> section, likewise.
	Parser(sec *config.Element, defaultType string) (Parser, error)
	// Output builds an output section such as <store> and returns the
	// emitter that feeds it (through its buffer, if it has one).
	Output(sec *config.Element) (Emitter, error)
	// Label returns the emitter that routes into <label name>.
	Label(name string) (Emitter, error)
}

// Permanent wraps an error that retrying cannot fix.
type Permanent struct{ Err error }

func (e *Permanent) Error() string { return "permanent: " + e.Err.Error() }
func (e *Permanent) Unwrap() error { return e.Err }

// RetryAfter wraps a retryable error with the delay the destination asked for.
type RetryAfter struct {
	Err   error
	Delay time.Duration
}

func (e *RetryAfter) Error() string { return fmt.Sprintf("%v (retry after %s)", e.Err, e.Delay) }
func (e *RetryAfter) Unwrap() error { return e.Err }

// WriteReport is what an output tells the runtime about one Write while
// it runs. The runtime puts it in the Write's context; plugins report
// through CountRetry and Delivered, which do nothing without one.
type WriteReport struct {
	// Retries is the output's retry count (fluentd_output_status_retry_count).
	Retries *atomic.Int64
	// Delivered is how many of the chunk's records the destination holds,
	// for an output that delivers a chunk in parts (Firehose batches): a
	// write cut off by the shutdown deadline leaves only the rest.
	Delivered atomic.Int64
}

type writeReportKey struct{}

// WithWriteReport returns ctx carrying r.
func WithWriteReport(ctx context.Context, r *WriteReport) context.Context {
	return context.WithValue(ctx, writeReportKey{}, r)
}

// CountRetry records a retry a plugin makes within one write (a batch call
// sent again for the records it failed) in the output's retry count, when
// it happens.
func CountRetry(ctx context.Context) {
	if r, ok := ctx.Value(writeReportKey{}).(*WriteReport); ok && r.Retries != nil {
		r.Retries.Add(1)
	}
}

// Delivered says that the destination now holds n of the chunk's records
// in all (not n more).
func Delivered(ctx context.Context, n int) {
	if r, ok := ctx.Value(writeReportKey{}).(*WriteReport); ok {
		r.Delivered.Store(int64(n))
	}
}

// IsPermanent reports whether err, or an error it wraps, is Permanent.
// A placeholder value that would cross a path boundary is one too: it comes
// from the client's tag or record, and every retry would expand it alike.
func IsPermanent(err error) bool {
	var p *Permanent
	return errors.As(err, &p) || errors.Is(err, buffer.ErrCrossesPath)
}

// ErrOverflow is returned by Emit when a buffer is full and its
// overflow_action is throw_exception.
var ErrOverflow = errors.New("buffer overflow: total_limit_size reached")
