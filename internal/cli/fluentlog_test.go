package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/engine"
)

// TestFluentdLogFormat: lines as Fluentd writes them, the plugin_id of a
// plugin's logger in brackets, attributes after the message.
func TestFluentdLogFormat(t *testing.T) {
	var b bytes.Buffer
	h := newFluentdHandler(&b, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: clipAttr})
	log := slog.New(h)
	r := slog.NewRecord(time.Date(2026, 12, 3, 9, 57, 0, 0, time.UTC), slog.LevelWarn, "chunk written to <secondary>", 0)
	r.AddAttrs(slog.Int("records", 12), slog.String("path", "/var/log/a b"))
	if err := log.With("plugin_id", "s3_out", "type", "s3").Handler().Handle(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	log.Debug("plain", "err", errors.New("boom"))
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if want := `2026-12-03 09:57:00 +0000 [warn]: #0 [s3_out] chunk written to <secondary> type=s3 records=12 path="/var/log/a b"`; lines[0] != want {
		t.Errorf("got  %s\nwant %s", lines[0], want)
	}
	if !strings.Contains(lines[1], " [debug]: #0 plain err=boom") {
		t.Errorf("line %q", lines[1])
	}
	if log.Handler().Enabled(t.Context(), slog.LevelDebug-4) {
		t.Error("trace enabled at debug")
	}
}

// TestFluentdJSONLogFormat: <log> format json has Fluentd's keys, the
// plugin_id and attributes after them, and a configured strftime time.
func TestFluentdJSONLogFormat(t *testing.T) {
	var b bytes.Buffer
	sys := engine.DefaultSystem()
	sys.Log.Format = "json"
	sys.Log.TimeFormat = "%Y-%m-%dT%H:%M:%S%z"
	log, err := newLogger(&b, sys, &options{})
	if err != nil {
		t.Fatal(err)
	}
	r := slog.NewRecord(time.Date(2026, 12, 3, 9, 57, 0, 0, time.UTC), slog.LevelError, `write failed: "503" <html>`, 0)
	r.AddAttrs(slog.Int("records", 12))
	if err := log.With("plugin_id", "s3_out").Handler().Handle(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	want := `{"time":"2026-12-03T09:57:00+0000","level":"error","message":"write failed: \"503\" <html>","plugin_id":"s3_out","records":"12"}` + "\n"
	if b.String() != want {
		t.Errorf("got  %swant %s", b.String(), want)
	}
	var m map[string]any
	if err := json.Unmarshal(b.Bytes(), &m); err != nil {
		t.Errorf("not JSON: %v", err)
	}
}

// TestLogFormatsByName: text is Fluentd's text (the default), logfmt is
// key=value, and an unknown name is refused.
func TestLogFormatsByName(t *testing.T) {
	for format, want := range map[string]string{"": "[info]: #0 hello n=1", "text": "[info]: #0 hello n=1", "logfmt": "level=INFO msg=hello n=1"} {
		var b bytes.Buffer
		sys := engine.DefaultSystem()
		sys.Log.Format = format
		log, err := newLogger(&b, sys, &options{})
		if err != nil {
			t.Fatal(err)
		}
		log.Info("hello", "n", 1)
		if !strings.Contains(b.String(), want) {
			t.Errorf("format %q: %q, want %q in it", format, b.String(), want)
		}
	}
	if _, err := newLogger(io.Discard, engine.DefaultSystem(), &options{logFormat: "xml"}); err == nil {
		t.Error("log format xml accepted")
	}
}
