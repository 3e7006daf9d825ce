package parser

import (
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/strftime"
)

// Apache2 parses Apache's combined log format into host, user, method,
// path, code, size, referer and agent; "-" becomes nil and code and size
// integers, as Fluentd's apache2 parser does.
type Apache2 struct {
	Common
	buf []byte
}

var apache2RE = regexp.MustCompile(`^(?P<host>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]*)\] "(?P<method>\S+)(?: +(?P<path>(?:[^"\\]|\\.)*?)(?: +\S*)?)?" (?P<code>\S+) (?P<size>\S+)(?: "(?P<referer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?\s*$`)

func init() {
	register("apache2", "Apache combined log format", func() any {
		c := defaultCommon("time")
		c.TimeFormat = "%d/%b/%Y:%H:%M:%S %z"
		return &Apache2{Common: c}
	})
	register("apache_error", "Apache error log", func() any { return newRegexpFormat(apacheErrorExpr, "", nil) })
	register("nginx", "nginx's default access log format", func() any {
		return newRegexpFormat(nginxExpr, "%d/%b/%Y:%H:%M:%S %z", nil)
	})
	register("syslog", "syslog (RFC 3164, RFC 5424, or either)", func() any {
		return &Syslog{MessageFormat: "rfc3164", RFC5424TimeFormat: fluentdRFC5424TimeFormat, ParserEngine: "regexp", SupportColonlessIdent: true, Common: defaultCommon("time")}
	})
	register("multiline", "several lines by format_firstline and format1..formatN", func() any {
		return &Multiline{Regexp: Regexp{Common: defaultCommon("time")}}
	})
}

// Configure implements plugin.Configurer.
func (p *Apache2) Configure(*plugin.Context) error { return p.Common.configure() }

// Parse implements plugin.Parser.
func (p *Apache2) Parse(text []byte, emit func(event.Time, []byte) error) error {
	m := apache2RE.FindSubmatch(text)
	if m == nil {
		return fmt.Errorf("%w: %q", ErrNoMatch, truncate(text))
	}
	get := func(name string) field {
		v := m[apache2RE.SubexpIndex(name)]
		if v == nil || string(v) == "-" {
			return field{key: name, null: true}
		}
		return field{key: name, val: string(v)}
	}
	t, err := p.parseTimeString(string(m[apache2RE.SubexpIndex("time")]))
	if err != nil {
		return err
	}
	rec := msgp.AppendMapHeader(p.buf[:0], 8)
	for _, name := range []string{"host", "user", "method", "path", "code", "size", "referer", "agent"} {
		f := get(name)
		rec = msgp.AppendString(rec, name)
		switch {
		case f.null:
			rec = msgp.AppendNil(rec)
		case name == "code" || name == "size":
			if n, err := strconv.ParseInt(f.val, 10, 64); err == nil {
				rec = msgp.AppendInt64(rec, n)
			} else {
				rec = msgp.AppendNil(rec)
			}
		default:
			rec = msgp.AppendString(rec, f.val)
		}
	}
	p.buf = rec
	return emit(t, rec)
}

const apacheErrorExpr = `^\[[^ ]* (?P<time>[^\]]*)\] \[(?:[^:\]]+:)?(?P<level>[^\]]*)\](?: \[pid (?P<pid>[^\]]*)\])?(?: \[client (?P<client>[^\]]*)\])? (?P<message>.*)$`

const nginxExpr = `^(?P<remote>[^ ]*) (?P<host>[^ ]*) (?P<user>[^ ]*) \[(?P<time>[^\]]*)\] "(?P<method>\S+)(?: +(?P<path>[^"]*?)(?: +\S*)?)?" (?P<code>[^ ]*) (?P<size>[^ ]*)(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"(?:\s+(?P<http_x_forwarded_for>[^ ]+))?)?$`

