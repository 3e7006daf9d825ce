package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Size is a byte count written with Fluentd's size suffixes: k, m, g, t
// (powers of 1024), optionally followed by "b" ("25MB", "1m", "2GB").
type Size int64

// Decode fills the struct pointed to by v from e. Fields are matched by
// struct tags:
//
//	Port    int            `conf:"port"`                 // parameter
//	Mode    string         `conf:"mode" enum:"a,b"`      // one of a fixed set
//	Key     string         `conf:"key,required"`         // must be present
//	Keys    string         `conf:",arg"`                 // the section's argument
//	Buffer  *config.Element `section:"buffer"`           // raw section for a sub-plugin
//	Rules   []Rule         `section:"regexp"`            // repeated typed sections
//
// Field types: string, bool, int kinds, float64, time.Duration (Fluentd
// "time": 1, 0.1, 10s, 5m, 1h, 1d), Size, []string (comma list or JSON
// array), map[string]string (k:v,k2:v2 or JSON object). Fields keep the
// value they had when a parameter is absent, so defaults live in the
// plugin's constructor. Embedded structs are decoded in place.
//
// Decode marks what it reads as used; see Element.Unused.
func Decode(e *Element, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config.Decode: want pointer to struct, got %T", v)
	}
	e.used = true
	return decodeStruct(e, rv.Elem())
}

