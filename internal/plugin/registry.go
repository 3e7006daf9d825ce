package plugin

import (
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

// Info describes a plugin type.
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
}

var (
	regMu    sync.RWMutex
	registry = map[Kind]map[string]Info{} // guarded by regMu
)

// Register adds a plugin type. It is meant for init() and panics on a
// duplicate, which is a programming error.
func Register(info Info) {
	regMu.Lock()
	defer regMu.Unlock()
	if registry[info.Kind] == nil {
		registry[info.Kind] = map[string]Info{}
	}
	for _, name := range append([]string{info.Type}, info.Aliases...) {
		if _, dup := registry[info.Kind][name]; dup {
			panic(fmt.Sprintf("plugin: %s type %q registered twice", info.Kind, name))
		}
		registry[info.Kind][name] = info
	}
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
