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
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/metrics"
	"github.com/sluice-log/sluice/internal/output"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/route"
)

// System is the <system> directive. Sluice accepts Fluentd's parameters;
// those that have no meaning in one Go process are accepted and ignored.
type System struct {
	Workers                    int           `conf:"workers"`
	RootDir                    string        `conf:"root_dir"`
	LogLevel                   string        `conf:"log_level" enum:"trace,debug,info,warn,error,fatal"`
	SuppressRepeatedStacktrace bool          `conf:"suppress_repeated_stacktrace"`
	EmitErrorLogInterval       time.Duration `conf:"emit_error_log_interval"`
	SuppressConfigDump         bool          `conf:"suppress_config_dump"`
	WithoutSource              bool          `conf:"without_source"`
	ProcessName                string        `conf:"process_name"`
	IgnoreRepeatedLogInterval  time.Duration `conf:"ignore_repeated_log_interval"`
	IgnoreSameLogInterval      time.Duration `conf:"ignore_same_log_interval"`
	EnableMsgpackTimeSupport   bool          `conf:"enable_msgpack_time_support"`
	FilePermission             string        `conf:"file_permission"`
	DirPermission              string        `conf:"dir_permission"`
	// ShutdownTimeout bounds the drain at stop; the default stays below
	// the 30 s that ECS and Kubernetes wait before SIGKILL.
	ShutdownTimeout time.Duration `conf:"shutdown_timeout"`
	// RPCEndpoint (host:port) serves Fluentd's HTTP RPC: the signals'
	// actions over HTTP. Off when empty.
	RPCEndpoint string     `conf:"rpc_endpoint"`
	Log         LogSection `section:"log"`
}

// LogSection is <system><log>.
type LogSection struct {
	Format     string `conf:"format" enum:"text,json"`
	TimeFormat string `conf:"time_format"`
}

// DefaultShutdownTimeout is <system> shutdown_timeout's default.
const DefaultShutdownTimeout = 25 * time.Second

// Options are the engine's inputs besides the configuration.
type Options struct {
	Logger   *slog.Logger
	Hostname string
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

	metrics    http.Handler
	pluginsAPI http.Handler
	state      atomic.Int32 // stateStarting, stateRunning, stateStopping, stateStopped
}

// graph is the pipeline one configuration describes. It is built whole and
// never changed after; a reload builds another.
type graph struct {
	eng     *Engine
	system  System
	inputs  []*node
	filters []*node
	outputs []*node // build order: nested stores come before their copy
	// secondaries are the <secondary> outputs; they start before and
	// close after their primaries.
	secondaries []*node
	pipelines   map[string]*pipeline // "" is the root
	ids         map[string]config.Pos
	errs        []error
	current     string // the label being built ("" for the root)

	// prev holds the running graph's nodes by key while a reload builds:
	// a node whose key is there is taken over instead of built anew.
	prev    map[string]*node
	keySeen map[string]int
	parents []string // keys of the outputs being configured (copy's stores)
}

const (
	stateStarting int32 = iota
	stateRunning
	stateStopping
	stateStopped
)

// Live implements plugin.Health.
func (e *Engine) Live() error {
	if e.state.Load() == stateStopped {
		return errors.New("stopped")
	}
	return nil
}

// Ready implements plugin.Health.
func (e *Engine) Ready(highWater float64) error {
	switch e.state.Load() {
	case stateStarting:
		return errors.New("starting")
	case stateStopping, stateStopped:
		return errors.New("shutting down")
	}
	if why := e.degrade.Load(); why != nil {
		return errors.New(*why)
	}
	for _, n := range e.g.Load().outputs {
		if n.runtime == nil {
			continue
		}
		st := n.runtime.Status()
		if st.WriteError != "" {
			return fmt.Errorf("output %s: the buffer cannot take events: %s", n.id, st.WriteError)
		}
		if fill := 1 - st.AvailableSpaceRatio/100; fill > highWater {
			return fmt.Errorf("output %s: buffer %.0f%% full (high-water mark %.0f%%)", n.id, 100*fill, 100*highWater)
		}
	}
	return nil
}

// Flush queues every staged chunk of every buffered output for writing
// now (SIGUSR1).
func (e *Engine) Flush() {
	for _, rt := range e.g.Load().runtimes() {
		rt.Flush()
	}
}

