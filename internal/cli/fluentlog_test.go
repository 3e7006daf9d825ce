package cli

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
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
