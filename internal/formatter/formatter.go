// Package formatter holds Fluentd's built-in formatters: json, single_value,
// ltsv, csv, msgpack, out_file, hash and stdout. Each appends to a caller's
// buffer and reads only the fields it prints.
package formatter

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/strftime"
)

func register(typ, summary string, newFn func() any) {
	plugin.Register(plugin.Info{Kind: plugin.KindFormatter, Type: typ, New: newFn, Summary: summary})
}

// TimeOptions are Fluentd's common time-formatting parameters.
type TimeOptions struct {
	TimeType   string `conf:"time_type" enum:"float,unixtime,string" desc:"How the event time is written: string (with time_format), unixtime (whole seconds) or float (seconds with nanoseconds)."`
	TimeFormat string `conf:"time_format" desc:"The strftime format of a string time; empty means ISO 8601 with the zone's offset."`
	Localtime  bool   `conf:"localtime" desc:"Write times in the local time zone (the default); false means UTC."`
	UTC        bool   `conf:"utc" desc:"Write times in UTC."`
	Timezone   string `conf:"timezone" desc:"The time zone to write times in, as +0900 or a zone name; overrides localtime and utc."`

	loc *time.Location
	// One rendering per second, for layouts without sub-seconds (the
	// common case): consecutive events mostly share their second. Format
	// may run on several goroutines at once (buffers format before they
	// lock, outputs format in each flush thread), so the rendering is
	// swapped whole, never written in place.
	cacheable bool
	cached    atomic.Pointer[renderedTime]
}

// renderedTime is one second's rendering; it is never changed once shared.
type renderedTime struct {
	sec  int64
	text []byte
}

func defaultTimeOptions(layout string) TimeOptions {
	return TimeOptions{TimeType: "string", TimeFormat: layout, Localtime: true}
}

func (o *TimeOptions) configure() error {
	switch {
	case o.Timezone != "":
		loc, err := strftime.ParseZone(o.Timezone)
		if err != nil {
			return err
		}
		o.loc = loc
	case o.UTC || !o.Localtime:
		o.loc = time.UTC
	default:
		o.loc = time.Local
	}
	o.cacheable = o.TimeType == "string" && !strftime.SubSecond(o.TimeFormat)
	return nil
}

func (o *TimeOptions) appendTime(dst []byte, t event.Time) []byte {
	switch o.TimeType {
	case "unixtime":
		return strconv.AppendInt(dst, t.Unix(), 10)
	case "float":
		dst = strconv.AppendInt(dst, t.Unix(), 10)
		dst = append(dst, '.')
		ns := strconv.AppendInt(nil, t.Nanos()+1e9, 10)
		return append(dst, ns[1:]...)
	}
	loc := o.loc
	if loc == nil {
		loc = time.Local
	}
	if !o.cacheable {
		return strftime.Append(dst, o.TimeFormat, t.Std().In(loc))
	}
	sec := t.Unix()
	if c := o.cached.Load(); c != nil && c.sec == sec {
		return append(dst, c.text...)
	}
	c := &renderedTime{sec: sec, text: strftime.Append(nil, o.TimeFormat, t.Std().In(loc))}
	o.cached.Store(c)
	return append(dst, c.text...)
}

// Newline is Fluentd's newline parameter.
type Newline struct {
	Newline string `conf:"newline" enum:"lf,crlf" desc:"The line ending add_newline appends: lf or crlf."`
}

func (n Newline) append(dst []byte) []byte {
	if n.Newline == "crlf" {
		return append(dst, '\r', '\n')
	}
	return append(dst, '\n')
}

// JSON renders the record as a JSON object.
type JSON struct {
	AddNewline bool   `conf:"add_newline" desc:"End each formatted event with a newline."`
	JSONParser string `conf:"json_parser" desc:"Accepted for Fluentd compatibility (oj, yajl, json); one JSON encoder serves them all." ignored:"one JSON encoder serves them all"` // accepted for compatibility; one encoder serves all
	Newline
}

// SingleValue prints one field's value.
type SingleValue struct {
	MessageKey string `conf:"message_key" desc:"The record field whose value is written, alone."`
	AddNewline bool   `conf:"add_newline" desc:"End each formatted event with a newline."`
	Newline
}

// Msgpack prints the record's msgpack bytes unchanged.
type Msgpack struct{}

func init() {
	register("json", "record as a JSON object", func() any { return &JSON{AddNewline: true} })
	register("single_value", "one field's value", func() any { return &SingleValue{MessageKey: "message", AddNewline: true} })
	register("msgpack", "record as msgpack", func() any { return &Msgpack{} })
}

// Format implements plugin.Formatter.
func (f *JSON) Format(dst []byte, _ string, _ event.Time, r event.Record) ([]byte, error) {
	dst, err := r.AppendJSON(dst)
	if err != nil {
		return dst, err
	}
	if f.AddNewline {
		dst = f.Newline.append(dst)
	}
	return dst, nil
}

// Format implements plugin.Formatter. A missing key prints an empty line,
// as Fluentd does.
func (f *SingleValue) Format(dst []byte, _ string, _ event.Time, r event.Record) ([]byte, error) {
	if v, ok := r.Get(f.MessageKey); ok {
		dst = v.AppendText(dst)
	}
	if f.AddNewline {
		dst = f.Newline.append(dst)
	}
	return dst, nil
}

// Format implements plugin.Formatter.
func (Msgpack) Format(dst []byte, _ string, _ event.Time, r event.Record) ([]byte, error) {
	return append(dst, r...), nil
}