// runtimes returns the buffer runtimes of the graph's outputs and
// secondaries.
func (g *graph) runtimes() []*output.Runtime {
	var out []*output.Runtime
	for _, n := range append(append([]*node(nil), g.outputs...), g.secondaries...) {
		if n.runtime != nil {
			out = append(out, n.runtime)
		}
	}
	return out
}

// Pending returns the chunks and bytes the buffered outputs hold, staged,
// queued or in flight.
func (e *Engine) Pending() (chunks int, bytes int64) {
	for _, rt := range e.g.Load().runtimes() {
		c, b := rt.Pending()
		chunks, bytes = chunks+c, bytes+b
	}
	return chunks, bytes
}

// LostAtShutdown returns the records memory buffers still held when the
// last shutdown's deadline passed: counted as dropped, gone with the
// process.
func (e *Engine) LostAtShutdown() int64 {
	var n int64
	for _, rt := range e.g.Load().runtimes() {
		n += rt.Stats.Dropped[output.DropShutdown].Load()
	}
	return n
}

// MetricOutputs implements metrics.Source: the buffered outputs.
func (e *Engine) MetricOutputs() []metrics.Output {
	var out []metrics.Output
	for _, n := range e.g.Load().outputs {
		if n.runtime != nil {
			out = append(out, metrics.Output{ID: n.id, Type: n.typ, Stats: &n.runtime.Stats, Status: n.runtime.Status})
		}
	}
	return out
}

// MetricPlugins implements metrics.Source: the plugins with counters of
// their own.
func (e *Engine) MetricPlugins() []metrics.Plugin {
	var out []metrics.Plugin
	g := e.g.Load()
	for kind, nodes := range map[string][]*node{"input": g.inputs, "output": g.outputs} {
		for _, n := range nodes {
			if m, ok := n.p.(plugin.Measured); ok {
				out = append(out, metrics.Plugin{Kind: kind, ID: n.id, Type: n.typ, Measure: m.Measure})
			}
		}
	}
	return out
}

// MonitorPlugins implements metrics.Source: every input, filter and
// output, in configuration order, for monitor_agent.
func (e *Engine) MonitorPlugins() []metrics.PluginInfo {
	var out []metrics.PluginInfo
	g := e.g.Load()
	for _, group := range []struct {
		category string
		nodes    []*node
	}{{"input", g.inputs}, {"filter", g.filters}, {"output", g.outputs}} {
		for _, n := range group.nodes {
			pi := metrics.PluginInfo{ID: n.id, Category: group.category, Type: n.typ, Config: map[string]string{}}
			if n.el != nil {
				for _, p := range n.el.Params {
					pi.Config[p.Key] = p.Value
				}
			}
			if n.runtime != nil {
				pi.Output = &metrics.Output{ID: n.id, Type: n.typ, Stats: &n.runtime.Stats, Status: n.runtime.Status}
			}
			out = append(out, pi)
		}
	}
	return out
}

// MetricMonitors implements metrics.Source: the sources that ask for
// fluent-plugin-prometheus's monitor series.
func (e *Engine) MetricMonitors() []metrics.Monitor {
	var out []metrics.Monitor
	for _, n := range e.g.Load().inputs {
		if m, ok := n.p.(plugin.SeriesMonitor); ok {
			family, labels := m.Series()
			out = append(out, metrics.Monitor{Family: family, Labels: labels})
		}
	}
	return out
}

// MetricCounters implements metrics.Source.
func (e *Engine) MetricCounters() []metrics.Counter {
	return []metrics.Counter{
		{Name: "sluice_unmatched_events_total", Help: "Events whose tag no <match> takes (dropped, as in Fluentd).",
			Value: func() float64 { return float64(e.Unmatched.Load()) }},
		{Name: "sluice_error_events_dropped_total", Help: "Events sent to @ERROR with no <label @ERROR> to take them.",
			Value: func() float64 { return float64(e.ErrorEvents.Load()) }},
		{Name: "sluice_config_reloads_total", Help: "Configuration reloads applied (SIGHUP, SIGUSR2).",
			Value: func() float64 { return float64(e.Reloads.Load()) }},
		{Name: "sluice_config_reload_failures_total", Help: "Configuration reloads rejected; the running configuration stayed.",
			Value: func() float64 { return float64(e.ReloadFailures.Load()) }},
	}
}

