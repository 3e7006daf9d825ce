// Package engine builds the pipeline graph from a configuration tree and
// runs it.
//
// Build decodes and validates everything and opens nothing; `sluice check`
// stops after it. Run then starts the graph in dependency order and, when
// its context is cancelled (SIGINT/SIGTERM), stops it in this order:
//
//  1. Inputs: their context is cancelled. Each Run closes its listeners,
//     finishes the messages it is reading (acknowledging those accepted
//     into a buffer) and returns. Events stop arriving. Admin inputs
//     (prometheus, monitor_agent) keep serving, /readyz answering 503.
//  2. Buffered outputs: each runtime queues its staged chunks (when
//     flush_at_shutdown is on) and keeps flushing them, with retries, until
//     the buffer is empty or <system> shutdown_timeout has passed. Then the
//     writes in flight are cancelled, and a write that ignores that is
//     abandoned after output.StuckWriteGrace. What is left is logged and
//     counted (a memory buffer loses it, and Run's caller exits non-zero;
//     a file buffer keeps it for the next start).
//  3. Admin inputs stop.
//  4. Close: outputs in reverse build order (copy before its stores),
//     then filters, then inputs, each within closeTimeout.
//
// Start is the mirror image: outputs (Init, then flush workers), filters,
// inputs (Init binds sockets, so a busy port fails the start), then Run.
//
// Reload (SIGHUP, SIGUSR2) builds a new graph beside the running one and
// keeps every plugin whose section did not change (reload.go).
package engine

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"sync/atomic"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/metrics"
	"github.com/sluice-log/sluice/internal/output"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Options are the engine's inputs besides the configuration.
type Options struct {
	Logger   *slog.Logger
	Hostname string
	// FluentLog, when set, takes the records of Logger (built with its
	// Handler) into the pipeline: <label @FLUENT_LOG>, or <match fluent.**>.
	FluentLog *FluentLog
}

// Engine runs a pipeline graph and replaces it on reload. What outlives a
// reload lives here: the entries that inputs and plugins emit into, the
// engine-wide counters, the metrics handlers and the run state.
type Engine struct {
	// System is the <system> of the configuration given to Build.
	System System

	log      *slog.Logger
	hostname string

	mu      sync.Mutex            // serialises Reload with Run's start and shutdown
	g       atomic.Pointer[graph] // the graph being run
	entries map[string]*entry     // guarded by mu; "" is the root, else a label
	seq     int                   // guarded by mu; numbers plugins without @id, across reloads
	// removed maps the file buffer directory of each output a reload
	// removed to a channel closed once its drain has closed the buffer.
	removedMu sync.Mutex
	removed   map[string]chan struct{} // guarded by removedMu
	// retire counts the background work of reloads: drains of removed
	// outputs and the opening of buffers that wait for them. Shutdown
	// cancels retireCtx at its deadline and waits for retire.
	retire       sync.WaitGroup
	retireCtx    context.Context
	cancelRetire context.CancelFunc
	// rootEntry and errorEntry are entries[""] and entries["@ERROR"], for
	// reading without mu.
	rootEntry, errorEntry *entry
	degrade               atomic.Pointer[string] // why the last reload left the graph short of its config

	// Unmatched counts events whose tag no <match> takes.
	Unmatched atomic.Int64
	// ErrorEvents counts events sent to @ERROR without such a label.
	ErrorEvents atomic.Int64
	// Reloads and ReloadFailures count applied and rejected reloads.
	Reloads, ReloadFailures atomic.Int64

	flog       *FluentLog // nil: the log stays out of the pipeline
	notices    []config.Notice
	metrics    http.Handler
	pluginsAPI http.Handler
	state      atomic.Int32 // stateStarting, stateRunning, stateStopping, stateStopped
}

const (
	stateStarting int32 = iota
	stateRunning
	stateStopping
	stateStopped
)

