package parser

import (
	"bytes"
	"fmt"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/strftime"
)

// CRI parses the log lines containerd and CRI-O write on Kubernetes nodes,
// "TIME STREAM FLAG MESSAGE" (2026-12-06T10:00:00.123456789Z stdout F
// hello), into stream, logtag and message, as fluent-plugin-parser-cri
// does. A long line arrives as partial lines (flag P) ended by a full one
// (F); the tail input joins them before they get here.
type CRI struct {
	MergeCRIFields bool   `conf:"merge_cri_fields" desc:"Keep stream and logtag in the record beside message."`
	TimeFormat     string `conf:"time_format" desc:"The strftime format of the time; Fluentd's default %Y-%m-%dT%H:%M:%S.%N%:z reads RFC 3339 times with any fraction."`
	KeepTimeKey    bool   `conf:"keep_time_key" desc:"Keep the time text in the record as time."`
	Timezone       string `conf:"timezone" desc:"The time zone of times without one (with a time_format that has no zone)."`

	loc *time.Location
	buf []byte
}

// criDefaultTimeFormat is fluent-plugin-parser-cri's time_format.
const criDefaultTimeFormat = "%Y-%m-%dT%H:%M:%S.%N%:z"

func init() {
	register("cri", "containerd and CRI-O log lines (TIME STREAM FLAG MESSAGE)", func() any {
		return &CRI{MergeCRIFields: true, TimeFormat: criDefaultTimeFormat}
	})
}

// Configure implements plugin.Configurer.
func (p *CRI) Configure(*plugin.Context) error {
	p.loc = time.UTC
	if p.Timezone != "" {
		loc, err := strftime.ParseZone(p.Timezone)
		if err != nil {
			return err
		}
		p.loc = loc
	}
	return nil
}

// Parse implements plugin.Parser.
func (p *CRI) Parse(text []byte, emit func(event.Time, []byte) error) error {
	sp1 := bytes.IndexByte(text, ' ')
	if sp1 <= 0 {
		return fmt.Errorf("%w: not a CRI line: %q", ErrNoMatch, truncate(text))
	}
	sp2 := bytes.IndexByte(text[sp1+1:], ' ')
	if sp2 <= 0 {
		return fmt.Errorf("%w: not a CRI line: %q", ErrNoMatch, truncate(text))
	}
	sp2 += sp1 + 1
	ts, stream := text[:sp1], text[sp1+1:sp2]
	rest := text[sp2+1:]
	logtag, msg := rest, []byte(nil)
	if i := bytes.IndexByte(rest, ' '); i >= 0 {
		logtag, msg = rest[:i], rest[i+1:]
	}
	if len(logtag) == 0 {
		return fmt.Errorf("%w: CRI line without a flag: %q", ErrNoMatch, truncate(text))
	}
	var tt time.Time
	var err error
	if p.TimeFormat == "" || p.TimeFormat == criDefaultTimeFormat {
		tt, err = time.Parse(time.RFC3339Nano, string(ts))
	} else {
		tt, err = strftime.Parse(p.TimeFormat, string(ts), p.loc)
	}
	if err != nil {
		return fmt.Errorf("%w: CRI time %q: %v", ErrNoMatch, ts, err)
	}
	n := uint32(1)
	if p.MergeCRIFields {
		n += 2
	}
	if p.KeepTimeKey {
		n++
	}
	rec := msgp.AppendMapHeader(p.buf[:0], n)
	if p.MergeCRIFields {
		rec = msgp.AppendStringFromBytes(msgp.AppendString(rec, "stream"), stream)
		rec = msgp.AppendStringFromBytes(msgp.AppendString(rec, "logtag"), logtag)
	}
	rec = msgp.AppendStringFromBytes(msgp.AppendString(rec, "message"), msg)
	if p.KeepTimeKey {
		rec = msgp.AppendStringFromBytes(msgp.AppendString(rec, "time"), ts)
	}
	p.buf = rec
	return emit(event.FromStd(tt), rec)
}