func decodeStruct(e *Element, sv reflect.Value) error {
	e.decoded = true
	var errs []error // every problem, not only the first
	st := sv.Type()
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		fv := sv.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct && f.Tag.Get("conf") == "" {
			if err := decodeStruct(e, fv); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if name, ok := f.Tag.Lookup("section"); ok {
			e.know("<" + name + ">")
			if err := decodeSection(e, name, fv); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		tag, ok := f.Tag.Lookup("conf")
		if !ok || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" && opts == "arg" {
			if e.Arg == "" {
				continue // keep the default, as Fluentd does for an empty argument
			}
			if err := setValue(fv, e.Arg, f, e.Pos, "argument of <"+e.Name+">"); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		e.know(name)
		p := e.Param(name)
		if p == nil {
			for _, alias := range strings.Split(f.Tag.Get("alias"), ",") {
				if alias != "" {
					e.know(alias)
					if p = e.Param(alias); p != nil {
						break
					}
				}
			}
		}
		if p == nil {
			if opts == "required" {
				errs = append(errs, Errorf(e.Pos, "%s: required parameter %q is missing", e.describe(), name))
			}
			continue
		}
		if why := f.Tag.Get("ignored"); why != "" {
			e.notices = append(e.notices, Notice{Pos: p.Pos, Msg: fmt.Sprintf("%s is accepted and ignored: %s", name, why)})
		}
		if p.Nil {
			fv.Set(reflect.Zero(fv.Type())) // use_nil: nothing, not the default
			continue
		}
		if err := setValue(fv, p.Value, f, p.Pos, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

var elementPtr = reflect.TypeOf((*Element)(nil))

func decodeSection(e *Element, name string, fv reflect.Value) error {
	secs := e.Sections(name)
	t := fv.Type()
	switch {
	case t == elementPtr:
		if len(secs) > 1 {
			return Errorf(secs[1].Pos, "only one <%s> is allowed in %s", name, e.describe())
		}
		if len(secs) == 1 {
			fv.Set(reflect.ValueOf(secs[0]))
		}
	case t.Kind() == reflect.Slice && t.Elem() == elementPtr:
		fv.Set(reflect.ValueOf(secs))
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Struct:
		out := reflect.MakeSlice(t, 0, len(secs))
		var errs []error
		for _, s := range secs {
			item := reflect.New(t.Elem()).Elem()
			if err := decodeStruct(s, item); err != nil {
				errs = append(errs, err)
			}
			out = reflect.Append(out, item)
		}
		fv.Set(out)
		return errors.Join(errs...)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		// An optional section: nil when absent.
		if len(secs) > 1 {
			return Errorf(secs[1].Pos, "only one <%s> is allowed in %s", name, e.describe())
		}
		if len(secs) == 1 {
			v := reflect.New(t.Elem())
			if err := decodeStruct(secs[0], v.Elem()); err != nil {
				return err
			}
			fv.Set(v)
		}
	case t.Kind() == reflect.Struct:
		if len(secs) > 1 {
			return Errorf(secs[1].Pos, "only one <%s> is allowed in %s", name, e.describe())
		}
		if len(secs) == 1 {
			return decodeStruct(secs[0], fv)
		}
	default:
		return fmt.Errorf("config: unsupported section field type %s", t)
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func setValue(fv reflect.Value, raw string, f reflect.StructField, pos Pos, name string) error {
	fail := func(kind string, err error) error {
		if err != nil {
			return Errorf(pos, "%s: invalid %s %q: %v", name, kind, raw, err)
		}
		return Errorf(pos, "%s: invalid %s %q", name, kind, raw)
	}
	if enum := f.Tag.Get("enum"); enum != "" {
		ok := false
		for _, allowed := range strings.Split(enum, ",") {
			if raw == allowed {
				ok = true
			}
		}
		if !ok {
			return Errorf(pos, "%s: %q is not one of %s", name, raw, strings.ReplaceAll(enum, ",", ", "))
		}
	}
	switch {
	case fv.Type() == durationType:
		d, err := ParseDuration(raw)
		if err != nil {
			return fail("time", err)
		}
		fv.SetInt(int64(d))
	case fv.Type() == reflect.TypeOf(Size(0)):
		n, err := ParseSize(raw)
		if err != nil {
			return fail("size", err)
		}
		fv.SetInt(n)
	case fv.Kind() == reflect.String:
		fv.SetString(raw)
	case fv.Kind() == reflect.Bool:
		b, err := ParseBool(raw)
		if err != nil {
			return fail("bool", err)
		}
		fv.SetBool(b)
	case fv.Kind() >= reflect.Int && fv.Kind() <= reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
		if err != nil {
			// Fluentd accepts "1.0" for integers by truncation.
			fl, ferr := strconv.ParseFloat(strings.TrimSpace(raw), 64)
			if ferr != nil || fl != math.Trunc(fl) {
				return fail("integer", nil)
			}
			n = int64(fl)
		}
		if fv.OverflowInt(n) {
			return fail("integer", fmt.Errorf("out of range"))
		}
		fv.SetInt(n)
	case fv.Kind() == reflect.Float64 || fv.Kind() == reflect.Float32:
		fl, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return fail("float", nil)
		}
		fv.SetFloat(fl)
	case fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.String:
		a, err := ParseArray(raw)
		if err != nil {
			return fail("array", err)
		}
		fv.Set(reflect.ValueOf(a).Convert(fv.Type()))
	case fv.Kind() == reflect.Map && fv.Type().Key().Kind() == reflect.String && fv.Type().Elem().Kind() == reflect.String:
		m, err := ParseHash(raw)
		if err != nil {
			return fail("hash", err)
		}
		fv.Set(reflect.ValueOf(m).Convert(fv.Type()))
	default:
		return fmt.Errorf("config: unsupported field type %s for %s", fv.Type(), name)
	}
	return nil
}

// ParseBool accepts Fluentd's spellings; an empty value (a bare key) is true.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "true", "yes":
		return true, nil
	case "false", "no":
		return false, nil
	}
	return false, fmt.Errorf("want true, false, yes or no")
}

// ParseDuration reads Fluentd's time type: a bare number is seconds (may be
// fractional); suffixes s, m, h, d.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	unit := time.Second
	num := s
	switch s[len(s)-1] {
	case 's':
		num = s[:len(s)-1]
	case 'm':
		unit, num = time.Minute, s[:len(s)-1]
	case 'h':
		unit, num = time.Hour, s[:len(s)-1]
	case 'd':
		unit, num = 24*time.Hour, s[:len(s)-1]
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) || f*float64(unit) > math.MaxInt64 {
		return 0, fmt.Errorf("want a number of seconds or a number with s, m, h or d")
	}
	return time.Duration(f * float64(unit)), nil
}

// ParseSize reads Fluentd's size type: 1024, 8k, 1m, 25MB, 2GB, 1t.
func ParseSize(s string) (int64, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimSuffix(s, "b")
	mult := int64(1)
	if s != "" {
		switch s[len(s)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult > 1 {
			s = s[:len(s)-1]
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*float64(mult) > math.MaxInt64 {
		return 0, fmt.Errorf("want a byte count such as 1024, 8k, 25MB or 2GB")
	}
	return int64(f * float64(mult)), nil
}

// ParseArray reads a JSON array of strings or a comma-separated list.
func ParseArray(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return []string{}, nil
	}
	if s[0] == '[' {
		var raw []any
		if err := json.Unmarshal([]byte(s), &raw); err != nil {
			return nil, err
		}
		out := make([]string, len(raw))
		for i, v := range raw {
			out[i] = jsonScalar(v)
		}
		return out, nil
	}
	parts := strings.Split(s, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts, nil
}

// ParseHash reads a JSON object or "k1:v1,k2:v2".
func ParseHash(s string) (map[string]string, error) {
	s = strings.TrimSpace(s)
	out := map[string]string{}
	if s == "" {
		return out, nil
	}
	if s[0] == '{' {
		var raw map[string]any
		if err := json.Unmarshal([]byte(s), &raw); err != nil {
			return nil, err
		}
		for k, v := range raw {
			out[k] = jsonScalar(v)
		}
		return out, nil
	}
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(kv, ":")
		if !ok {
			return nil, fmt.Errorf("%q is not key:value", kv)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, nil
}

func jsonScalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}