type node struct {
	id, typ string
	kind    plugin.Kind
	pos     config.Pos
	// key names the node's section, its place (label, enclosing copy) and
	// what else it depends on; a reload keeps a node whose key is unchanged.
	key       string
	p         any
	el        *config.Element // the plugin's section, for monitor_agent's config
	runtime   *output.Runtime // buffered outputs only
	secondary *node           // the <secondary> of a buffered output
	emitTo    plugin.Emitter  // inputs: the entry they feed

	// opened is closed once the runtime has started, when a reload had to
	// wait for a removed output to release the same file buffer first;
	// openErr is set before if that start failed. nil: started with the
	// graph.
	opened  chan struct{}
	openErr error

	stopInput context.CancelFunc // inputs, while running
	stopped   chan struct{}      // inputs: closed when Run has returned
}

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
	if n.runtime != nil {
		return n.runtime.Emit(ctx, s)
	}
	return n.p.(plugin.SyncOutput).Process(ctx, s)
}

// Build constructs the graph described by root without opening anything.
// The error lists every problem found, one per line, each with its
// file:line.
func Build(root *config.Element, opts Options) (*Engine, error) {
	e := &Engine{log: opts.Logger, hostname: opts.Hostname, entries: map[string]*entry{}, removed: map[string]chan struct{}{}}
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
}

// build constructs a graph. With prev (a reload), nodes whose key prev
// also has are taken from prev, running, instead of the ones just built.
func (e *Engine) build(root *config.Element, prev *graph) (*graph, error) {
	g := &graph{eng: e, pipelines: map[string]*pipeline{}, ids: map[string]config.Pos{}, keySeen: map[string]int{}}
	if prev != nil {
		g.prev = map[string]*node{}
		for _, n := range prev.nodes() {
			g.prev[n.key] = n
		}
	}
	g.system = System{ShutdownTimeout: DefaultShutdownTimeout, LogLevel: "info", Log: LogSection{Format: "text"}}
	systems := root.Sections("system")
	if len(systems) > 1 {
		g.fail(config.Errorf(systems[1].Pos, "only one <system> is allowed"))
	}
	if len(systems) > 0 {
		if err := config.Decode(systems[0], &g.system); err != nil {
			g.fail(err)
		}
	}

	// Labels exist before anything refers to them.
	g.pipelines[""] = newPipeline("", e)
	labelSecs := root.Sections("label")
	for _, l := range labelSecs {
		if len(l.Arg) < 2 || l.Arg[0] != '@' {
			g.fail(config.Errorf(l.Pos, "<label> needs a name starting with '@', got %q", l.Arg))
			continue
		}
		if _, dup := g.pipelines[l.Arg]; dup {
			g.fail(config.Errorf(l.Pos, "label %s is defined twice", l.Arg))
			continue
		}
		g.pipelines[l.Arg] = newPipeline(l.Arg, e)
	}

	g.buildRules(root, "")
	for _, l := range labelSecs {
		if _, ok := g.pipelines[l.Arg]; ok {
			g.buildRules(l, l.Arg)
		}
	}
	for _, src := range root.Sections("source") {
		g.buildInput(src)
	}
	for _, el := range root.Elements {
		switch el.Name {
		case "system", "source", "filter", "match", "label":
		case "worker":
			g.fail(config.Errorf(el.Pos, "<worker> sections are not supported: Sluice runs one process that uses every core"))
			el.MarkAllUsed()
		default:
			g.fail(config.Errorf(el.Pos, "unknown directive <%s>", el.Name))
			el.MarkAllUsed()
		}
	}
	for _, err := range root.Unused() {
		g.fail(err)
	}
	if len(g.errs) > 0 {
		sort.SliceStable(g.errs, func(i, j int) bool { return errPos(g.errs[i]).Less(errPos(g.errs[j])) })
		return nil, errors.Join(g.errs...)
	}
	g.prev, g.keySeen, g.parents = nil, nil, nil
	return g, nil
}

// nodes returns every node of the graph.
func (g *graph) nodes() []*node {
	all := make([]*node, 0, len(g.inputs)+len(g.filters)+len(g.outputs)+len(g.secondaries))
	all = append(all, g.secondaries...)
	all = append(all, g.outputs...)
	all = append(all, g.filters...)
	return append(all, g.inputs...)
}

func errPos(err error) config.Pos {
	var ce *config.Error
	if errors.As(err, &ce) {
		return ce.Pos
	}
	return config.Pos{}
}

func (g *graph) fail(err error) { g.errs = append(g.errs, err) }

