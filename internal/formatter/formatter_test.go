package formatter_test

import (
	"fmt"
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
		{"tsv", "@type tsv\nkeys method,missing,size", "PUT\t\t777\n"},
		{"tsv delimiter", "@type tsv\nkeys host,size\ndelimiter |\nadd_newline false", "192.168.0.1|777"},
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

// Buffers format on the emitting goroutines and outputs in every flush
// thread, so one formatter serves many goroutines at once: each must get
// its own event's time (run under -race).
func TestFormatConcurrently(t *testing.T) {
	e := plugintest.Build(t, "<match **>\n  @type null\n</match>\n")
	root, err := config.Parse("f.conf", []byte("<format>\n@type out_file\nutc\noutput_tag false\n</format>\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := e.Builder().Formatter(root.Elements[0], "")
	if err != nil {
		t.Fatal(err)
	}
	_, _, rec := docEvent(t)
	done := make(chan error, 4)
	for g := 0; g < 4; g++ {
		go func() {
			var buf []byte
			for i := 0; i < 2000; i++ {
				sec := int64(1362020400 + (i+g)%7)
				var ferr error
				buf, ferr = f.Format(buf[:0], "x", event.Time(sec*1e9), rec)
				want := time.Unix(sec, 0).UTC().Format("2006-01-02T15:04:05+00:00")
				if ferr != nil || len(buf) < len(want) || string(buf[:len(want)]) != want {
					done <- fmt.Errorf("time %d rendered as %q", sec, buf)
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