// regexpFormat is a Regexp with a fixed expression (apache_error, nginx).
type regexpFormat struct {
	Regexp `conf:"-"`
	Common
}

func newRegexpFormat(expr, timeFormat string, _ map[string]string) *regexpFormat {
	c := defaultCommon("time")
	c.TimeFormat = timeFormat
	f := &regexpFormat{Common: c}
	f.Regexp.Expression = expr
	return f
}

// Configure implements plugin.Configurer.
func (p *regexpFormat) Configure(c *plugin.Context) error {
	p.Regexp.Common = p.Common
	if p.Regexp.Common.TimeFormat == "" {
		// Apache's error log: "Wed Oct 11 14:32:52 2000", sometimes with
		// microseconds (Apache 2.4).
		p.Regexp.Common.TimeFormat = "%b %d %H:%M:%S %Y"
		p.Regexp.Common.TimeFormatFallbacks = []string{"%b %d %H:%M:%S.%N %Y"}
	}
	return p.Regexp.Configure(c)
}

// Parse implements plugin.Parser.
func (p *regexpFormat) Parse(text []byte, emit func(event.Time, []byte) error) error {
	return p.Regexp.Parse(text, emit)
}

// Syslog parses RFC 3164 and RFC 5424 messages.
type Syslog struct {
	MessageFormat string `conf:"message_format" enum:"rfc3164,rfc5424,auto" desc:"The syslog message format: rfc3164, rfc5424, or auto (each message by its shape)."`
	WithPriority  bool   `conf:"with_priority" desc:"The messages start with a <PRI> priority, which becomes the pri field."`
	// RFC5424TimeFormat is Fluentd's strptime format for RFC 5424 times;
	// Fluentd's default reads the same times as RFC 3339 does.
	RFC5424TimeFormat     string `conf:"rfc5424_time_format" desc:"The strftime format of RFC 5424 times; unset, or Fluentd's default %Y-%m-%dT%H:%M:%S.%L%z, reads RFC 3339 times (fractions optional, Z or an offset)."`
	ParserEngine          string `conf:"parser_engine" alias:"parser_type" enum:"regexp,string" desc:"Accepted for Fluentd compatibility (its regexp or hand-written string parser); Sluice's one parser serves both." ignored:"one syslog parser serves both"`
	SupportColonlessIdent bool   `conf:"support_colonless_ident" desc:"Accepted for Fluentd compatibility (the string parser's option)." ignored:"an ident without a colon is always read"`
	// OmitPriority leaves pri out of the record: in_syslog reads the
	// priority for the tag, and Fluentd's deletes it from the record.
	OmitPriority bool `conf:"-"`
	Common

	buf []byte
}

var (
	rfc3164RE   = regexp.MustCompile(`^(?:<(?P<pri>[0-9]{1,3})>)?(?P<time>[A-Z][a-z]{2} +[0-9]{1,2} [0-9]{2}:[0-9]{2}:[0-9]{2}) (?P<host>\S+) (?P<ident>[^ :\[]*)(?:\[(?P<pid>[0-9]+)\])?(?:[^:]*:)? *(?P<message>(?s:.*?))\s*$`)
	rfc5424RE   = regexp.MustCompile(`^<(?P<pri>[0-9]{1,3})>[1-9][0-9]{0,2} (?P<time>\S+) (?P<host>\S+) (?P<ident>\S+) (?P<pid>\S+) (?P<msgid>\S+) (?P<extradata>-|(?:\[(?:[^\]"\\]|\\.|"(?:[^"\\]|\\.)*")*\])+)(?: (?P<message>(?s:.*?)))?\s*$`)
	rfc5424Hint = regexp.MustCompile(`^<[0-9]{1,3}>[1-9][0-9]{0,2} `)
)

// fluentdRFC5424TimeFormat is Fluentd's rfc5424_time_format default.
const fluentdRFC5424TimeFormat = "%Y-%m-%dT%H:%M:%S.%L%z"