func (g *graph) buildRules(parent *config.Element, label string) {
	p := g.pipelines[label]
	g.current = label
	defer func() { g.current = "" }()
	for _, el := range parent.Elements {
		switch el.Name {
		case "filter", "match":
		case "label", "system", "source":
			if parent.Name == "label" {
				g.fail(config.Errorf(el.Pos, "<%s> is not allowed inside <label>", el.Name))
				el.MarkAllUsed()
			}
			continue
		default:
			if parent.Name == "label" {
				g.fail(config.Errorf(el.Pos, "unknown directive <%s> in <label %s>", el.Name, parent.Arg))
				el.MarkAllUsed()
			}
			continue
		}
		el.MarkUsed()
		pat, err := route.Compile(el.Arg)
		if err != nil {
			g.fail(config.Errorf(el.Pos, "<%s %s>: %v", el.Name, el.Arg, err))
			el.MarkAllUsed()
			continue
		}
		if el.Name == "filter" {
			if n := g.newNode(plugin.KindFilter, el); n != nil {
				g.filters = append(g.filters, n)
				p.router.AddFilter(pat, n)
			}
			continue
		}
		if em, err := g.Output(el); err == nil {
			p.router.AddMatch(pat, em)
		} else if !errors.Is(err, errReported) {
			g.fail(err)
		}
	}
}

func (g *graph) buildInput(el *config.Element) {
	target := g.eng.entry("")
	if p := el.Param("@label"); p != nil {
		if _, ok := g.pipelines[p.Value]; !ok {
			g.fail(config.Errorf(p.Pos, "@label %s: no such <label>", p.Value))
		} else {
			target = g.eng.entry(p.Value)
		}
	}
	if n := g.newNode(plugin.KindInput, el); n != nil {
		n.emitTo = target
		g.inputs = append(g.inputs, n)
	}
}

// errReported marks an error already added to g.errs.
var errReported = errors.New("reported")

