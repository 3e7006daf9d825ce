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
	started, err := e.start()
	if err != nil {
		e.closeAll(started)
		return err
	}
	inCtx, stopInputs := context.WithCancel(context.Background())
	var inputs sync.WaitGroup
	for _, n := range e.inputs {
		inputs.Add(1)
		go func(n *node) {
			defer inputs.Done()
			if err := n.p.(plugin.Input).Run(inCtx, n.emitTo); err != nil && inCtx.Err() == nil {
				n.logger(e).Error("input stopped", "err", err)
			}
		}(n)
	}
	e.state.Store(stateRunning)
	e.log.Info("sluice started", "inputs", len(e.inputs), "filters", len(e.filters), "outputs", len(e.outputs))
	<-ctx.Done()
	e.state.Store(stateStopping)

	e.log.Info("shutting down", "timeout", e.System.ShutdownTimeout.String())
	deadline, cancel := context.WithTimeout(context.Background(), e.System.ShutdownTimeout)
	defer cancel()
	stopInputs()
	waitGroup(deadline, &inputs)

	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		left int
	)
	for _, n := range e.outputs {
		if n.runtime == nil {
			continue
		}
		wg.Add(1)
		go func(n *node) {
			defer wg.Done()
			l := n.runtime.Stop(deadline)
			mu.Lock()
			left += l
			mu.Unlock()
		}(n)
	}
	wg.Wait()
	e.closeAll(started)
	e.state.Store(stateStopped)
	e.log.Info("sluice stopped", "undelivered_records", left, "unmatched_records", e.Unmatched.Load())
	return nil
}

func waitGroup(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// start runs Init in start order and returns the nodes it initialised.
func (e *Engine) start() ([]*node, error) {
	var started []*node
	order := make([]*node, 0, len(e.secondaries)+len(e.outputs)+len(e.filters)+len(e.inputs))
	order = append(order, e.secondaries...)
	order = append(order, e.outputs...)
	order = append(order, e.filters...)
	order = append(order, e.inputs...)
	ctx := context.Background()
	for _, n := range order {
		if in, ok := n.p.(plugin.Initer); ok {
			if err := in.Init(ctx); err != nil {
				return started, fmt.Errorf("%s %q (%s, %s): %w", n.kind, n.typ, n.id, n.pos, err)
			}
		}
		started = append(started, n)
		if n.runtime != nil {
			if err := n.runtime.Start(); err != nil {
				return started, fmt.Errorf("%s %q (%s, %s): buffer: %w", n.kind, n.typ, n.id, n.pos, err)
			}
		}
	}
	return started, nil
}

// closeAll closes in reverse start order. Runtimes that were started but
// not stopped (a failed start) are stopped first, without a drain.
func (e *Engine) closeAll(started []*node) {
	for i := len(started) - 1; i >= 0; i-- {
		n := started[i]
		ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		if n.runtime != nil {
			n.runtime.Stop(ctx) // a no-op when Run already drained it
		}
		if c, ok := n.p.(plugin.Closer); ok {
			if err := c.Close(ctx); err != nil {
				n.logger(e).Warn("close failed", "err", err)
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