// Configure implements plugin.Configurer.
func (p *Syslog) Configure(*plugin.Context) error { return p.Common.configure() }

// Parse implements plugin.Parser.
func (p *Syslog) Parse(text []byte, emit func(event.Time, []byte) error) error {
	format := p.MessageFormat
	if format == "auto" {
		format = "rfc3164"
		if rfc5424Hint.Match(text) {
			format = "rfc5424"
		}
	}
	re := rfc3164RE
	names := []string{"pri", "host", "ident", "pid", "message"}
	if format == "rfc5424" {
		re = rfc5424RE
		names = []string{"pri", "host", "ident", "pid", "msgid", "extradata", "message"}
	}
	m := re.FindSubmatch(text)
	if m == nil || (format == "rfc3164" && p.WithPriority && m[re.SubexpIndex("pri")] == nil) {
		return fmt.Errorf("%w: not %s syslog: %q", ErrNoMatch, format, truncate(text))
	}
	var t event.Time
	ts := string(m[re.SubexpIndex("time")])
	var err error
	if format == "rfc3164" {
		t, err = p.time3164(ts)
	} else {
		var tt time.Time
		if p.RFC5424TimeFormat != "" && p.RFC5424TimeFormat != fluentdRFC5424TimeFormat {
			tt, err = strftime.Parse(p.RFC5424TimeFormat, ts, p.loc)
		} else {
			tt, err = time.Parse(time.RFC3339Nano, ts)
		}
		if err == nil {
			t = event.FromStd(tt)
		}
	}
	if err != nil {
		return fmt.Errorf("syslog time %q: %w", ts, err)
	}
	rec := msgp.AppendMapHeader(p.buf[:0], 0)
	n := uint32(0)
	for _, name := range names {
		v := m[re.SubexpIndex(name)]
		if name == "pri" {
			if v == nil || (format == "rfc3164" && !p.WithPriority) || p.OmitPriority {
				continue
			}
			pri, _ := strconv.Atoi(string(v))
			rec = msgp.AppendInt(msgp.AppendString(rec, "pri"), pri)
			n++
			continue
		}
		if v == nil || (format == "rfc5424" && string(v) == "-") {
			if name == "message" || name == "extradata" || name == "msgid" || name == "pid" {
				rec = msgp.AppendNil(msgp.AppendString(rec, name))
				n++
			}
			continue
		}
		rec = msgp.AppendString(rec, name)
		var f field
		f.key, f.val = name, string(v)
		if rec, err = p.appendValue(rec, f); err != nil {
			return err
		}
		n++
	}
	// Rewrite the header now that the count is known.
	body := rec[1:]
	hdr := msgp.AppendMapHeader(nil, n)
	out := append(hdr, body...)
	p.buf = out
	return emit(p.eventTime(t), out)
}

// time3164 reads "Feb 28 12:00:00", which has no year: the current year,
// or last year when that would put the event in the future (a log read
// just after New Year).
func (p *Syslog) time3164(s string) (event.Time, error) {
	now := p.now().In(p.loc)
	layout := p.TimeFormat
	if layout == "" {
		layout = "%b %d %H:%M:%S"
	}
	t, err := parseWithYear(layout, s, now.Year(), p.loc)
	if err != nil {
		return 0, err
	}
	if t.After(now.Add(24 * time.Hour)) {
		t = t.AddDate(-1, 0, 0)
	}
	return event.FromStd(t), nil
}

func parseWithYear(layout, s string, year int, loc *time.Location) (time.Time, error) {
	c := Common{TimeFormat: "%Y " + layout, loc: loc, TimeType: "string"}
	t, err := c.parseTimeString(strconv.Itoa(year) + " " + s)
	return t.Std(), err
}

