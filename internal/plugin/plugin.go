// Package plugin defines the contracts between the engine and plugins, and
// the registry plugins add themselves to from init().
//
// Life of a plugin: New() builds it with its defaults and no side effects;
// the engine decodes the configuration into it (config.Decode), then calls
// Configure (validation and sub-plugins, no I/O). `sluice check` stops there.
// A run then calls Init (open files, bind sockets), starts inputs with Run,
// and finally Close. Close must be safe without Init and safe twice.
package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
)

// Emitter accepts streams. Emit may block for backpressure and returns an
// error when the events were not accepted (for example ErrOverflow); the
// caller must then not acknowledge them. Emit borrows s.Data for the length
// of the call.
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

// AdminInput is an input that serves the instance's own state (metrics,
// probes, the plugin list) instead of taking events. At shutdown it stops
// last, after the outputs have drained, so that scrapes and readiness
// probes see the drain.
type AdminInput interface {
	Input
	Admin()
}

// SeriesMonitor is a source that asks for the series one of
// fluent-plugin-prometheus's monitors serves: family "output_status"
// (prometheus_output_monitor: fluentd_output_status_*) or "status"
// (prometheus_monitor: fluentd_status_*), with the labels of its <labels>
// section added.
type SeriesMonitor interface {
	Series() (family string, labels map[string]string)
}

// Filter transforms a stream. It returns s itself when nothing changed, or a
// stream built in scratch, which the caller owns and resets between calls.
// A stream with Len 0 drops everything.
type Filter interface {
	Filter(ctx context.Context, s event.Stream, scratch *event.Builder) (event.Stream, error)
}

// SyncOutput handles streams as they arrive, without a buffer (stdout, null,
// copy, relabel).
type SyncOutput interface {
	Process(ctx context.Context, s event.Stream) error
}

// BufferedOutput writes chunks that the output runtime has buffered; it is
// called from up to flush_thread_count goroutines at once. Return nil, a
// Permanent error (never retried), or any other error (retried with backoff;
// wrap in RetryAfter to suggest the delay).
type BufferedOutput interface {
	Write(ctx context.Context, c *buffer.Chunk) error
}

// DataBorrower is a BufferedOutput that is done with a chunk's Data when
// Write returns, whether it succeeded or not: nothing it started reads the
// bytes later (an HTTP transport may, so SDK-based outputs are not). The
// runtime then reads the next chunk from a file buffer into the same
// memory instead of allocating a chunk's worth for each write.
type DataBorrower interface {
	BufferedOutput
	BorrowsChunkData()
}

// EntryFormatter is implemented by buffered outputs that format at append
// time (Fluentd's #format); their chunks hold the formatted bytes. The
// runtime calls FormatEntry on the emitting goroutines, concurrently.
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
	// Metrics serves the engine's metrics in Prometheus's text format,
	// and Health answers liveness and readiness, for the sources that
	// expose them.
	Metrics http.Handler
	Health  Health
	// PluginsAPI serves monitor_agent's /api/plugins.json and /api/plugins.
	PluginsAPI http.Handler
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
