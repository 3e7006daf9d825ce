// Package parser holds Fluentd's parsers: regexp, json, none, ltsv, csv,
// tsv, msgpack, apache2, apache_error, nginx, syslog and multiline. A parser
// turns text into records (encoded msgpack maps) with their times; the
// <parse> options every parser shares live in Common.
package parser

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/strftime"
)

// ErrNoMatch reports text the parser does not recognise.
var ErrNoMatch = errors.New("pattern not matched")

func register(typ, summary string, newFn func() any) {
	plugin.Register(plugin.Info{Kind: plugin.KindParser, Type: typ, New: newFn, Summary: summary})
}

// Common are the <parse> parameters every parser shares.
type Common struct {
	TimeKey              string            `conf:"time_key" desc:"The field that holds the event time; it is removed from the record unless keep_time_key."`
	TimeFormat           string            `conf:"time_format" desc:"The strftime format of the time field (with time_type string); empty tries ISO 8601 and common forms."`
	TimeType             string            `conf:"time_type" enum:"string,unixtime,float,mixed" desc:"How the time field is read: string (with time_format), unixtime, float, or mixed (time_format, else a number)."`
	TimeFormatFallbacks  []string          `conf:"time_format_fallbacks" desc:"Formats tried in turn when time_format does not match (with time_type mixed)."`
	KeepTimeKey          bool              `conf:"keep_time_key" desc:"Keep the time field in the record after reading the time from it."`
	Types                map[string]string `conf:"types" desc:"Field types to convert to, as field:type pairs (integer, float, bool, string, time, array)."`
	NullValuePattern     string            `conf:"null_value_pattern" desc:"A regular expression: field values that match it become null."`
	NullEmptyString      bool              `conf:"null_empty_string" desc:"Make empty field values null."`
	EstimateCurrentEvent bool              `conf:"estimate_current_event" desc:"Use the current time for records without a time field."`
	Localtime            bool              `conf:"localtime" desc:"Read times without a zone as local time (the default); false means UTC."`
	UTC                  bool              `conf:"utc" desc:"Read times without a zone as UTC."`
	Timezone             string            `conf:"timezone" desc:"The time zone of times without one, as +0900 or a zone name."`
	Timeout              time.Duration     `conf:"timeout" desc:"Accepted for Fluentd compatibility (its bound on one parse)." ignored:"Go's regular expressions run in time linear in the input, so a parse cannot hang"`

	loc   *time.Location
	null  *regexp.Regexp
	types map[string]typeConv
	now   func() time.Time
}

func defaultCommon(timeKey string) Common {
	return Common{TimeKey: timeKey, TimeType: "string", EstimateCurrentEvent: true, Localtime: true}
}

type typeConv struct {
	kind   string // string, integer, float, bool, time, array
	format string // time format, or array delimiter
}

// configure checks the common options; parsers call it from Configure.
func (c *Common) configure() error {
	c.now = time.Now
	switch {
	case c.Timezone != "":
		loc, err := strftime.ParseZone(c.Timezone)
		if err != nil {
			return err
		}
		c.loc = loc
	case c.UTC || !c.Localtime:
		c.loc = time.UTC
	default:
		c.loc = time.Local
	}
	if c.NullValuePattern != "" {
		re, err := CompileRuby(c.NullValuePattern)
		if err != nil {
			return fmt.Errorf("null_value_pattern: %w", err)
		}
		c.null = re
	}
	c.types = map[string]typeConv{}
	for k, v := range c.Types {
		kind, format, _ := strings.Cut(v, ":")
		switch kind {
		case "string", "integer", "float", "bool", "time", "array":
		default:
			return fmt.Errorf("types: %s: unknown type %q (string, integer, float, bool, time, array)", k, kind)
		}
		if kind == "array" && format == "" {
			format = ","
		}
		c.types[k] = typeConv{kind: kind, format: format}
	}
	return nil
}

// parseTime reads a time value per time_type and time_format.
func (c *Common) parseTime(v event.Value) (event.Time, error) {
	if v.Type() == msgp.IntType || v.Type() == msgp.UintType || v.Type() == msgp.Float64Type || v.Type() == msgp.Float32Type {
		f, _, err := msgp.ReadFloat64Bytes(v)
		if err != nil {
			i, _, err2 := msgp.ReadInt64Bytes(v)
			if err2 != nil {
				return 0, err
			}
			f = float64(i)
		}
		return event.Time(f * 1e9), nil
	}
	s, ok := v.Bytes()
	if !ok {
		return 0, fmt.Errorf("time is not a string or a number")
	}
	return c.parseTimeString(string(s))
}

func (c *Common) parseTimeString(s string) (event.Time, error) {
	s = strings.TrimSpace(s)
	switch c.TimeType {
	case "unixtime", "float", "mixed":
		if f, err := strconv.ParseFloat(s, 64); err == nil && !math.IsNaN(f) {
			if c.TimeType == "unixtime" {
				f = math.Trunc(f)
			}
			return event.Time(f * 1e9), nil
		}
		if c.TimeType != "mixed" {
			return 0, fmt.Errorf("time %q is not a number", s)
		}
	}
	if c.TimeFormat != "" {
		t, err := strftime.Parse(c.TimeFormat, s, c.loc)
		if err == nil {
			return event.FromStd(t), nil
		}
		for _, f := range c.TimeFormatFallbacks {
			if t, ferr := strftime.Parse(f, s, c.loc); ferr == nil {
				return event.FromStd(t), nil
			}
		}
		return 0, err
	}
	return guessTime(s, c.loc)
}

