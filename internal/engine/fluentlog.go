package engine

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/tinylib/msgp/msgp"
)

// Sluice's own log as events, as Fluentd routes its own: each record goes
// to <label @FLUENT_LOG> when the configuration has one, else to the top
// level when a <match> there names fluent.* tags (<match fluent.**>); with
// neither, nowhere (and no "no patterns matched" warning). A catch-all
// <match **> alone does not take them: Fluentd's would, and a log archive
// that fills with its shipper's own lines, or loops through them, is not
// what such a configuration means. The tag is fluent.LEVEL (fluent.info,
// fluent.warn, ...), the record {"message": ..., plus the log line's
// attributes as strings}.
//
// A log call may come from under any lock, an output's included, so the
// records go through a bounded queue to a goroutine of their own; what
// does not fit is counted (Dropped). With nothing in the configuration to
// take them, records are not made at all. A record logged while
// such events are delivered is delivered too: the queue's bound is what
// stops a loop.

// fluentLogQueue bounds the log records waiting to be emitted.
const fluentLogQueue = 4096

// FluentLogLabel is the label that receives Sluice's own log.
const FluentLogLabel = "@FLUENT_LOG"

type logEvent struct {
	tag    string
	time   event.Time
	record []byte
}

// FluentLog is the sink for Sluice's own log records. It exists before
// the engine (the engine logs through it); the engine's Run delivers its
// queue while the outputs run.
type FluentLog struct {
	queue   chan logEvent
	dropped atomic.Int64
	// wanted: the running configuration has a place for these records.
	wanted atomic.Bool
}

// NewFluentLog returns an empty sink.
func NewFluentLog() *FluentLog { return &FluentLog{queue: make(chan logEvent, fluentLogQueue)} }

// Handler returns a slog.Handler that writes to base and also queues each
// record for the pipeline.
func (f *FluentLog) Handler(base slog.Handler) slog.Handler {
	return &fluentLogHandler{base: base, sink: f}
}

// Dropped counts the log records that did not reach the pipeline: the
// queue was full, or the shutdown came first.
func (f *FluentLog) Dropped() int64 { return f.dropped.Load() }

// deliver emits queued records into e until stop is closed, then counts
// what is left as dropped.
func (f *FluentLog) deliver(e *Engine, stop <-chan struct{}, done *sync.WaitGroup) {
	defer done.Done()
	for {
		select {
		case ev := <-f.queue:
			e.deliverLog(ev)
		case <-stop:
			f.dropped.Add(int64(len(f.queue)))
			return
		}
	}
}

func (e *Engine) deliverLog(ev logEvent) {
	var b event.Builder
	b.Append(ev.time, ev.record)
	s := b.Stream(ev.tag)
	g := e.g.Load()
	if _, ok := g.pipelines[FluentLogLabel]; ok {
		_ = e.entry(FluentLogLabel).Emit(context.Background(), s)
		return
	}
	if g.fluentMatch && g.pipelines[""].router.Lookup(ev.tag).Matched {
		_ = e.rootEntry.Emit(context.Background(), s)
	}
}

func (f *FluentLog) queueLog(ev logEvent) {
	select {
	case f.queue <- ev:
	default:
		f.dropped.Add(1)
	}
}

type fluentLogHandler struct {
	base  slog.Handler
	sink  *FluentLog
	attrs []slog.Attr
}

func (h *fluentLogHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.base.Enabled(ctx, l)
}

func (h *fluentLogHandler) Handle(ctx context.Context, r slog.Record) error {
	err := h.base.Handle(ctx, r)
	if !h.sink.wanted.Load() {
		return err
	}
	kv := []string{"message", r.Message}
	add := func(a slog.Attr) bool {
		if a.Key != "" && a.Key != "message" {
			kv = append(kv, a.Key, a.Value.Resolve().String())
		}
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	rec := msgp.AppendMapHeader(nil, uint32(len(kv)/2))
	for _, s := range kv {
		rec = msgp.AppendString(rec, s)
	}
	t := event.Now()
	if !r.Time.IsZero() {
		t = event.FromStd(r.Time)
	}
	h.sink.queueLog(logEvent{tag: "fluent." + FluentLevel(r.Level), time: t, record: rec})
	return err
}

func (h *fluentLogHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &fluentLogHandler{base: h.base.WithAttrs(attrs), sink: h.sink, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *fluentLogHandler) WithGroup(name string) slog.Handler {
	return &fluentLogHandler{base: h.base.WithGroup(name), sink: h.sink, attrs: h.attrs}
}

// FluentLevel is Fluentd's name for a slog level (trace, debug, info,
// warn, error, fatal), as ParseLevel maps them.
func FluentLevel(l slog.Level) string {
	switch {
	case l < slog.LevelDebug:
		return "trace"
	case l < slog.LevelInfo:
		return "debug"
	case l < slog.LevelWarn:
		return "info"
	case l < slog.LevelError:
		return "warn"
	case l < slog.LevelError+4:
		return "error"
	}
	return "fatal"
}
