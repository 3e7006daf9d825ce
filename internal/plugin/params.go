package plugin

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/sluice-log/sluice/internal/config"
)

// Param describes one configuration parameter, or one section, of a
// plugin type: the parameter reference `sluice plugins TYPE` prints and
// docs/plugins/ holds.
type Param struct {
	// Name is the parameter's name, after the sections it is in:
	// "<server> host". A section's own row is "<server>".
	Name    string
	Type    string // string, integer, size, time, bool, enum(a|b), array, hash, section
	Default string // "(required)" for a required parameter
	// Desc is the `desc` tag: what the parameter does, in one sentence
	// or two.
	Desc string
}

// Params lists the parameters a plugin type decodes, with their defaults
// and descriptions, by reading the `conf`, `section` and `desc` struct
// tags of a fresh value. Raw sections named in info.Sections are expanded
// too: a <format> with its default formatter's parameters.
func Params(info Info) []Param {
	var out []Param
	collectStruct(reflect.ValueOf(info.New()), "", info.Sections, &out)
	return out
}

// StructParams lists the parameters of a section's struct, under prefix
// ("<buffer> ").
func StructParams(v any, prefix string) []Param {
	var out []Param
	collectStruct(reflect.ValueOf(v), prefix, nil, &out)
	return out
}

func collectStruct(v reflect.Value, prefix string, raw map[string]Section, out *[]Param) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v = reflect.New(v.Type().Elem())
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("conf") == "" && f.Tag.Get("section") == "" {
			collectStruct(fv, prefix, raw, out)
			continue
		}
		if sec, ok := f.Tag.Lookup("section"); ok {
			name := prefix + "<" + sec + ">"
			*out = append(*out, Param{Name: name, Type: "section", Desc: f.Tag.Get("desc")})
			switch {
			case f.Type == reflect.TypeOf((*config.Element)(nil)) || f.Type == reflect.TypeOf([]*config.Element(nil)):
				if r, ok := raw[sec]; ok {
					collectRaw(r, name+" ", out)
				}
			case fv.Kind() == reflect.Slice:
				collectStruct(reflect.New(f.Type.Elem()), name+" ", nil, out)
			default:
				collectStruct(fv, name+" ", nil, out)
			}
			continue
		}
		tag, ok := f.Tag.Lookup("conf")
		if !ok || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		p := Param{Name: prefix + name, Type: typeName(f), Default: defaultString(fv), Desc: f.Tag.Get("desc")}
		if name == "" {
			if opts != "arg" {
				continue
			}
			p.Name = strings.TrimSuffix(prefix, " ") + " (argument)"
		}
		if opts == "required" {
			p.Default = "(required)"
		}
		*out = append(*out, p)
	}
}

func collectRaw(r Section, prefix string, out *[]Param) {
	switch {
	case r.New != nil:
		collectStruct(reflect.ValueOf(r.New()), prefix, nil, out)
	case r.Kind != "":
		*out = append(*out, Param{Name: prefix + "@type", Type: "string", Default: r.Default,
			Desc: fmt.Sprintf("The %s; `sluice plugins %s` lists the parameters of each type.", r.Kind, r.Kind)})
		if info, ok := Lookup(r.Kind, r.Default); ok {
			collectStruct(reflect.ValueOf(info.New()), prefix, info.Sections, out)
		}
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
		return durationString(x)
	case config.Size:
		return sizeString(int64(x))
	case []string:
		return strings.Join(x, ",")
	}
	if v.Kind() == reflect.Map {
		if v.Len() == 0 {
			return ""
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, fmt.Sprintf("%v:%v", k, v.MapIndex(k)))
		}
		sort.Strings(keys)
		return strings.Join(keys, ",")
	}
	return fmt.Sprint(v.Interface())
}

// durationString writes d as a configuration would: 1h, 10m, 1.5s.
func durationString(d time.Duration) string {
	if d == 0 {
		return "0"
	}
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

// sizeString writes n as a configuration would: 8MB, 64GB, 1000.
func sizeString(n int64) string {
	for _, u := range []struct {
		shift uint
		name  string
	}{{40, "TB"}, {30, "GB"}, {20, "MB"}, {10, "KB"}} {
		if n != 0 && n%(1<<u.shift) == 0 {
			return fmt.Sprintf("%d%s", n>>u.shift, u.name)
		}
	}
	return fmt.Sprint(n)
}
