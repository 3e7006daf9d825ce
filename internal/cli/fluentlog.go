package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/strftime"
)

// fluentdHandler writes Sluice's own log as Fluentd writes its own, so that
// log parsers and alerts written for Fluentd's keep working. Text:
//
//	2026-12-03 09:57:00 +0000 [warn]: #0 [s3_out] chunk written to <secondary> records=12
//
// The plugin_id attribute a plugin's logger carries becomes the bracketed
// prefix; the other attributes follow the message as key=value, strings
// quoted when they hold spaces or quotes. JSON has Fluentd's keys, time,
// level and message, then plugin_id and the other attributes:
//
//	{"time":"2026-12-03 09:57:00 +0000","level":"warn","message":"chunk written to <secondary>","plugin_id":"s3_out","records":"12"}
type fluentdHandler struct {
	mu         *sync.Mutex
	w          io.Writer
	level      slog.Leveler
	json       bool
	timeFormat string // strftime; Fluentd's default when empty
	pluginID   string
	attrs      []byte // rendered pairs of With
	group      string
	replace    func([]string, slog.Attr) slog.Attr
}

// fluentdTimeFormat is <system><log> time_format's default, Fluentd's.
const fluentdTimeFormat = "%Y-%m-%d %H:%M:%S %z"

func newFluentdHandler(w io.Writer, opts *slog.HandlerOptions) *fluentdHandler {
	return &fluentdHandler{mu: &sync.Mutex{}, w: w, level: opts.Level, replace: opts.ReplaceAttr, timeFormat: fluentdTimeFormat}
}

func (h *fluentdHandler) Enabled(_ context.Context, l slog.Level) bool {
	return h.level == nil || l >= h.level.Level()
}

func (h *fluentdHandler) Handle(_ context.Context, r slog.Record) error {
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	id := h.pluginID
	var rest []byte
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "plugin_id" && h.group == "" {
			id = a.Value.String()
			return true
		}
		rest = h.appendAttr(rest, a)
		return true
	})
	var b []byte
	if h.json {
		b = append(b, `{"time":`...)
		b = appendJSONString(b, strftime.Format(h.timeFormat, t))
		b = append(b, `,"level":"`...)
		b = append(b, engine.FluentLevel(r.Level)...)
		b = append(b, `","message":`...)
		b = appendJSONString(b, r.Message)
		if id != "" {
			b = append(b, `,"plugin_id":`...)
			b = appendJSONString(b, id)
		}
		b = append(b, h.attrs...)
		b = append(b, rest...)
		b = append(b, "}\n"...)
	} else {
		b = strftime.Append(b, h.timeFormat, t)
		b = append(b, " ["...)
		b = append(b, engine.FluentLevel(r.Level)...)
		b = append(b, "]: #0 "...)
		if id != "" {
			b = append(append(append(b, '['), id...), "] "...)
		}
		b = append(b, r.Message...)
		b = append(b, h.attrs...)
		b = append(b, rest...)
		b = append(b, '\n')
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := h.w.Write(b)
	return err
}

func (h *fluentdHandler) appendAttr(b []byte, a slog.Attr) []byte {
	if h.replace != nil {
		a = h.replace(nil, a)
	}
	if a.Equal(slog.Attr{}) {
		return b
	}
	key := a.Key
	if h.group != "" {
		key = h.group + "." + key
	}
	v := a.Value.Resolve().String()
	if h.json {
		b = appendJSONString(append(b, ','), key)
		return appendJSONString(append(b, ':'), v)
	}
	b = append(append(append(b, ' '), key...), '=')
	if v == "" || needsQuote(v) {
		return strconv.AppendQuote(b, v)
	}
	return append(b, v...)
}

// appendJSONString appends s as a JSON string; encoding/json's rules,
// without its HTML escaping, so that a message reads as written.
func appendJSONString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s) // a string always encodes
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

func needsQuote(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == '"' || c == '=' || c >= 0x7f {
			return true
		}
	}
	return false
}

func (h *fluentdHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append([]byte(nil), h.attrs...)
	for _, a := range attrs {
		if a.Key == "plugin_id" && h.group == "" {
			c.pluginID = a.Value.String()
			continue
		}
		c.attrs = c.appendAttr(c.attrs, a)
	}
	return &c
}

func (h *fluentdHandler) WithGroup(name string) slog.Handler {
	c := *h
	if c.group != "" {
		name = c.group + "." + name
	}
	c.group = name
	return &c
}

var _ slog.Handler = (*fluentdHandler)(nil)
