package plugin

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sluice-log/sluice/internal/config"
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

// Param describes one configuration parameter of a plugin type.
type Param struct {
	Name    string
	Type    string
	Default string
}

// Params lists the parameters a plugin decodes, with their defaults, by
// reading the `conf` and `section` struct tags of a fresh instance.
func Params(info Info) []Param {
	v := reflect.ValueOf(info.New())
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	var out []Param
	collectParams(v, "", &out)
	return out
}

func collectParams(v reflect.Value, prefix string, out *[]Param) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("conf") == "" {
			collectParams(fv, prefix, out)
			continue
		}
		if sec, ok := f.Tag.Lookup("section"); ok {
			*out = append(*out, Param{Name: prefix + "<" + sec + ">", Type: "section"})
			if fv.Kind() == reflect.Struct {
				collectParams(fv, prefix+"<"+sec+"> ", out)
			}
			continue
		}
		tag, ok := f.Tag.Lookup("conf")
		if !ok || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			continue
		}
		p := Param{Name: prefix + name, Type: typeName(f), Default: defaultString(fv)}
		if opts == "required" {
			p.Default = "(required)"
		}
		*out = append(*out, p)
	}
}

func typeName(f reflect.StructField) string {
	if e := f.Tag.Get("enum"); e != "" {
		return "enum(" + strings.ReplaceAll(e, ",", "|") + ")"
	}
	switch f.Type {
	case reflect.TypeOf(time.Duration(0)):
		return "time"
	case reflect.TypeOf(config.Size(0)):
		return "size"
	}
	switch f.Type.Kind() {
	case reflect.Slice:
		return "array"
	case reflect.Map:
		return "hash"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "integer"
	case reflect.Float64:
		return "float"
	}
	return f.Type.Kind().String()
}

func defaultString(v reflect.Value) string {
	switch x := v.Interface().(type) {
	case time.Duration:
		return x.String()
	case config.Size:
		return fmt.Sprint(int64(x))
	case []string:
		return strings.Join(x, ",")
	}
	if v.Kind() == reflect.Map {
		if v.Len() == 0 {
			return ""
		}
	}
	return fmt.Sprint(v.Interface())
}
