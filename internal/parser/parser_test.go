package parser_test

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/parser"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func build(t testing.TB, conf string) plugin.Parser {
	t.Helper()
	e := plugintest.Build(t, "<match **>\n  @type null\n</match>\n")
	root, err := config.Parse("p.conf", []byte("<parse>\n"+conf+"\n</parse>\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := e.Builder().Parser(root.Elements[0], "")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

type parsed struct {
	time   event.Time
	record map[string]any
}

func parseAll(t testing.TB, p plugin.Parser, text string) ([]parsed, error) {
	var out []parsed
	err := p.Parse([]byte(text), func(tm event.Time, rec []byte) error {
		v, _, err := msgp.ReadIntfBytes(rec)
		if err != nil {
			t.Fatalf("record does not decode: %v", err)
		}
		out = append(out, parsed{tm, v.(map[string]any)})
		return nil
	})
	return out, err
}

const feb28 = event.Time(1362020400 * 1e9) // 2013-02-28 12:00:00 +0900

// The examples of Fluentd's parser documentation, each input with the time
// and record Fluentd gives for it.
func TestDocumentedParsers(t *testing.T) {
	cases := []struct {
		name, conf, input string
		time              event.Time
		record            map[string]any
	}{
		{"regexp", `@type regexp
expression /^\[(?<logtime>[^\]]*)\] (?<name>[^ ]*) (?<title>[^ ]*) (?<id>\d*)$/
time_key logtime
time_format %Y-%m-%d %H:%M:%S %z
types id:integer`, "[2013-02-28 12:00:00 +0900] alice engineer 1", feb28,
			map[string]any{"name": "alice", "title": "engineer", "id": int64(1)}},
		{"json", "@type json", `{"time":1362020400,"host":"192.168.0.1","size":777,"method":"PUT"}`, feb28,
			map[string]any{"host": "192.168.0.1", "size": int64(777), "method": "PUT"}},
		{"json keep_time_key", "@type json\nkeep_time_key true", `{"time":1362020400,"k":"v"}`, feb28,
			map[string]any{"time": int64(1362020400), "k": "v"}},
		{"ltsv", "@type ltsv\ntime_key time\ntime_format %Y-%m-%dT%H:%M:%S%z",
			"time:2013-02-28T12:00:00+0900\thost:192.168.0.1\treq_id:111\tuser:-", feb28,
			map[string]any{"host": "192.168.0.1", "req_id": "111", "user": "-"}},
		{"csv", "@type csv\nkeys time,host,req_id,user\ntime_key time\ntime_format %Y/%m/%d %H:%M:%S %z",
			`2013/02/28 12:00:00 +0900,192.168.0.1,111,"-"`, feb28,
			map[string]any{"host": "192.168.0.1", "req_id": "111", "user": "-"}},
		{"tsv", "@type tsv\nkeys time,host,req_id,user\ntime_key time\ntime_format %Y/%m/%d %H:%M:%S %z",
			"2013/02/28 12:00:00 +0900\t192.168.0.1\t111\t-", feb28,
			map[string]any{"host": "192.168.0.1", "req_id": "111", "user": "-"}},
		{"apache2", "@type apache2", `192.168.0.1 - - [28/Feb/2013:12:00:00 +0900] "GET / HTTP/1.1" 200 777 "-" "Opera/12.0"`, feb28,
			map[string]any{"host": "192.168.0.1", "user": nil, "method": "GET", "path": "/", "code": int64(200), "size": int64(777), "referer": nil, "agent": "Opera/12.0"}},
		{"apache_error", "@type apache_error\ntimezone +00:00", `[Wed Oct 11 14:32:52 2000] [error] [client 127.0.0.1] client denied by server configuration`,
			event.Time(971274772 * 1e9),
			map[string]any{"level": "error", "client": "127.0.0.1", "message": "client denied by server configuration"}},
		{"nginx", "@type nginx", `127.0.0.1 192.168.0.1 - [28/Feb/2013:12:00:00 +0900] "GET / HTTP/1.1" 200 777 "-" "Opera/12.0"`, feb28,
			map[string]any{"remote": "127.0.0.1", "host": "192.168.0.1", "user": "-", "method": "GET", "path": "/", "code": "200", "size": "777", "referer": "-", "agent": "Opera/12.0"}},
		{"syslog rfc3164", "@type syslog\nwith_priority true\ntimezone +09:00", `<6>Feb 28 12:00:00 192.168.0.1 fluentd[11111]: [error] Syslog test`, 0,
			map[string]any{"pri": int64(6), "host": "192.168.0.1", "ident": "fluentd", "pid": "11111", "message": "[error] Syslog test"}},
		{"syslog rfc5424", "@type syslog\nmessage_format rfc5424\nwith_priority true",
			`<16>1 2013-02-28T12:00:00.003Z 192.168.0.1 fluentd 11111 ID24224 [exampleSDID@20224 iut="3" eventSource="Application" eventID="11211"] Hi, from Fluentd!`,
			event.Time(1362052800003 * 1e6),
			map[string]any{"pri": int64(16), "host": "192.168.0.1", "ident": "fluentd", "pid": "11111", "msgid": "ID24224",
				"extradata": `[exampleSDID@20224 iut="3" eventSource="Application" eventID="11211"]`, "message": "Hi, from Fluentd!"}},
		{"syslog auto", "@type syslog\nmessage_format auto", `<16>1 2013-02-28T12:00:00Z host app - - - hello`,
			event.Time(1362052800 * 1e9),
			map[string]any{"pri": int64(16), "host": "host", "ident": "app", "pid": nil, "msgid": nil, "extradata": nil, "message": "hello"}},
		{"none", "@type none", "any text at all", 0, map[string]any{"message": "any text at all"}},
		{"multiline", "@type multiline\nformat_firstline /^Started/\nformat1 /^Started (?<method>[^ ]+) \"(?<path>[^\"]+)\".*\\n/\nformat2 /Completed (?<code>[^ ]+)/",
			"Started GET \"/users\" for 127.0.0.1\nProcessing by UsersController#index\nCompleted 200 OK in 5ms", 0,
			map[string]any{"method": "GET", "path": "/users", "code": "200"}},
		{"null_value_pattern", "@type ltsv\nnull_value_pattern /^(-|null)$/\nnull_empty_string true", "a:-\tb:null\tc:\td:x", 0,
			map[string]any{"a": nil, "b": nil, "c": nil, "d": "x"}},
		{"types", "@type ltsv\ntypes n:integer,f:float,b:bool,l:array", "n:42abc\tf:1.5\tb:true\tl:x,y", 0,
			map[string]any{"n": int64(42), "f": 1.5, "b": true, "l": []any{"x", "y"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseAll(t, build(t, tc.conf), tc.input)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 {
				t.Fatalf("%d records", len(got))
			}
			if tc.time != 0 && got[0].time != tc.time {
				t.Errorf("time %v, want %v", got[0].time.Std().UTC(), tc.time.Std().UTC())
			}
			if !reflect.DeepEqual(got[0].record, tc.record) {
				t.Errorf("record\n got %#v\nwant %#v", got[0].record, tc.record)
			}
		})
	}
}

// TestSyslogYear: RFC 3164 has no year; it is this year, and time without
// a time field is the time now (estimate_current_event).
func TestSyslogYearAndCurrentTime(t *testing.T) {
	got, err := parseAll(t, build(t, "@type syslog\ntimezone +00:00"), "Mar  1 01:02:03 h app: hi")
	if err != nil {
		t.Fatal(err)
	}
	tm := got[0].time.Std().UTC()
	if tm.Month() != time.March || tm.Day() != 1 || (tm.Year() != time.Now().Year() && tm.Year() != time.Now().Year()-1) {
		t.Errorf("time %v", tm)
	}
	none, _ := parseAll(t, build(t, "@type none"), "x")
	if d := time.Since(none[0].time.Std()); d < 0 || d > time.Minute {
		t.Errorf("estimate_current_event gave %v", none[0].time.Std())
	}
	off, _ := parseAll(t, build(t, "@type none\nestimate_current_event false"), "x")
	if off[0].time != 0 {
		t.Errorf("estimate_current_event false gave %v", off[0].time)
	}
}

// TestSyslogRFC5424TimeFormat: Fluentd's default rfc5424_time_format
// reads RFC 3339 times; another format reads times written that way.
func TestSyslogRFC5424TimeFormat(t *testing.T) {
	const line = "<14>1 %s web-1 app 42 - - hello"
	for conf, ts := range map[string]string{
		"@type syslog\nmessage_format rfc5424":                                             "2026-12-03T09:57:00.123Z",
		"@type syslog\nmessage_format rfc5424\nrfc5424_time_format %Y-%m-%dT%H:%M:%S.%L%z": "2026-12-03T09:57:00.123+00:00",
		"@type syslog\nmessage_format rfc5424\nrfc5424_time_format %Y%m%dT%H%M%S.%L%z":     "20261203T095700.123+0000",
	} {
		got, err := parseAll(t, build(t, conf), fmt.Sprintf(line, ts))
		if err != nil {
			t.Errorf("%q: %v", conf, err)
			continue
		}
		if want := time.Date(2026, 12, 3, 9, 57, 0, 123e6, time.UTC); !got[0].time.Std().Equal(want) {
			t.Errorf("%q: time %v, want %v", conf, got[0].time.Std().UTC(), want)
		}
	}
}

func TestJSONArrayAndOrder(t *testing.T) {
	got, err := parseAll(t, build(t, "@type json"), `[{"b":1,"a":2},{"z":{"y":[1,2.5,null,true]}}]`)
	if err != nil || len(got) != 2 {
		t.Fatalf("%d records, %v", len(got), err)
	}
	var keys []string
	p := build(t, "@type json")
	p.Parse([]byte(`{"b":1,"a":2,"c":3}`), func(_ event.Time, rec []byte) error {
		event.Record(rec).Each(func(k []byte, _ event.Value) bool { keys = append(keys, string(k)); return true })
		return nil
	})
	if strings.Join(keys, "") != "bac" {
		t.Errorf("key order %v, want the JSON's", keys)
	}
}

func TestParseErrors(t *testing.T) {
	cases := []struct{ conf, input string }{
		{"@type regexp\nexpression /^(?<a>\\d+)$/", "not digits"},
		{"@type json", `{"unterminated": `},
		{"@type json", `"a string"`},
		{"@type json", `{"a":1} trailing`},
		{"@type apache2", "garbage"},
		{"@type syslog\nmessage_format rfc5424", "<1>Feb 28 12:00:00 h a: m"},
		{"@type csv\nkeys a\ntime_key a\ntime_format %Y", "notayear"},
		{"@type msgpack", "\xc1"},
	}
	for _, tc := range cases {
		if _, err := parseAll(t, build(t, tc.conf), tc.input); err == nil {
			t.Errorf("%q with %q: no error", tc.input, tc.conf)
		}
	}
}

func TestRubyRegexpErrors(t *testing.T) {
	e := plugintest.Build(t, "<match **>\n  @type null\n</match>\n")
	for _, expr := range []string{`/(?<=a)b/`, `/(?!x)/`, `/a/x`, `/(?<n>a)\1/`} {
		root, _ := config.Parse("p.conf", []byte("<parse>\n@type regexp\nexpression "+expr+"\n</parse>\n"), nil)
		if _, err := e.Builder().Parser(root.Elements[0], ""); err == nil {
			t.Errorf("%s was accepted", expr)
		}
	}
	root, _ := config.Parse("p.conf", []byte("<parse>\n@type regexp\nexpression /no groups/\n</parse>\n"), nil)
	if _, err := e.Builder().Parser(root.Elements[0], ""); err == nil || !strings.Contains(err.Error(), "named group") {
		t.Errorf("expression without named groups: %v", err)
	}
}

// The seed 002 expression on the seed's body shape.
const seedExpression = `/^(?<path>[^\s]+) (?<content>.+)$/m`

func TestSeed002Expression(t *testing.T) {
	got, err := parseAll(t, build(t, "@type regexp\nexpression "+seedExpression), "customer-17/events some content\nsecond line")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"path": "customer-17/events", "content": "some content\nsecond line"}
	if !reflect.DeepEqual(got[0].record, want) {
		t.Errorf("record %#v", got[0].record)
	}
}

func BenchmarkRegexpSeed002(b *testing.B) {
	p := build(b, "@type regexp\nexpression "+seedExpression)
	line := []byte(`customer-17/events {"user":"u-8812","event":"page_view","url":"/products/2231","ts":"2018-10-31T21:31:59Z"}`)
	emit := func(event.Time, []byte) error { return nil }
	b.SetBytes(int64(len(line)))
	b.ReportAllocs()
	for b.Loop() {
		if err := p.Parse(line, emit); err != nil {
			b.Fatal(err)
		}
	}
}

func FuzzParsers(f *testing.F) {
	confs := []string{
		"@type regexp\nexpression " + seedExpression, "@type json", "@type msgpack", "@type ltsv", "@type csv\nkeys a,b,c",
		"@type tsv\nkeys a,b", "@type apache2", "@type apache_error", "@type nginx", "@type syslog\nmessage_format auto",
		"@type none", "@type multiline\nformat1 /^(?<a>.*)$/", "@type cri", "@type cri\nmerge_cri_fields false\nkeep_time_key true",
		"@type multi_format\n<pattern>\n  format json\n</pattern>\n<pattern>\n  format syslog\n</pattern>\n<pattern>\n  format none\n</pattern>",
	}
	var parsers []plugin.Parser
	for _, c := range confs {
		parsers = append(parsers, build(f, c))
	}
	for _, s := range []string{"customer-17/events x", `{"a":[1,{"b":null}]}`, "a:1\tb:2", `1,"2",3`,
		`1.2.3.4 - - [28/Feb/2013:12:00:00 +0900] "GET / HTTP/1.1" 200 1 "-" "x"`, "<16>1 2013-02-28T12:00:00Z h a - - - m", "\x81\xa1a\x01",
		"2026-12-06T10:00:00.123456789Z stdout F hello"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		for _, p := range parsers {
			_ = p.Parse(text, func(_ event.Time, rec []byte) error {
				if msgp.NextType(rec) != msgp.MapType {
					t.Fatalf("%T emitted a record that is not a map", p)
				}
				if _, err := msgp.Skip(rec); err != nil {
					t.Fatalf("%T emitted malformed msgpack: %v", p, err)
				}
				return nil
			})
		}
	})
}

// TestMultiFormat: the first <pattern> that matches parses the text; one
// none at the end takes whatever the others did not.
func TestMultiFormat(t *testing.T) {
	p := build(t, `@type multi_format
<pattern>
  format json
  time_key ts
  time_type float
</pattern>
<pattern>
  format /^(?<level>[A-Z]+) (?<msg>.*)$/
</pattern>
<pattern>
  format none
</pattern>`)
	for text, want := range map[string]map[string]any{
		`{"a":1,"ts":1700000000.5}`: {"a": int64(1)},
		"WARN disk almost full":     {"level": "WARN", "msg": "disk almost full"},
		"plain text":                {"message": "plain text"},
	} {
		got, err := parseAll(t, p, text)
		if err != nil || len(got) != 1 || fmt.Sprint(got[0].record) != fmt.Sprint(want) {
			t.Errorf("%q: %v %v, want %v", text, got, err, want)
		}
		if text[0] == '{' && got[0].time != event.Time(1700000000500000000) {
			t.Errorf("json pattern's time %v", got[0].time)
		}
	}
	strict := build(t, "@type multi_format\n<pattern>\n  format json\n</pattern>")
	if _, err := parseAll(t, strict, "not json"); !errors.Is(err, parser.ErrNoMatch) {
		t.Errorf("no pattern matched: %v", err)
	}
}