// guessTime stands in for Ruby's Time.parse, which Fluentd uses without a
// time_format: the common layouts, then a number of seconds.
func guessTime(s string, loc *time.Location) (event.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999Z0700", "2006-01-02 15:04:05.999999999 -0700",
		"2006-01-02 15:04:05.999999999 -07:00", "02/Jan/2006:15:04:05 -0700", time.RFC1123Z, time.RFC1123} {
		if t, err := time.Parse(layout, s); err == nil {
			return event.FromStd(t), nil
		}
	}
	for _, layout := range []string{"2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return event.FromStd(t), nil
		}
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return event.Time(f * 1e9), nil
	}
	return 0, fmt.Errorf("cannot read %q as a time (set time_format)", s)
}

// field is one parsed text field.
type field struct {
	key, val string
	null     bool
}

// record encodes string fields as a map, taking out the time key and
// applying types, null_value_pattern and null_empty_string. It returns the
// record and the event time (0 when there is none).
func (c *Common) record(dst []byte, fields []field) ([]byte, event.Time, error) {
	var t event.Time
	n := 0
	for _, f := range fields {
		if f.key != c.TimeKey || c.KeepTimeKey {
			n++
		}
	}
	dst = msgp.AppendMapHeader(dst, uint32(n))
	for _, f := range fields {
		if f.key == c.TimeKey && c.TimeKey != "" && !f.null && f.val != "" {
			tt, err := c.parseTimeString(f.val)
			if err != nil {
				return dst, 0, fmt.Errorf("time_key %q: %w", f.key, err)
			}
			t = tt
			if !c.KeepTimeKey {
				continue
			}
		} else if f.key == c.TimeKey && !c.KeepTimeKey {
			continue
		}
		dst = msgp.AppendString(dst, f.key)
		var err error
		if dst, err = c.appendValue(dst, f); err != nil {
			return dst, 0, err
		}
	}
	return dst, t, nil
}

func (c *Common) isNull(f field) bool {
	return f.null || (c.NullEmptyString && f.val == "") || (c.null != nil && c.null.MatchString(f.val))
}

func (c *Common) appendValue(dst []byte, f field) ([]byte, error) {
	if c.isNull(f) {
		return msgp.AppendNil(dst), nil
	}
	conv, ok := c.types[f.key]
	if !ok {
		return msgp.AppendString(dst, f.val), nil
	}
	switch conv.kind {
	case "integer":
		// Ruby's to_i: the leading number, 0 when there is none.
		return msgp.AppendInt64(dst, leadingInt(f.val)), nil
	case "float":
		fl, err := strconv.ParseFloat(strings.TrimSpace(f.val), 64)
		if err != nil {
			fl = 0
		}
		return msgp.AppendFloat64(dst, fl), nil
	case "bool":
		switch strings.ToLower(f.val) {
		case "true", "yes", "1":
			return msgp.AppendBool(dst, true), nil
		}
		return msgp.AppendBool(dst, false), nil
	case "time":
		cc := *c
		if conv.format != "" {
			cc.TimeFormat = conv.format
		}
		t, err := cc.parseTimeString(f.val)
		if err != nil {
			return dst, fmt.Errorf("types %s: %w", f.key, err)
		}
		return event.AppendEventTime(dst, t), nil
	case "array":
		parts := strings.Split(f.val, conv.format)
		dst = msgp.AppendArrayHeader(dst, uint32(len(parts)))
		for _, p := range parts {
			dst = msgp.AppendString(dst, p)
		}
		return dst, nil
	}
	return msgp.AppendString(dst, f.val), nil
}

func leadingInt(s string) int64 {
	s = strings.TrimSpace(s)
	end := 0
	if end < len(s) && (s[end] == '-' || s[end] == '+') {
		end++
	}
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, _ := strconv.ParseInt(s[:end], 10, 64)
	return n
}

// SetEstimateCurrentEvent implements plugin.CurrentTimeEstimator.
func (c *Common) SetEstimateCurrentEvent(on bool) { c.EstimateCurrentEvent = on }

// eventTime applies estimate_current_event to a time a parser found (0:
// none found).
func (c *Common) eventTime(t event.Time) event.Time {
	if t == 0 && c.EstimateCurrentEvent {
		return event.FromStd(c.now())
	}
	return t
}

// structured takes the time out of a structured record (JSON, msgpack) and
// applies types and null patterns to its string values.
func (c *Common) structured(dst []byte, rec event.Record) ([]byte, event.Time, error) {
	var t event.Time
	n := rec.Len()
	if c.TimeKey != "" && !c.KeepTimeKey {
		if _, ok := rec.Get(c.TimeKey); ok {
			n--
		}
	}
	dst = msgp.AppendMapHeader(dst, uint32(n))
	var ferr error
	err := rec.Each(func(k []byte, v event.Value) bool {
		if c.TimeKey != "" && string(k) == c.TimeKey {
			if len(v) > 0 && v[0] != 0xc0 {
				tt, err := c.parseTime(v)
				if err != nil {
					ferr = fmt.Errorf("time_key %q: %w", c.TimeKey, err)
					return false
				}
				t = tt
			}
			if !c.KeepTimeKey {
				return true
			}
		}
		dst = msgp.AppendStringFromBytes(dst, k)
		if s, isStr := v.Bytes(); isStr && v.Type() == msgp.StrType && (len(c.types) > 0 || c.null != nil || c.NullEmptyString) {
			dst, ferr = c.appendValue(dst, field{key: string(k), val: string(s)})
			return ferr == nil
		}
		dst = append(dst, v...)
		return true
	})
	if err != nil {
		return dst, 0, err
	}
	return dst, t, ferr
}
