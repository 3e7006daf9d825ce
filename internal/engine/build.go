package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/inject"
	"github.com/sluice-log/sluice/internal/output"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/route"
)

// graph is the pipeline one configuration describes. It is built whole and
// never changed after; a reload builds another.
type graph struct {
	eng     *Engine
	system  System
	perm    buffer.Perm // <system> file_permission and dir_permission
	inputs  []*node
	filters []*node
	outputs []*node // build order: nested stores come before their copy
	// secondaries are the <secondary> outputs; they start before and
	// close after their primaries.
	secondaries []*node
	pipelines   map[string]*pipeline // "" is the root
	// fluentMatch: a top-level <match> names fluent.* tags, so Sluice's
	// own log goes to the top level when there is no <label @FLUENT_LOG>.
	fluentMatch bool
	ids         map[string]config.Pos
	errs        []error
	current     string // the label being built ("" for the root)

	// prev holds the running graph's nodes by key while a reload builds:
	// a node whose key is there is taken over instead of built anew.
	prev    map[string]*node
	keySeen map[string]int
	parents []string // keys of the outputs being configured (copy's stores)
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
	g.system = DefaultSystem()
	systems := root.Sections("system")
	if len(systems) > 1 {
		g.fail(config.Errorf(systems[1].Pos, "only one <system> is allowed"))
	}
	if len(systems) > 0 {
		if err := config.Decode(systems[0], &g.system); err != nil {
			g.fail(err)
		}
	}
	var err error
	if g.perm, err = g.system.Perm(); err != nil {
		g.fail(config.Errorf(systems[0].Pos, "<system> %v", err))
	}

	if err := expandWorkers(root, g.system.Workers); err != nil {
		g.fail(err)
	}

	// Labels exist before anything refers to them.
	g.pipelines[""] = newPipeline("", e)
	labelSecs := root.Sections("label")
	for _, l := range labelSecs {
		switch l.Arg {
		case "":
			g.fail(config.Errorf(l.Pos, "<label> needs a name"))
			continue
		case rootLabel:
			g.fail(config.Errorf(l.Pos, "<label @ROOT> cannot be defined: @ROOT names the top level, where sources without @label send"))
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
	g.portConflicts()
	for _, el := range root.Elements {
		switch el.Name {
		case "system", "source", "filter", "match", "label":
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

// fail records err, each error of a joined one apart, so that they sort
// by position.
func (g *graph) fail(err error) {
	if j, ok := err.(interface{ Unwrap() []error }); ok { //nolint:errorlint // taking a joined error apart
		for _, e := range j.Unwrap() {
			g.fail(e)
		}
		return
	}
	if err != errReported { //nolint:errorlint // the sentinel itself: a nested plugin reported its own
		g.errs = append(g.errs, err)
	}
}

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
		arg := el.Arg
		if strings.TrimSpace(arg) == "" {
			arg = "**" // Fluentd's default pattern
		}
		if el.Name == "match" && label == "" && strings.Contains(arg, "fluent.") {
			g.fluentMatch = true
		}
		pat, err := route.Compile(arg)
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
		if name := labelName(p.Value); g.pipelines[name] == nil {
			g.fail(config.Errorf(p.Pos, "@label %s: no such <label>", p.Value))
		} else {
			target = g.eng.entry(name)
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

// Label implements plugin.Builder.
func (g *graph) Label(name string) (plugin.Emitter, error) {
	name = labelName(name)
	if _, ok := g.pipelines[name]; ok {
		return g.eng.entry(name), nil
	}
	return nil, fmt.Errorf("no such <label %s>", name)
}

// node is one plugin of the graph with what the engine resolved about it
// at build: its kind's interface, typed once, and its Info.
type node struct {
	id, typ string
	kind    plugin.Kind
	info    plugin.Info
	// declared are the parameters the type takes in its own section.
	declared map[string]bool
	pos      config.Pos
	// key names the node's section, its place (label, enclosing copy) and
	// what else it depends on; a reload keeps a node whose key is unchanged.
	key string
	p   any
	el  *config.Element // the plugin's section, for monitor_agent's config

	input     plugin.Input          // inputs
	filter    plugin.Filter         // filters
	sync      plugin.SyncOutput     // outputs that take streams as they come
	buffered  plugin.BufferedOutput // outputs that take chunks
	runtime   *output.Runtime       // buffered outputs with a buffer
	inject    *inject.Injector      // outputs with <inject>: fields added before the output
	secondary *node                 // the <secondary> of a buffered output
	emitTo    plugin.Emitter        // inputs: the entry they feed

	// opened is closed once the runtime has started, when a reload had to
	// wait for a removed output to release the same file buffer first;
	// openErr is set before if that start failed. nil: started with the
	// graph.
	opened  chan struct{}
	openErr error

	stopInput context.CancelFunc // inputs, while running
	stopped   chan struct{}      // inputs: closed when Run has returned
}

// Formatter implements plugin.Builder.
func (g *graph) Formatter(sec *config.Element, defaultType string) (plugin.Formatter, error) {
	n, err := g.construct(plugin.KindFormatter, sec, how{defaultType: defaultType})
	if err != nil {
		return nil, err
	}
	return n.p.(plugin.Formatter), nil // Register checked the kind
}

// Parser implements plugin.Builder.
func (g *graph) Parser(sec *config.Element, defaultType string) (plugin.Parser, error) {
	n, err := g.construct(plugin.KindParser, sec, how{defaultType: defaultType})
	if err != nil {
		return nil, err
	}
	return n.p.(plugin.Parser), nil
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

// newNode builds a <source>, <filter> or <match> (or <store>) plugin with
// an @id of its own. It reports its own errors and returns nil on failure.
// During a reload it returns the running node instead when that node's key
// is the same: the fresh one only served to validate.
func (g *graph) newNode(kind plugin.Kind, el *config.Element) *node {
	e := g.eng
	id := ""
	if p := el.Param("@id"); p != nil {
		if prev, dup := g.ids[p.Value]; dup {
			g.fail(config.Errorf(p.Pos, "@id %q is already used at %s", p.Value, prev))
		}
		g.ids[p.Value] = p.Pos
		id = p.Value
	} else {
		id = fmt.Sprintf("object:%x", e.seq)
		e.seq++
	}
	n, err := g.construct(kind, el, how{id: id})
	if err != nil {
		g.fail(err)
		el.MarkUnread() // what was decoded still reports its unknown parameters
		return nil
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

// how says what construct needs beyond the section.
type how struct {
	defaultType string // @type when the section names none (or is nil)
	id          string // the plugin's @id; "" for <format> and <parse>
	// chunksOf is set for a <secondary>: its primary's chunk keys. The
	// plugin must take chunks, and has no buffer of its own.
	chunksOf *buffer.ChunkKeys
}

// construct is the one way every plugin is built: <source>, <filter>,
// <match>, <store>, <secondary>, <format> and <parse>. It finds the
// section's @type, decodes the section into a fresh value, gives an
// output its buffer, and configures it, with the same context for all.
// Errors carry the section's position.
func (g *graph) construct(kind plugin.Kind, sec *config.Element, h how) (*node, error) {
	e := g.eng
	typ, id, logger := h.defaultType, h.id, e.log
	pos := config.Pos{}
	if sec != nil {
		sec.MarkUsed()
		pos = sec.Pos
		if t, ok := sec.Get("@type"); ok {
			typ = t
		} else if t, ok := sec.Get("type"); ok {
			typ = t
			sec.AddNotice(sec.Param("type").Pos, "'type' is deprecated; use '@type' (it still works)")
		}
	}
	fail := func(format string, args ...any) error {
		if sec == nil {
			return fmt.Errorf(format, args...)
		}
		sec.MarkAllUsed()
		return config.Errorf(pos, format, args...)
	}
	if typ == "" {
		if sec == nil {
			return nil, fmt.Errorf("no @type for the %s", kind)
		}
		return nil, fail("<%s %s> has no @type", sec.Name, sec.Arg)
	}
	info, ok := plugin.Lookup(kind, typ)
	if !ok {
		return nil, fail("unknown plugin type %q (%s)", typ, kind)
	}
	n := &node{id: id, typ: typ, kind: kind, info: info, pos: pos, p: info.New(), el: sec}
	n.input, _ = n.p.(plugin.Input)
	n.filter, _ = n.p.(plugin.Filter)
	n.sync, _ = n.p.(plugin.SyncOutput)
	n.buffered, _ = n.p.(plugin.BufferedOutput)
	if h.chunksOf != nil && n.buffered == nil {
		return nil, fail("<secondary> @type %s cannot take chunks", typ)
	}
	if sec != nil {
		n.declared = declaredParams(info) // what the compatibility layer must leave to the plugin
		if id != "" && h.chunksOf == nil {
			n.key = g.nodeKey(kind, sec)
		}
		if id != "" {
			logger = logger.With("plugin_id", id, "type", typ)
		}
		p := sec.Param("@log_level")
		if p == nil && !n.declared["log_level"] {
			p = sec.Param("log_level") // v0.12's spelling
		}
		if p != nil {
			lvl, err := ParseLevel(p.Value)
			if err != nil {
				return nil, config.Errorf(p.Pos, "@log_level: %v", err)
			}
			logger = slog.New(&levelHandler{min: lvl, h: logger.Handler()})
		}
	}
	// Decoding and the buffer are checked both before giving up, so that
	// one run of sluice check reports the problems of both.
	var decodeErr error
	if sec != nil {
		v012Sections(sec, info, n.declared)
		decodeErr = config.Decode(sec, n.p)
	}
	ctx := &plugin.Context{ID: id, Type: typ, Element: sec, Logger: logger, Hostname: e.hostname, Build: g,
		ErrorOut: e.errorEntry, Host: e, Perm: g.perm}
	if kind != plugin.KindInput {
		ctx.Reemit = e.entry(g.current)
	}
	if info.Inject && sec != nil && h.chunksOf == nil {
		var err error
		if n.inject, err = g.injector(info, sec, n.declared); err != nil {
			decodeErr = errors.Join(decodeErr, err)
		}
	}
	switch {
	case h.chunksOf != nil:
		ctx.ChunkKeys = *h.chunksOf
	case kind == plugin.KindOutput && sec != nil:
		if err := g.attachBuffer(n, sec, logger, ctx); err != nil || decodeErr != nil {
			return nil, errors.Join(decodeErr, err)
		}
	}
	if decodeErr != nil {
		return nil, decodeErr
	}
	if c, ok := n.p.(plugin.Configurer); ok {
		if n.key != "" {
			g.parents = append(g.parents, n.key)
		}
		err := c.Configure(ctx)
		if n.key != "" {
			g.parents = g.parents[:len(g.parents)-1]
		}
		if err != nil {
			var ce *config.Error
			if sec != nil && !errors.As(err, &ce) && !errors.Is(err, errReported) {
				err = config.Errorf(pos, "%s %q: %v", kind, typ, err)
			}
			return nil, err
		}
	}
	return n, nil
}

// attachBuffer gives a buffered output its runtime, built from <buffer>
// over the type's BufferDefaults, and its <secondary>; it tells ctx the
// chunk keys, for the output's Configure to check placeholders against.
func (g *graph) attachBuffer(n *node, el *config.Element, logger *slog.Logger, ctx *plugin.Context) error {
	secs := el.Sections("buffer")
	if len(secs) > 1 {
		return config.Errorf(secs[1].Pos, "only one <buffer> is allowed")
	}
	var slowFlush time.Duration
	if p := el.Param("slow_flush_log_threshold"); p != nil && !n.declared["slow_flush_log_threshold"] {
		var err error
		if slowFlush, err = config.ParseDuration(p.Value); err != nil || slowFlush <= 0 {
			return config.Errorf(p.Pos, "slow_flush_log_threshold: want a positive time such as 20 or 40s")
		}
		if n.buffered == nil || (n.sync != nil && len(secs) == 0) {
			el.AddNotice(p.Pos, "slow_flush_log_threshold is accepted and ignored: this output writes without a buffer, so there are no flushes to time")
		}
	}
	if n.buffered == nil {
		if len(secs) > 0 {
			return config.Errorf(secs[0].Pos, "output %q does not use a <buffer>", n.typ)
		}
		return nil
	}
	if n.sync != nil && len(secs) == 0 {
		return nil // stdout, null: unbuffered unless asked
	}
	if len(secs) == 0 {
		compat, err := v012Buffer(el, n.declared)
		if err != nil {
			return err
		}
		if compat != nil {
			secs = []*config.Element{compat}
		}
	}
	typ := "memory"
	if len(secs) > 0 {
		if t, ok := secs[0].Get("@type"); ok {
			typ = t
		}
	}
	cfg, err := bufferConfig(n.info, typ)
	if err != nil {
		return config.Errorf(el.Pos, "%v", err)
	}
	pos := el.Pos
	if len(secs) > 0 {
		pos = secs[0].Pos
		if err := config.Decode(secs[0], &cfg); err != nil {
			return err
		}
	}
	if cfg.Type == "file" {
		if cfg.Path, err = v012Path(cfg.Path); err != nil {
			return config.Errorf(pos, "<buffer>: %v", err)
		}
	}
	keys, err := buffer.ParseChunkKeys(cfg.ChunkKeys)
	if err != nil {
		return config.Errorf(pos, "<buffer>: %v", err)
	}
	opts := output.Options{RootDir: g.system.RootDir, Logger: logger, DoneWithData: n.info.DoneWithDataOnReturn, Perm: g.perm,
		SlowFlushThreshold: slowFlush}
	if secs := el.Sections("secondary"); len(secs) > 0 {
		if len(secs) > 1 {
			return config.Errorf(secs[1].Pos, "only one <secondary> is allowed")
		}
		if n.secondary, err = g.secondary(secs[0], n, keys); err != nil {
			return err
		}
		opts.Secondary, opts.SecondaryDoneWithData = n.secondary.buffered, n.secondary.info.DoneWithDataOnReturn
	}
	rt, err := output.New(n.id, n.buffered, cfg, opts)
	if err != nil {
		return config.Errorf(pos, "<buffer>: %v", err)
	}
	n.runtime = rt
	ctx.ChunkKeys = rt.Keys()
	ctx.Location = rt.Location()
	ctx.Timekey = rt.Timekey()
	return nil
}

// bufferConfig returns the <buffer> defaults of an output of info's type:
// Fluentd's generic ones for the buffer type, then the output's own.
func bufferConfig(info plugin.Info, typ string) (output.BufferConfig, error) {
	cfg := output.DefaultBufferConfig(typ)
	return cfg, typeDefaults(info, "buffer", info.BufferDefaults, &cfg)
}

// injectConfig returns the <inject> defaults of an output of info's type:
// the inject helper's, then the output's own.
func injectConfig(info plugin.Info) (inject.Config, error) {
	cfg := inject.Defaults()
	return cfg, typeDefaults(info, "inject", info.InjectDefaults, &cfg)
}

// typeDefaults decodes the defaults a type declares for one of its
// sections (key "" is the section's argument) over dst.
func typeDefaults(info plugin.Info, section string, defaults map[string]string, dst any) error {
	if len(defaults) == 0 {
		return nil
	}
	el := &config.Element{Name: section, Pos: config.Pos{File: "(" + info.Type + "'s " + section + " defaults)"}}
	for k, v := range defaults {
		if k == "" {
			el.Arg = v
			continue
		}
		el.Params = append(el.Params, &config.Param{Key: k, Value: v})
	}
	err := config.Decode(el, dst)
	if err == nil {
		err = errors.Join(el.Unused()...)
	}
	if err != nil {
		return fmt.Errorf("plugin %s %q: %s defaults: %w", info.Kind, info.Type, section, err)
	}
	return nil
}

// secondary builds the output of a <secondary> section: a buffered output
// whose Write takes the primary's chunks (usually secondary_file). It is
// built as every plugin is, with the primary's chunk keys to check its
// placeholders against, and has no buffer of its own.
func (g *graph) secondary(sec *config.Element, primary *node, keys buffer.ChunkKeys) (*node, error) {
	n, err := g.construct(plugin.KindOutput, sec, how{id: primary.id + ".secondary", chunksOf: &keys})
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return nil, err // it names its line
		}
		return nil, config.Errorf(sec.Pos, "<secondary>: %v", err)
	}
	n.key = primary.key + "|secondary"
	return n, nil
}

// CheckPlugins reports every plugin type that registered wrongly: a value
// that is not what its kind needs, a field of Info for another kind,
// BufferDefaults or InjectDefaults that are not parameters of their
// section. Build calls it, so
// that such a plugin fails the start of every configuration.
func CheckPlugins() error {
	errs := []error{plugin.Check()}
	for _, info := range plugin.All() {
		if info.Kind == plugin.KindOutput && info.BufferDefaults != nil {
			if _, err := bufferConfig(info, "memory"); err != nil {
				errs = append(errs, err)
			}
		}
		if _, err := injectConfig(info); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// rootLabel names the top level in @label and relabel (Fluentd 1.14).
const rootLabel = "@ROOT"

// labelName maps @ROOT to the top level's name, "".
func labelName(name string) string {
	if name == rootLabel {
		return ""
	}
	return name
}
