package engine

import (
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/inject"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Fluentd v0.12 put an output's buffer parameters in the output's own
// section; v1's compat_parameters helper turns them into a <buffer> when
// the section has none, and so does Sluice. The names are Fluentd's.
var v012BufferParams = []struct{ old, v1 string }{
	{"buffer_type", "@type"},
	{"buffer_path", "path"},
	{"num_threads", "flush_thread_count"},
	{"flush_interval", "flush_interval"},
	{"try_flush_interval", "flush_thread_interval"},
	{"queued_chunk_flush_interval", "flush_thread_burst_interval"},
	{"disable_retry_limit", "retry_forever"},
	{"retry_limit", "retry_max_times"},
	{"retry_wait", "retry_wait"},
	{"max_retry_wait", "retry_max_interval"},
	{"buffer_chunk_limit", "chunk_limit_size"},
	{"buffer_queue_limit", "queue_limit_length"},
	{"buffer_queue_full_action", "overflow_action"},
	{"flush_at_shutdown", "flush_at_shutdown"},
	{"time_slice_wait", "timekey_wait"},
	{"timezone", "timekey_zone"},
}

// v012Buffer returns the <buffer> that el's flat v0.12 parameters
// describe, or nil when it has none. declared are the parameters the
// output itself takes (s3's time_slice_format and timezone are its own
// as well): those are read, not consumed.
func v012Buffer(el *config.Element, declared map[string]bool) (*config.Element, error) {
	var buf *config.Element
	add := func(p *config.Param, key, value string) {
		if buf == nil {
			buf = &config.Element{Name: "buffer", Pos: p.Pos}
			buf.MarkUsed()
		}
		buf.Params = append(buf.Params, &config.Param{Key: key, Value: value, Pos: p.Pos})
	}
	for _, m := range v012BufferParams {
		if declared[m.old] {
			continue
		}
		p := el.Param(m.old)
		if p == nil {
			continue
		}
		value := p.Value
		if m.old == "buffer_queue_full_action" && value == "exception" {
			value = "throw_exception"
		}
		add(p, m.v1, value)
	}
	// time_slice_format chose the time chunks' width: by its finest field.
	if p := el.Param("time_slice_format"); p != nil {
		width := ""
		for _, f := range []struct{ field, width string }{{"%S", "1s"}, {"%M", "1m"}, {"%H", "1h"}, {"%d", "1d"}} {
			if strings.Contains(p.Value, f.field) {
				width = f.width
				break
			}
		}
		if width == "" {
			return nil, config.Errorf(p.Pos, "time_slice_format %q: no %%d, %%H, %%M or %%S to take the time chunks' width from", p.Value)
		}
		add(p, "timekey", width)
		buf.Arg = "time"
	} else if p := el.Param("flush_interval"); p != nil && !declared["flush_interval"] {
		// A v0.12 output that was not time-sliced flushed every
		// flush_interval.
		add(p, "flush_mode", "interval")
	}
	return buf, nil
}

// v012Path turns a v0.12 buffer_path, which named chunk files with a '*'
// (/var/buffer/s3.*.buffer), into the directory a Sluice file buffer keeps
// them in (/var/buffer/s3), beside which Fluentd's own chunks are found
// and imported at start (buffer.File looks for path.*).
func v012Path(path string) (string, error) {
	i := strings.IndexByte(path, '*')
	if i < 0 {
		return path, nil
	}
	dir := strings.TrimRight(path[:i], ".")
	if dir == "" || strings.HasSuffix(dir, "/") {
		return "", fmt.Errorf("buffer path %q: a '*' needs a name before it (as in /var/buffer/s3.*.buffer)", path)
	}
	return dir, nil
}

// declaredParams are the names of the parameters a plugin type takes in its
// own section.
func declaredParams(info plugin.Info) map[string]bool {
	out := map[string]bool{}
	for _, p := range plugin.Params(info) {
		if !strings.HasPrefix(p.Name, "<") {
			out[p.Name] = true
		}
	}
	return out
}

// expandWorkers puts the body of each <worker N> and <worker N-M> in
// root's place of it, once: Sluice is one process that uses every core,
// where Fluentd ran each body in the workers named. As in Fluentd, a
// worker id must be below <system> workers (1 when unset).
func expandWorkers(root *config.Element, workers int) error {
	if workers < 1 {
		workers = 1
	}
	var out []*config.Element
	var errs []error
	for _, el := range root.Elements {
		if el.Name != "worker" {
			out = append(out, el)
			continue
		}
		el.MarkUsed()
		first, last, err := workerRange(el.Arg)
		if err == nil && (first < 0 || last >= workers || first > last) {
			err = fmt.Errorf("worker id %s is not allowed: <system> workers is %d, so ids run from 0 to %d", el.Arg, workers, workers-1)
		}
		if err != nil {
			errs = append(errs, config.Errorf(el.Pos, "<worker %s>: %v", el.Arg, err))
			el.MarkAllUsed()
			continue
		}
		if len(el.Params) > 0 {
			errs = append(errs, config.Errorf(el.Params[0].Pos, "<worker %s> takes sections only, not %s", el.Arg, el.Params[0].Key))
		}
		root.AddNotice(el.Pos, fmt.Sprintf("<worker %s>: the body runs once, as if at the top level: Sluice is one process that uses every core", el.Arg))
		out = append(out, el.Elements...)
	}
	root.Elements = out
	return errors.Join(errs...)
}

func workerRange(arg string) (int, int, error) {
	lo, hi, ranged := strings.Cut(strings.TrimSpace(arg), "-")
	first, err := strconv.Atoi(strings.TrimSpace(lo))
	if err != nil {
		return 0, 0, fmt.Errorf("want a worker id (0) or a range (0-3)")
	}
	if !ranged {
		return first, first, nil
	}
	last, err := strconv.Atoi(strings.TrimSpace(hi))
	if err != nil {
		return 0, 0, fmt.Errorf("want a worker id (0) or a range (0-3)")
	}
	return first, last, nil
}

// injector builds an output's <inject>, or the one v0.12's flat
// include_tag_key and include_time_key describe (as Fluentd's
// compat_parameters does); nil when it adds nothing.
func (g *graph) injector(info plugin.Info, el *config.Element, declared map[string]bool) (*inject.Injector, error) {
	cfg, err := injectConfig(info)
	if err != nil {
		return nil, err
	}
	secs := el.Sections("inject")
	switch {
	case len(secs) > 1:
		return nil, config.Errorf(secs[1].Pos, "only one <inject> is allowed")
	case len(secs) == 1:
		if err := config.Decode(secs[0], &cfg); err != nil {
			return nil, err
		}
	default:
		flat := func(key string) (*config.Param, bool) {
			if declared[key] {
				return nil, false
			}
			p := el.Param(key)
			return p, p != nil
		}
		on := func(key string) bool {
			p, ok := flat(key)
			if !ok {
				return false
			}
			b, err := config.ParseBool(p.Value)
			return err == nil && b
		}
		if on("include_tag_key") {
			cfg.TagKey = "tag"
			if p, ok := flat("tag_key"); ok {
				cfg.TagKey = p.Value
			}
		}
		if on("include_time_key") {
			cfg.TimeKey, cfg.TimeType = "time", "string"
			if p, ok := flat("time_key"); ok {
				cfg.TimeKey = p.Value
			}
			if p, ok := flat("time_format"); ok {
				cfg.TimeFormat = p.Value
			}
			if p, ok := flat("timezone"); ok {
				cfg.Timezone = p.Value
			}
			if on("utc") {
				cfg.UTC = true
			}
			if p, ok := flat("localtime"); ok {
				cfg.Localtime, _ = config.ParseBool(p.Value)
			}
		}
	}
	in, err := inject.New(cfg, g.eng.hostname)
	if err != nil {
		pos := el.Pos
		if len(secs) == 1 {
			pos = secs[0].Pos
		}
		return nil, config.Errorf(pos, "%v", err)
	}
	return in, nil
}

// v0.12 named a plugin's formatter and parser with flat parameters; v1's
// compat_parameters turns them into <format> and <parse>, and so does
// Sluice, for the plugins that take such a section. Each list maps a flat
// name to the section's.
var (
	v012FormatParams = map[string]string{"format": "@type", "delimiter": "delimiter", "force_quotes": "force_quotes",
		"keys": "fields", "add_newline": "add_newline", "output_key": "message_key", "output_tag": "output_tag",
		"output_time": "output_time", "output_type": "output_type"}
	v012ParseParams = map[string]string{"format": "@type", "time_format": "time_format", "time_key": "time_key",
		"keep_time_key": "keep_time_key", "types": "types", "null_value_pattern": "null_value_pattern",
		"null_empty_string": "null_empty_string", "estimate_current_event": "estimate_current_event",
		"time_type": "time_type", "keys": "keys", "delimiter": "delimiter", "message_key": "message_key",
		"format_firstline": "format_firstline", "multiline_flush_interval": "multiline_flush_interval"}
)

// v012Sections adds to el the <format> or <parse> its flat v0.12
// parameters describe, when el has none and its type takes one.
func v012Sections(el *config.Element, info plugin.Info, declared map[string]bool) {
	for name, sec := range info.Sections {
		var params map[string]string
		switch sec.Kind {
		case plugin.KindFormatter:
			params = v012FormatParams
		case plugin.KindParser:
			params = v012ParseParams
		default:
			continue
		}
		if len(el.Sections(name)) > 0 || declared["format"] {
			continue
		}
		kind := el.Param("format")
		if kind == nil && !(sec.Kind == plugin.KindFormatter && el.Param("output_type") != nil) {
			continue
		}
		made := &config.Element{Name: name, Pos: el.Pos}
		for old, key := range params {
			if declared[old] {
				continue
			}
			p := el.Param(old)
			if p == nil {
				continue
			}
			value := p.Value
			if old == "format" && len(value) >= 2 && value[0] == '/' && value[len(value)-1] == '/' {
				// format /re/ is the regexp parser.
				made.Params = append(made.Params, &config.Param{Key: "expression", Value: value, Pos: p.Pos})
				value = "regexp"
			}
			made.Params = append(made.Params, &config.Param{Key: key, Value: value, Pos: p.Pos})
		}
		if kind == nil { // stdout's output_type alone
			made.Params = append(made.Params, &config.Param{Key: "@type", Value: sec.Default, Pos: el.Pos})
		}
		sort.Slice(made.Params, func(i, j int) bool { return made.Params[i].Key < made.Params[j].Key })
		el.Elements = append(el.Elements, made)
	}
}

// portConflicts reports each source that would bind a TCP port another
// source binds: certain to fail at start, so reported at check.
func (g *graph) portConflicts() {
	type taken struct {
		host string
		pos  config.Pos
	}
	byPort := map[string][]taken{}
	for _, n := range g.inputs {
		l, ok := n.p.(plugin.Listener)
		if !ok {
			continue
		}
		for _, addr := range l.Listens() {
			host, port, err := net.SplitHostPort(addr)
			if err != nil || port == "0" {
				continue
			}
			for _, t := range byPort[port] {
				if host == t.host || anyHost(host) || anyHost(t.host) {
					g.fail(config.Errorf(n.pos, "port %s is already taken by the source at %s", port, t.pos))
				}
			}
			byPort[port] = append(byPort[port], taken{host, n.pos})
		}
	}
}

func anyHost(h string) bool { return h == "" || h == "0.0.0.0" || h == "::" || h == "[::]" }
