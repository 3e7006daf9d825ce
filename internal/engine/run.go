package engine

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/sluice-log/sluice/internal/plugin"
)

// closeTimeout bounds each plugin's Close after the drain.
const closeTimeout = 5 * time.Second

// Run starts the graph, blocks until ctx is done, then shuts down in the
// order the package documentation gives. It returns an error only when
// the start fails.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	g := e.g.Load()
	started, err := e.open(g.nodes())
	if err != nil {
		e.mu.Unlock()
		e.closeNodes(started)
		e.state.Store(stateStopped)
		return err
	}
	var logDone sync.WaitGroup
	logStop := make(chan struct{})
	if e.flog != nil {
		// Sluice's own log is an input like any other: it starts with
		// them, and stops with them, before the drain.
		logDone.Add(1)
		go e.flog.deliver(e, logStop, &logDone)
	}
	for _, n := range g.inputs {
		e.runInput(n)
	}
	e.state.Store(stateRunning)
	e.mu.Unlock()
	e.log.Info("sluice started", "inputs", len(g.inputs), "filters", len(g.filters), "outputs", len(g.outputs))
	<-ctx.Done()

	e.mu.Lock() // a reload in progress finishes first
	defer e.mu.Unlock()
	e.state.Store(stateStopping)
	g = e.g.Load()
	e.log.Info("shutting down", "timeout", g.system.ShutdownTimeout.String())
	deadline, cancel := context.WithTimeout(context.Background(), g.system.ShutdownTimeout)
	defer cancel()
	// Outputs an earlier reload removed are still draining under their own
	// deadline; this one is the last word.
	stopRetiring := context.AfterFunc(deadline, e.cancelRetire)
	defer stopRetiring()
	var events, admin []*node
	for _, n := range g.inputs {
		if n.info.Admin {
			admin = append(admin, n)
		} else {
			events = append(events, n)
		}
	}
	e.stopInputs(deadline, events)
	close(logStop)
	logDone.Wait()
	left := e.drain(deadline, g.outputs)
	e.retire.Wait()
	// The metrics listener served /readyz 503 throughout the drain; it
	// goes now, whatever the deadline left.
	adminDeadline, cancelAdmin := context.WithTimeout(context.Background(), closeTimeout)
	e.stopInputs(adminDeadline, admin)
	cancelAdmin()
	e.closeNodes(g.nodes())
	e.state.Store(stateStopped)
	if lost := e.LostAtShutdown(); lost > 0 {
		e.log.Error("sluice stopped with records lost: memory buffers still held them at the shutdown deadline",
			"lost_records", lost, "undelivered_records", left, "unmatched_records", e.Unmatched.Load())
		return nil
	}
	e.log.Info("sluice stopped", "undelivered_records", left, "unmatched_records", e.Unmatched.Load())
	return nil
}

// runInput starts an input's Run, to stop with stopInputs.
func (e *Engine) runInput(n *node) {
	ctx, cancel := context.WithCancel(context.Background())
	n.stopInput, n.stopped = cancel, make(chan struct{})
	go func() {
		defer close(n.stopped)
		if err := n.input.Run(ctx, n.emitTo); err != nil && ctx.Err() == nil {
			n.logger(e).Error("input stopped", "err", err)
		}
	}()
}

// stopInputs cancels the inputs and waits, until deadline, for each to
// finish the messages it is reading.
func (e *Engine) stopInputs(deadline context.Context, inputs []*node) {
	for _, n := range inputs {
		if n.stopInput != nil {
			n.stopInput()
		}
	}
	for _, n := range inputs {
		if n.stopped == nil {
			continue
		}
		select {
		case <-n.stopped:
		case <-deadline.Done():
			n.logger(e).Warn("input still running at the shutdown deadline")
		}
	}
}

// drain stops the buffered outputs in parallel, each flushing until its
// buffer is empty or deadline, and returns the records left.
func (e *Engine) drain(deadline context.Context, outputs []*node) int {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		left int
	)
	for _, n := range outputs {
		if n.runtime == nil {
			continue
		}
		wg.Add(1)
		go func(n *node) {
			defer wg.Done()
			if n.opened != nil {
				<-n.opened // a reload is still opening it; never Stop during Start
			}
			l := n.runtime.Stop(deadline)
			mu.Lock()
			left += l
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	return left
}

// open runs Init, and starts buffers, in the order given (nodes() order:
// secondaries, outputs, filters, inputs) and returns the nodes it opened.
func (e *Engine) open(order []*node) ([]*node, error) {
	var started []*node
	ctx := context.Background()
	for _, n := range order {
		if in, ok := n.p.(plugin.Initer); ok {
			if err := in.Init(ctx); err != nil {
				return started, fmt.Errorf("%s %q (%s, %s): %w", n.kind, n.typ, n.id, n.pos, err)
			}
		}
		started = append(started, n)
		if n.runtime != nil && n.opened == nil {
			if err := n.runtime.Start(); err != nil {
				return started, fmt.Errorf("%s %q (%s, %s): buffer: %w", n.kind, n.typ, n.id, n.pos, err)
			}
		}
	}
	return started, nil
}

// closeNodes closes in reverse order. Runtimes that were started but not
// stopped (a failed start) are stopped first, without a drain.
func (e *Engine) closeNodes(nodes []*node) {
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		if n.runtime != nil {
			n.runtime.Stop(ctx) // a no-op when already drained
		}
		if c, ok := n.p.(plugin.Closer); ok {
			if err := c.Close(ctx); err != nil {
				n.logger(e).Warn("close failed", "err", err)
			}
		}
		if n.stopped != nil {
			// An input whose Run outlived the shutdown deadline: Close has
			// taken its sockets, so it ends now; wait within closeTimeout.
			select {
			case <-n.stopped:
			case <-ctx.Done():
				n.logger(e).Error("input still running after close; abandoning it", "timeout", closeTimeout.String())
			}
		}
		cancel()
	}
}

// ParseLevel maps Fluentd's log levels to slog levels.
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "trace":
		return slog.LevelDebug - 4, nil
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	case "fatal":
		return slog.LevelError + 4, nil
	}
	return 0, fmt.Errorf("unknown log level %q (trace, debug, info, warn, error, fatal)", s)
}

// levelHandler raises the minimum level of a handler (@log_level).
type levelHandler struct {
	min slog.Level
	h   slog.Handler
}

func (l *levelHandler) Enabled(ctx context.Context, lvl slog.Level) bool {
	return lvl >= l.min && l.h.Enabled(ctx, lvl)
}
func (l *levelHandler) Handle(ctx context.Context, r slog.Record) error { return l.h.Handle(ctx, r) }
func (l *levelHandler) WithAttrs(a []slog.Attr) slog.Handler {
	return &levelHandler{min: l.min, h: l.h.WithAttrs(a)}
}
func (l *levelHandler) WithGroup(g string) slog.Handler {
	return &levelHandler{min: l.min, h: l.h.WithGroup(g)}
}
