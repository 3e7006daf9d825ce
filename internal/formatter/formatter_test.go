package formatter_test

import (
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// The event of Fluentd's formatter documentation: tag app.event, time
// 1362020400 (2013-02-28 12:00:00 +09:00).
func docEvent(tb testing.TB) (string, event.Time, event.Record) {
	rec, err := event.EncodeRecord(map[string]any{"host": "192.168.0.1", "size": 777, "method": "PUT"})
	if err != nil {
		tb.Fatal(err)
	}
	return "app.event", event.Time(1362020400 * 1e9), event.Record(rec)
}

func TestFormatters(t *testing.T) {
	e := plugintest.Build(t, "<match **>\n  @type null\n</match>\n")
	cases := []struct{ name, conf, want string }{
		{"json", "@type json", `{"host":"192.168.0.1","method":"PUT","size":777}` + "\n"},
		{"json no newline", "@type json\nadd_newline false", `{"host":"192.168.0.1","method":"PUT","size":777}`},
		{"single_value", "@type single_value\nmessage_key host", "192.168.0.1\n"},
		{"single_value missing", "@type single_value", "\n"},
		{"ltsv", "@type ltsv", "host:192.168.0.1\tmethod:PUT\tsize:777\n"},
		{"csv", "@type csv\nfields host,size,missing", `"192.168.0.1","777",` + "\n"},
		{"csv unquoted", "@type csv\nfields method,size\nforce_quotes false\ndelimiter \\t", "PUT\t777\n"},
		{"out_file", "@type out_file\ntimezone +09:00", "2013-02-28T12:00:00+09:00\tapp.event\t{\"host\":\"192.168.0.1\",\"method\":\"PUT\",\"size\":777}\n"},
		{"out_file comma unixtime", "@type out_file\ndelimiter COMMA\ntime_type unixtime\noutput_tag false", "1362020400,{\"host\":\"192.168.0.1\",\"method\":\"PUT\",\"size\":777}\n"},
		{"stdout", "@type stdout\ntimezone +09:00", "2013-02-28 12:00:00.000000000 +0900 app.event: {\"host\":\"192.168.0.1\",\"method\":\"PUT\",\"size\":777}\n"},
		{"stdout ltsv", "@type stdout\noutput_type ltsv\nutc", "2013-02-28 03:00:00.000000000 +0000 app.event: host:192.168.0.1\tmethod:PUT\tsize:777\n"},
		{"hash", "@type hash", `{"host"=>"192.168.0.1", "method"=>"PUT", "size"=>777}` + "\n"},
		{"msgpack", "@type msgpack", ""},
	}
	tag, tm, rec := docEvent(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, err := config.Parse("f.conf", []byte("<format>\n"+tc.conf+"\n</format>\n"), nil)
			if err != nil {
				t.Fatal(err)
			}
			f, err := e.Builder().Formatter(root.Elements[0], "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Format(nil, tag, tm, rec)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if tc.name == "msgpack" {
				want = string(rec)
			}
			if string(got) != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

func TestHashEscapes(t *testing.T) {
	e := plugintest.Build(t, "<match **>\n  @type null\n</match>\n")
	root, _ := config.Parse("f.conf", []byte("<format>\n@type hash\n</format>\n"), nil)
	f, err := e.Builder().Formatter(root.Elements[0], "")
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := event.EncodeRecord(map[string]any{"a": "q\"\\#{x}\n", "b": nil, "c": []any{1.5, true}, "d": map[string]any{"e": "f"}})
	got, _ := f.Format(nil, "t", event.FromStd(time.Unix(0, 0)), rec)
	want := `{"a"=>"q\"\\\#{x}\n", "b"=>nil, "c"=>[1.5, true], "d"=>{"e"=>"f"}}` + "\n"
	if string(got) != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}
