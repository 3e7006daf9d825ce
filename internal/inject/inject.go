// Package inject is Fluentd's <inject> section: fields an output adds to
// each record before it formats or buffers it (the host name, the tag,
// the event time). Docker's log driver sends records without a time
// field, so a pipeline into Elasticsearch through Firehose relies on it.
package inject

import (
	"fmt"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/strftime"
)

// Config is the <inject> section, with Fluentd's names and defaults.
type Config struct {
	HostnameKey string `conf:"hostname_key" desc:"Add the host name to each record under this key."`
	Hostname    string `conf:"hostname" desc:"The host name hostname_key adds; the machine's when empty."`
	WorkerIDKey string `conf:"worker_id_key" desc:"Add the worker id (always 0: Sluice is one process) under this key."`
	TagKey      string `conf:"tag_key" desc:"Add the tag to each record under this key."`
	TimeKey     string `conf:"time_key" desc:"Add the event time to each record under this key."`
	TimeType    string `conf:"time_type" enum:"float,unixtime,unixtime_millis,unixtime_micros,unixtime_nanos,string" desc:"How time_key's value is written: float seconds, whole unixtime seconds (or millis, micros, nanos), or a string in time_format."`
	TimeFormat  string `conf:"time_format" desc:"The strftime format of a string time; empty means ISO 8601 with the zone's offset (%Y-%m-%dT%H:%M:%S%:z)."`
	Localtime   bool   `conf:"localtime" desc:"Write a string time in local time (the default); false means UTC."`
	UTC         bool   `conf:"utc" desc:"Write a string time in UTC."`
	Timezone    string `conf:"timezone" desc:"The zone of a string time, as +0900 or a zone name; overrides localtime and utc."`
}

// Defaults returns <inject>'s defaults.
func Defaults() Config { return Config{TimeType: "float", Localtime: true} }

// defaultTimeFormat is a string time without time_format.
const defaultTimeFormat = "%Y-%m-%dT%H:%M:%S%:z"

// Injector adds a Config's fields to the records of a stream.
type Injector struct {
	c        Config
	hostname string
	loc      *time.Location
	fields   int
}

// New checks c and returns its Injector, or nil when c adds nothing.
// hostname is the machine's, for hostname_key without hostname.
func New(c Config, hostname string) (*Injector, error) {
	in := &Injector{c: c, hostname: c.Hostname, loc: time.Local}
	if in.hostname == "" {
		in.hostname = hostname
	}
	for _, k := range []string{c.HostnameKey, c.WorkerIDKey, c.TagKey, c.TimeKey} {
		if k != "" {
			in.fields++
		}
	}
	if in.fields == 0 {
		return nil, nil
	}
	switch {
	case c.Timezone != "":
		loc, err := strftime.ParseZone(c.Timezone)
		if err != nil {
			return nil, fmt.Errorf("<inject> timezone: %w", err)
		}
		in.loc = loc
	case c.UTC || !c.Localtime:
		in.loc = time.UTC
	}
	if in.c.TimeFormat == "" {
		in.c.TimeFormat = defaultTimeFormat
	}
	return in, nil
}

// Apply returns s with the fields added to every record, built in b
// (which the caller owns and resets). A record that already has one of
// the keys gets the injected value instead, as in Fluentd. An entry that
// is not a map is passed on as it is.
func (in *Injector) Apply(s event.Stream, b *event.Builder) (event.Stream, error) {
	var scratch, rec []byte
	rd := s.Reader()
	for rd.Next() {
		e := rd.Entry()
		scratch, rec = in.record(scratch, s.Tag, e)
		b.Append(e.Time, rec)
	}
	if err := rd.Err(); err != nil {
		return s, err
	}
	return b.Stream(s.Tag), nil
}

// record builds e's record with the fields in scratch's memory and returns
// that memory (for the next record) and the record.
func (in *Injector) record(scratch []byte, tag string, e *event.Entry) (body, rec []byte) {
	dst := event.OpenMap(scratch)
	n := uint32(in.fields)
	err := e.Record.Each(func(k []byte, v event.Value) bool {
		if !in.injects(k) {
			dst = msgp.AppendStringFromBytes(dst, k)
			dst = append(dst, v...)
			n++
		}
		return true
	})
	if err != nil {
		return dst, e.Record // not a map: passed on as it is
	}
	if in.c.HostnameKey != "" {
		dst = msgp.AppendString(msgp.AppendString(dst, in.c.HostnameKey), in.hostname)
	}
	if in.c.WorkerIDKey != "" {
		dst = msgp.AppendInt(msgp.AppendString(dst, in.c.WorkerIDKey), 0)
	}
	if in.c.TagKey != "" {
		dst = msgp.AppendString(msgp.AppendString(dst, in.c.TagKey), tag)
	}
	if in.c.TimeKey != "" {
		dst = in.appendTime(msgp.AppendString(dst, in.c.TimeKey), e.Time)
	}
	return dst, event.CloseMap(dst, n)
}

func (in *Injector) injects(k []byte) bool {
	s := string(k) // compared, not kept: no allocation
	return s == in.c.HostnameKey && s != "" || s == in.c.WorkerIDKey && s != "" ||
		s == in.c.TagKey && s != "" || s == in.c.TimeKey && s != ""
}

func (in *Injector) appendTime(dst []byte, t event.Time) []byte {
	switch in.c.TimeType {
	case "unixtime":
		return msgp.AppendInt64(dst, t.Unix())
	case "unixtime_millis":
		return msgp.AppendInt64(dst, int64(t)/1e6)
	case "unixtime_micros":
		return msgp.AppendInt64(dst, int64(t)/1e3)
	case "unixtime_nanos":
		return msgp.AppendInt64(dst, int64(t))
	case "string":
		return msgp.AppendString(dst, strftime.Format(in.c.TimeFormat, t.Std().In(in.loc)))
	}
	return msgp.AppendFloat64(dst, float64(t.Unix())+float64(t.Nanos())/1e9)
}
