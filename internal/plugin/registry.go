package plugin

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// Kind is the role a plugin type plays.
type Kind string

// The kinds of plugins.
const (
	KindInput     Kind = "input"
	KindFilter    Kind = "filter"
	KindOutput    Kind = "output"
	KindFormatter Kind = "formatter"
	KindParser    Kind = "parser"
)

// Info describes a plugin type: everything the engine needs to know about
// it besides the methods its value has.
type Info struct {
	Kind Kind
	Type string
	// Aliases are other @type names accepted for this plugin (Fluentd's
	// "dummy" for "sample").
	Aliases []string
	// New returns a plugin with its defaults set and no side effects.
	New func() any
	// Summary is one line for `sluice plugins`.
	Summary string

	// Admin (inputs) marks a source that serves the instance's own state
	// (metrics, probes, the plugin list) instead of taking events. At
	// shutdown it stops last, after the outputs have drained, so that
	// scrapes and readiness probes see the drain.
	Admin bool
	// BufferDefaults (buffered outputs) are the <buffer> parameters whose
	// default differs for this output from Fluentd's generic one, as
	// parameter name and value in configuration syntax: out_file and s3
	// chunk by time ("time", timekey "1d"). The key "" is the chunk keys
	// (the section's argument).
	BufferDefaults map[string]string
	// DoneWithDataOnReturn (buffered outputs) says that Write is done
	// with the chunk's Data when it returns, whether it succeeded or not:
	// nothing it started reads the bytes later (an SDK's HTTP transport
	// may, so SDK-based outputs leave this false). The runtime then reads
	// the next chunk from a file buffer into the same memory instead of
	// allocating a chunk's worth for each write.
	DoneWithDataOnReturn bool
	// Inject (outputs) says the output takes Fluentd's <inject> (and the
	// flat include_tag_key, include_time_key of v0.12): the engine adds
	// those fields to each record before the output sees it.
	Inject bool
	// InjectDefaults (with Inject) are the <inject> parameters whose
	// default differs for this output from the inject helper's, in
	// configuration syntax: aws-fluent-plugin-kinesis writes times as
	// strings ("time_type": "string").
	InjectDefaults map[string]string
	// Sections describe the sections the plugin keeps raw (a
	// *config.Element field) and decodes itself, for the parameter
	// reference: a <format> or <parse> sub-plugin, or a struct.
	Sections map[string]Section
}

// Section describes a raw section for the parameter reference.
type Section struct {
	// Kind and Default: the section is a sub-plugin of that kind
	// (KindFormatter for <format>, KindParser for <parse>), of type
	// Default when it names no @type.
	Kind    Kind
	Default string
	// New returns the struct the section decodes into, with its defaults.
	New func() any
}

var (
	regMu    sync.RWMutex
	registry = map[Kind]map[string]Info{} // guarded by regMu
	// misdeclared holds what Register found wrong, reported by Check.
	misdeclared []error // guarded by regMu
)

// Register adds a plugin type; it is meant for init(). It checks the value
// New returns against the kind and the declared fields (Check reports what
// is wrong, so that a mis-declared plugin fails the start of every
// configuration, not only those that use it).
func Register(info Info) {
	regMu.Lock()
	defer regMu.Unlock()
	if err := validate(info); err != nil {
		misdeclared = append(misdeclared, err)
		return
	}
	if registry[info.Kind] == nil {
		registry[info.Kind] = map[string]Info{}
	}
	for _, name := range append([]string{info.Type}, info.Aliases...) {
		if prev, dup := registry[info.Kind][name]; dup {
			misdeclared = append(misdeclared, fmt.Errorf("plugin %s %q: registered twice (also as %q)", info.Kind, name, prev.Type))
			continue
		}
		registry[info.Kind][name] = info
	}
}

// Check returns an error naming every plugin type that was registered
// wrongly, nil when all are sound.
func Check() error {
	regMu.RLock()
	defer regMu.RUnlock()
	return errors.Join(misdeclared...)
}

// validate checks that info's value is what its kind needs and that the
// fields it declares belong to that kind.
func validate(info Info) error {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("plugin %s %q: %s", info.Kind, info.Type, fmt.Sprintf(format, args...))
	}
	if info.Type == "" || info.New == nil {
		return fail("needs a Type and a New function")
	}
	p := info.New()
	if p == nil {
		return fail("New returned nil")
	}
	_, buffered := p.(BufferedOutput)
	var ok bool
	var want string
	switch info.Kind {
	case KindInput:
		_, ok = p.(Input)
		want = "plugin.Input"
	case KindFilter:
		_, ok = p.(Filter)
		want = "plugin.Filter"
	case KindOutput:
		_, sync := p.(SyncOutput)
		ok, want = buffered || sync, "plugin.BufferedOutput or plugin.SyncOutput"
	case KindFormatter:
		_, ok = p.(Formatter)
		want = "plugin.Formatter"
	case KindParser:
		_, ok = p.(Parser)
		want = "plugin.Parser"
	default:
		return fail("unknown kind")
	}
	if !ok {
		return fail("%T does not implement %s", p, want)
	}
	if info.Admin && info.Kind != KindInput {
		return fail("Admin is for inputs")
	}
	if info.Inject && info.Kind != KindOutput {
		return fail("Inject is for outputs")
	}
	if info.InjectDefaults != nil && !info.Inject {
		return fail("InjectDefaults needs Inject")
	}
	if (info.DoneWithDataOnReturn || info.BufferDefaults != nil) && !buffered {
		return fail("DoneWithDataOnReturn and BufferDefaults are for buffered outputs, and %T has no Write", p)
	}
	if _, ok := p.(EntryFormatter); ok && !buffered {
		return fail("%T formats entries (FormatEntry) but has no Write", p)
	}
	return nil
}

// Lookup finds a plugin type by kind and @type name (or alias).
func Lookup(kind Kind, typ string) (Info, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	info, ok := registry[kind][typ]
	return info, ok
}

// All returns every registered type once, sorted by kind and type.
func All() []Info {
	regMu.RLock()
	defer regMu.RUnlock()
	var out []Info
	for _, m := range registry {
		for name, info := range m {
			if name == info.Type {
				out = append(out, info)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Type < out[j].Type
	})
	return out
}