// Multiline parses a block of lines with format1..format20 joined into one
// expression (in dot-matches-newline mode). format_firstline is accepted
// for inputs that split a stream into blocks.
type Multiline struct {
	FormatFirstline string `conf:"format_firstline" desc:"A regular expression that matches the first line of each multiline event."`
	Format1         string `conf:"format1,required" desc:"The first part of the regular expression that parses a whole multiline event; format2 to format20 are appended to it in order."`
	Format2         string `conf:"format2" desc:"Part 2 of the multiline expression, appended after the part before it (see format1)."`
	Format3         string `conf:"format3" desc:"Part 3 of the multiline expression, appended after the part before it (see format1)."`
	Format4         string `conf:"format4" desc:"Part 4 of the multiline expression, appended after the part before it (see format1)."`
	Format5         string `conf:"format5" desc:"Part 5 of the multiline expression, appended after the part before it (see format1)."`
	Format6         string `conf:"format6" desc:"Part 6 of the multiline expression, appended after the part before it (see format1)."`
	Format7         string `conf:"format7" desc:"Part 7 of the multiline expression, appended after the part before it (see format1)."`
	Format8         string `conf:"format8" desc:"Part 8 of the multiline expression, appended after the part before it (see format1)."`
	Format9         string `conf:"format9" desc:"Part 9 of the multiline expression, appended after the part before it (see format1)."`
	Format10        string `conf:"format10" desc:"Part 10 of the multiline expression, appended after the part before it (see format1)."`
	Format11        string `conf:"format11" desc:"Part 11 of the multiline expression, appended after the part before it (see format1)."`
	Format12        string `conf:"format12" desc:"Part 12 of the multiline expression, appended after the part before it (see format1)."`
	Format13        string `conf:"format13" desc:"Part 13 of the multiline expression, appended after the part before it (see format1)."`
	Format14        string `conf:"format14" desc:"Part 14 of the multiline expression, appended after the part before it (see format1)."`
	Format15        string `conf:"format15" desc:"Part 15 of the multiline expression, appended after the part before it (see format1)."`
	Format16        string `conf:"format16" desc:"Part 16 of the multiline expression, appended after the part before it (see format1)."`
	Format17        string `conf:"format17" desc:"Part 17 of the multiline expression, appended after the part before it (see format1)."`
	Format18        string `conf:"format18" desc:"Part 18 of the multiline expression, appended after the part before it (see format1)."`
	Format19        string `conf:"format19" desc:"Part 19 of the multiline expression, appended after the part before it (see format1)."`
	Format20        string `conf:"format20" desc:"Part 20 of the multiline expression, appended after the part before it (see format1)."`
	Regexp          `conf:"-"`
	Common

	firstline *regexp.Regexp
}

// Configure implements plugin.Configurer.
func (p *Multiline) Configure(c *plugin.Context) error {
	var parts []string
	v := reflect.ValueOf(p).Elem()
	for i := 1; i <= 20; i++ {
		s := v.FieldByName("Format" + strconv.Itoa(i)).String()
		if s == "" {
			continue
		}
		s = strings.TrimSpace(s)
		if len(s) >= 2 && s[0] == '/' && s[len(s)-1] == '/' {
			s = s[1 : len(s)-1]
		}
		parts = append(parts, s)
	}
	if p.FormatFirstline != "" {
		re, err := CompileRuby(p.FormatFirstline)
		if err != nil {
			return fmt.Errorf("format_firstline: %w", err)
		}
		p.firstline = re
	}
	p.Regexp.Common = p.Common
	p.Regexp.Expression = "/" + strings.Join(parts, "") + "/m"
	return p.Regexp.Configure(c)
}

// Parse implements plugin.Parser.
func (p *Multiline) Parse(text []byte, emit func(event.Time, []byte) error) error {
	return p.Regexp.Parse(text, emit)
}

// FirstLine reports whether line starts a new block (format_firstline).
func (p *Multiline) FirstLine(line []byte) bool { return p.firstline == nil || p.firstline.Match(line) }