// Output implements plugin.Builder: it builds an output from a <match> or
// <store> element, with its buffer, and returns the emitter feeding it.
func (g *graph) Output(el *config.Element) (plugin.Emitter, error) {
	n := g.newNode(plugin.KindOutput, el)
	if n == nil {
		return nil, errReported
	}
	return n, nil
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

// Label implements plugin.Builder.
func (g *graph) Label(name string) (plugin.Emitter, error) {
	if _, ok := g.pipelines[name]; ok {
		return g.eng.entry(name), nil
	}
	return nil, fmt.Errorf("no such <label %s>", name)
}

// Formatter implements plugin.Builder.
func (g *graph) Formatter(sec *config.Element, defaultType string) (plugin.Formatter, error) {
	p, err := g.subPlugin(plugin.KindFormatter, sec, defaultType)
	if err != nil {
		return nil, err
	}
	f, ok := p.(plugin.Formatter)
	if !ok {
		return nil, fmt.Errorf("%T is not a formatter", p)
	}
	return f, nil
}

// Parser implements plugin.Builder.
func (g *graph) Parser(sec *config.Element, defaultType string) (plugin.Parser, error) {
	p, err := g.subPlugin(plugin.KindParser, sec, defaultType)
	if err != nil {
		return nil, err
	}
	pp, ok := p.(plugin.Parser)
	if !ok {
		return nil, fmt.Errorf("%T is not a parser", p)
	}
	return pp, nil
}

// subPlugin builds a <format> or <parse> plugin: its @type (or
// defaultType), decoded and configured.
func (g *graph) subPlugin(kind plugin.Kind, sec *config.Element, defaultType string) (any, error) {
	typ := defaultType
	if sec != nil {
		sec.MarkUsed()
		if t, ok := sec.Get("@type"); ok {
			typ = t
		}
	}
	info, ok := plugin.Lookup(kind, typ)
	if !ok {
		if sec != nil {
			sec.MarkAllUsed()
			return nil, config.Errorf(sec.Pos, "unknown plugin type %q (%s)", typ, kind)
		}
		return nil, fmt.Errorf("unknown plugin type %q (%s)", typ, kind)
	}
	p := info.New()
	if sec != nil {
		if err := config.Decode(sec, p); err != nil {
			return nil, err
		}
	}
	if c, ok := p.(plugin.Configurer); ok {
		if err := c.Configure(&plugin.Context{Type: typ, Element: sec, Logger: g.eng.log, Hostname: g.eng.hostname, Build: g}); err != nil {
			var ce *config.Error
			if sec != nil && !errors.As(err, &ce) {
				return nil, config.Errorf(sec.Pos, "%s %q: %v", kind, typ, err)
			}
			return nil, err
		}
	}
	return p, nil
}

// BufferDefaulter is implemented by outputs whose <buffer> defaults differ
// from Fluentd's generic ones (out_file chunks by time, one day).
type BufferDefaulter interface {
	BufferDefaults(*output.BufferConfig)
}

// nodeKey names a section by what it configures and where: its content, the
// label it routes in, the output it is nested in, and for outputs the
// root_dir their buffers live under. Identical sections side by side are
// told apart by their order.
func (g *graph) nodeKey(kind plugin.Kind, el *config.Element) string {
	key := string(kind) + "|" + el.Fingerprint()
	if kind != plugin.KindInput {
		key += "|label=" + g.current
	}
	if kind == plugin.KindOutput {
		key += "|root_dir=" + g.system.RootDir
		if len(g.parents) > 0 {
			key += "|in=" + g.parents[len(g.parents)-1]
		}
	}
	g.keySeen[key]++
	if n := g.keySeen[key]; n > 1 {
		key += "|#" + strconv.Itoa(n)
	}
	return key
}

// newNode builds one plugin. It reports its own errors and returns nil on
// failure. During a reload it returns the running node instead when that
// node's key is the same: the fresh one only served to validate.
func (g *graph) newNode(kind plugin.Kind, el *config.Element) *node {
	e := g.eng
	el.MarkUsed()
	typ, ok := el.Get("@type")
	if !ok {
		if typ, ok = el.Get("type"); ok {
			e.log.Warn("'type' is deprecated; use '@type'", "pos", el.Pos.String())
		}
	}
	if !ok || typ == "" {
		g.fail(config.Errorf(el.Pos, "<%s %s> has no @type", el.Name, el.Arg))
		el.MarkAllUsed()
		return nil
	}
	info, ok := plugin.Lookup(kind, typ)
	if !ok {
		g.fail(config.Errorf(el.Pos, "unknown plugin type %q (%s)", typ, kind))
		el.MarkAllUsed()
		return nil
	}
	n := &node{typ: typ, kind: kind, pos: el.Pos, p: info.New(), el: el, key: g.nodeKey(kind, el)}
	if p := el.Param("@id"); p != nil {
		if prev, dup := g.ids[p.Value]; dup {
			g.fail(config.Errorf(p.Pos, "@id %q is already used at %s", p.Value, prev))
		}
		g.ids[p.Value] = p.Pos
		n.id = p.Value
	} else {
		n.id = fmt.Sprintf("object:%x", e.seq)
		e.seq++
	}
	logger := e.log.With("plugin_id", n.id, "type", typ)
	if p := el.Param("@log_level"); p != nil {
		lvl, err := ParseLevel(p.Value)
		if err != nil {
			g.fail(config.Errorf(p.Pos, "@log_level: %v", err))
		} else {
			logger = slog.New(&levelHandler{min: lvl, h: logger.Handler()})
		}
	}
	if err := config.Decode(el, n.p); err != nil {
		g.fail(err)
		el.MarkAllUsed()
		return nil
	}
	ctx := &plugin.Context{ID: n.id, Type: typ, Element: el, Logger: logger, Hostname: e.hostname, Build: g,
		ErrorOut: e.errorEntry, Metrics: e.metrics, Health: e, PluginsAPI: e.pluginsAPI}
	if kind != plugin.KindInput {
		ctx.Reemit = e.entry(g.current)
	}
	if kind == plugin.KindOutput {
		if err := g.attachBuffer(n, el, logger, ctx); err != nil {
			g.fail(err)
			el.MarkAllUsed()
			return nil
		}
	}
	if c, ok := n.p.(plugin.Configurer); ok {
		g.parents = append(g.parents, n.key)
		err := c.Configure(ctx)
		g.parents = g.parents[:len(g.parents)-1]
		if err != nil {
			var ce *config.Error
			if !errors.As(err, &ce) {
				err = config.Errorf(el.Pos, "%s %q: %v", kind, typ, err)
			}
			g.fail(err)
			el.MarkAllUsed()
			return nil
		}
	}
	if running, ok := g.prev[n.key]; ok {
		n = running
	}
	if kind == plugin.KindOutput {
		g.outputs = append(g.outputs, n)
		if n.secondary != nil {
			g.secondaries = append(g.secondaries, n.secondary)
		}
	}
	return n
}

func (g *graph) attachBuffer(n *node, el *config.Element, logger *slog.Logger, ctx *plugin.Context) error {
	bo, buffered := n.p.(plugin.BufferedOutput)
	_, isSync := n.p.(plugin.SyncOutput)
	secs := el.Sections("buffer")
	if len(secs) > 1 {
		return config.Errorf(secs[1].Pos, "only one <buffer> is allowed")
	}
	if !buffered {
		if !isSync {
			return config.Errorf(el.Pos, "output %q is neither buffered nor synchronous", n.typ)
		}
		if len(secs) > 0 {
			return config.Errorf(secs[0].Pos, "output %q does not use a <buffer>", n.typ)
		}
		return nil
	}
	if isSync && len(secs) == 0 {
		return nil // stdout, null: unbuffered unless asked
	}
	typ := "memory"
	if len(secs) > 0 {
		if t, ok := secs[0].Get("@type"); ok {
			typ = t
		}
	}
	cfg := output.DefaultBufferConfig(typ)
	if d, ok := n.p.(BufferDefaulter); ok {
		d.BufferDefaults(&cfg)
	}
	pos := el.Pos
	if len(secs) > 0 {
		pos = secs[0].Pos
		if err := config.Decode(secs[0], &cfg); err != nil {
			return err
		}
	}
	var secondary plugin.BufferedOutput
	if secs := el.Sections("secondary"); len(secs) > 0 {
		keys, err := buffer.ParseChunkKeys(cfg.ChunkKeys)
		if err != nil {
			return config.Errorf(pos, "<buffer>: %v", err)
		}
		if secondary, err = g.secondary(secs, n, keys, logger); err != nil {
			return err
		}
	}
	rt, err := output.New(n.id, bo, cfg, output.Options{RootDir: g.system.RootDir, Secondary: secondary, Logger: logger})
	if err != nil {
		return config.Errorf(pos, "<buffer>: %v", err)
	}
	n.runtime = rt
	ctx.ChunkKeys = rt.Keys()
	ctx.Location = rt.Location()
	ctx.Timekey = rt.Timekey()
	return nil
}

// secondary builds the output of a <secondary> section: a buffered output
// whose Write takes the primary's chunks (usually secondary_file).
func (g *graph) secondary(secs []*config.Element, n *node, keys buffer.ChunkKeys, logger *slog.Logger) (plugin.BufferedOutput, error) {
	if len(secs) > 1 {
		return nil, config.Errorf(secs[1].Pos, "only one <secondary> is allowed")
	}
	sec := secs[0]
	sec.MarkUsed()
	typ, ok := sec.Get("@type")
	if !ok {
		return nil, config.Errorf(sec.Pos, "<secondary> has no @type")
	}
	info, ok := plugin.Lookup(plugin.KindOutput, typ)
	if !ok {
		sec.MarkAllUsed()
		return nil, config.Errorf(sec.Pos, "unknown plugin type %q (output)", typ)
	}
	p := info.New()
	bo, ok := p.(plugin.BufferedOutput)
	if !ok {
		return nil, config.Errorf(sec.Pos, "<secondary> @type %s cannot take chunks", typ)
	}
	if err := config.Decode(sec, p); err != nil {
		return nil, err
	}
	if c, ok := p.(plugin.Configurer); ok {
		ctx := &plugin.Context{ID: n.id + ".secondary", Type: typ, Element: sec, Logger: logger.With("secondary", typ),
			Hostname: g.eng.hostname, Build: g, ErrorOut: g.eng.errorEntry, ChunkKeys: keys}
		if err := c.Configure(ctx); err != nil {
			return nil, config.Errorf(sec.Pos, "<secondary>: %v", err)
		}
	}
	n.secondary = &node{id: n.id + ".secondary", typ: typ, kind: plugin.KindOutput, pos: sec.Pos, p: p, key: n.key + "|secondary"}
	return bo, nil
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
			p.active.Add(-1)
			continue
		}
		err := p.Emit(ctx, s)
		p.active.Add(-1)
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

	mu     sync.Mutex
	warned map[string]struct{} // guarded by mu; tags already logged as unmatched
}

func newPipeline(name string, e *Engine) *pipeline {
	return &pipeline{name: name, eng: e, router: route.NewRouter[*node, plugin.Emitter](0), warned: map[string]struct{}{}}
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
			out, err := f.p.(plugin.Filter).Filter(ctx, s, b)
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
