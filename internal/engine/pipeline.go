package engine

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/route"
)

// Emit sends a stream into an output node, through its buffer if it has one.
func (n *node) Emit(ctx context.Context, s event.Stream) error {
	if n.opened != nil {
		select {
		case <-n.opened:
			if n.openErr != nil {
				return fmt.Errorf("output %s: %w", n.id, n.openErr)
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if n.inject != nil {
		bufs := builderPool.Get().(*[2]event.Builder)
		defer builderPool.Put(bufs)
		bufs[0].Reset()
		var err error
		if s, err = n.inject.Apply(s, &bufs[0]); err != nil {
			return fmt.Errorf("output %s: <inject>: %w", n.id, err)
		}
	}
	if n.runtime != nil {
		return n.runtime.Emit(ctx, s)
	}
	return n.sync.Process(ctx, s)
}

func (e *Engine) dumpErrorEvents(_ context.Context, s event.Stream) error {
	e.ErrorEvents.Add(int64(s.Len))
	e.log.Warn("dropping error events (no <label @ERROR>)", "tag", s.Tag, "records", s.Len)
	return nil
}

// entry is where events enter the root or a label. Inputs, relabel, @ERROR
// and re-emitting plugins hold an entry, never a pipeline, so that a reload
// can put a new pipeline behind it while they keep running.
type entry struct {
	name string
	eng  *Engine
	cur  atomic.Pointer[pipeline] // nil: no such label in the running configuration
}

// Emit hands s to the current pipeline. The pipeline's count of emits in
// progress lets a reload wait until nothing runs through a replaced one.
func (en *entry) Emit(ctx context.Context, s event.Stream) error {
	for {
		p := en.cur.Load()
		if p == nil {
			return en.eng.noPipeline(ctx, en.name, s)
		}
		p.active.Add(1)
		if p.retired.Load() {
			// A reload replaced p after we loaded it; cur holds the successor.
			p.leave()
			continue
		}
		err := p.Emit(ctx, s)
		p.leave()
		return err
	}
}

// noPipeline takes events for a label the running configuration lacks:
// @ERROR without a <label @ERROR>, or a label a reload removed while a
// plugin of the old configuration still held it.
func (e *Engine) noPipeline(ctx context.Context, name string, s event.Stream) error {
	if name == "@ERROR" {
		return e.dumpErrorEvents(ctx, s)
	}
	e.Unmatched.Add(int64(s.Len))
	e.log.Warn("dropping events for a label the configuration no longer has", "label", name, "tag", s.Tag, "records", s.Len)
	return nil
}

// pipeline routes streams for the root or one label.
type pipeline struct {
	name   string
	eng    *Engine
	router *route.Router[*node, plugin.Emitter]

	active  atomic.Int64 // emits in progress, through an entry
	retired atomic.Bool  // a reload has replaced this pipeline
	// drained is closed once the pipeline is retired and no emit runs
	// through it any more.
	drained   chan struct{}
	drainOnce sync.Once

	mu     sync.Mutex
	warned map[string]struct{} // guarded by mu; tags already logged as unmatched
}

// leave ends one emit through p. The last one out of a retired pipeline
// closes drained. (retire stores retired before it reads active, and an
// emit adds to active before it reads retired, so one of them sees the
// other.)
func (p *pipeline) leave() {
	if p.active.Add(-1) == 0 && p.retired.Load() {
		p.drainOnce.Do(func() { close(p.drained) })
	}
}

// retire marks p replaced; drained closes when what runs through it ends.
func (p *pipeline) retire() {
	p.retired.Store(true)
	if p.active.Load() == 0 {
		p.drainOnce.Do(func() { close(p.drained) })
	}
}

func newPipeline(name string, e *Engine) *pipeline {
	return &pipeline{name: name, eng: e, router: route.NewRouter[*node, plugin.Emitter](0), warned: map[string]struct{}{}, drained: make(chan struct{})}
}

var builderPool = sync.Pool{New: func() any { return new([2]event.Builder) }}

// Emit runs the filters for s.Tag and hands the result to its output. It is
// safe for concurrent use.
func (p *pipeline) Emit(ctx context.Context, s event.Stream) error {
	rt := p.router.Lookup(s.Tag)
	if !rt.Matched {
		p.unmatched(s)
		return nil
	}
	if len(rt.Filters) > 0 {
		bufs := builderPool.Get().(*[2]event.Builder)
		defer builderPool.Put(bufs)
		free := 0 // the scratch builder that does not back s
		for _, f := range rt.Filters {
			b := &bufs[free]
			b.Reset()
			out, err := f.filter.Filter(ctx, s, b)
			if err != nil {
				f.logger(p.eng).Warn("filter failed; sending the events to @ERROR", "tag", s.Tag, "records", s.Len, "err", err)
				return p.eng.errorEntry.Emit(ctx, s)
			}
			if out.Len == 0 {
				return nil
			}
			if !sameData(out.Data, s.Data) {
				free = 1 - free
			}
			s = out
		}
	}
	return rt.Output.Emit(ctx, s)
}

func sameData(a, b []byte) bool { return len(a) > 0 && len(b) > 0 && &a[0] == &b[0] }

func (n *node) logger(e *Engine) *slog.Logger { return e.log.With("plugin_id", n.id, "type", n.typ) }

// maxWarnedTags bounds the set of tags logged as unmatched.
const maxWarnedTags = 1024

func (p *pipeline) unmatched(s event.Stream) {
	p.eng.Unmatched.Add(int64(s.Len))
	p.mu.Lock()
	_, seen := p.warned[s.Tag]
	if !seen {
		if len(p.warned) >= maxWarnedTags {
			clear(p.warned)
		}
		p.warned[s.Tag] = struct{}{}
	}
	p.mu.Unlock()
	if !seen {
		p.eng.log.Warn("no patterns matched", "tag", s.Tag, "label", p.name)
	}
}