// Build constructs the graph described by root without opening anything.
// The error lists every problem found, one per line, each with its
// file:line.
func Build(root *config.Element, opts Options) (*Engine, error) {
	if err := CheckPlugins(); err != nil {
		return nil, fmt.Errorf("plugin types registered wrongly (a bug in this build of Sluice):\n%w", err)
	}
	e := &Engine{log: opts.Logger, hostname: opts.Hostname, flog: opts.FluentLog, entries: map[string]*entry{}, removed: map[string]chan struct{}{}}
	e.retireCtx, e.cancelRetire = context.WithCancel(context.Background())
	e.metrics = metrics.Handler(e)
	e.pluginsAPI = metrics.PluginsAPI(e)
	if e.log == nil {
		e.log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if e.hostname == "" {
		e.hostname, _ = os.Hostname()
	}
	e.rootEntry, e.errorEntry = e.entry(""), e.entry("@ERROR")
	g, err := e.build(root, nil)
	if err != nil {
		return nil, err
	}
	e.System = g.system
	e.notices = dedupNotices(root.Notices())
	e.g.Store(g)
	e.point(g)
	return e, nil
}

// entry returns the stable entry of the root ("") or a label.
func (e *Engine) entry(name string) *entry {
	en, ok := e.entries[name]
	if !ok {
		en = &entry{name: name, eng: e}
		e.entries[name] = en
	}
	return en
}

// point puts g's pipelines behind the entries; a label g lacks leaves its
// entry empty.
func (e *Engine) point(g *graph) {
	for name, en := range e.entries {
		en.cur.Store(g.pipelines[name])
	}
	if e.flog != nil {
		_, label := g.pipelines[FluentLogLabel]
		e.flog.wanted.Store(label || g.fluentMatch)
	}
}

// Inputs returns the input plugins, in configuration order.
func (e *Engine) Inputs() []any {
	g := e.g.Load()
	out := make([]any, len(g.inputs))
	for i, n := range g.inputs {
		out[i] = n.p
	}
	return out
}

// OutputInfo describes one output for metrics and tests.
type OutputInfo struct {
	ID, Type string
	Plugin   any
	Runtime  *output.Runtime // nil for unbuffered outputs
}

// Outputs returns every output, nested stores included, in build order.
func (e *Engine) Outputs() []OutputInfo {
	g := e.g.Load()
	out := make([]OutputInfo, len(g.outputs))
	for i, n := range g.outputs {
		out[i] = OutputInfo{ID: n.id, Type: n.typ, Plugin: n.p, Runtime: n.runtime}
	}
	return out
}

// MemoryOverhead is what the process needs besides its inputs' budgets and
// its buffers: the runtime, the connections' base buffers, the outputs'
// per-write scratch and request bodies, and Go's heap between collections
// (docs/operations.md).
const MemoryOverhead = 160 << 20

// MemoryBound is the most memory the configuration lets the process hold:
// each bounded input's budget, each buffer's memory, and MemoryOverhead.
func (e *Engine) MemoryBound() int64 {
	g := e.g.Load()
	total := int64(MemoryOverhead)
	for _, n := range g.inputs {
		if m, ok := n.p.(plugin.MemoryBounded); ok {
			total += m.MemoryBound()
		}
	}
	for _, n := range g.outputs { // a <secondary> writes through its primary's buffer
		if n.runtime != nil {
			total += n.runtime.MemoryBound()
		}
	}
	return total
}

// Root returns the emitter for events that carry no @label, as an input
// without @label would use.
func (e *Engine) Root() plugin.Emitter { return e.rootEntry }

// Builder builds formatters and parsers as the running configuration
// would, for tests and tools.
func (e *Engine) Builder() plugin.Builder { return e.g.Load() }

// Label returns the emitter for <label name> of the running configuration.
func (e *Engine) Label(name string) (plugin.Emitter, error) {
	e.mu.Lock() // the graph's Label may add an entry
	defer e.mu.Unlock()
	return e.g.Load().Label(name)
}

// Notices lists the parameters the configuration given to Build holds that
// Sluice accepts and ignores, each with why, in file order.
func (e *Engine) Notices() []config.Notice { return e.notices }

func dedupNotices(in []config.Notice) []config.Notice {
	var out []config.Notice
	seen := map[config.Notice]bool{}
	for _, n := range in {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}
