// Package transform holds filters that select and reshape records: grep
// and record_transformer.
package transform

import (
	"context"
	"fmt"
	"regexp"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/parser"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Grep keeps a record when every <regexp> matches its field and no
// <exclude> does.
type Grep struct {
	Regexps  []GrepRule `section:"regexp"`
	Excludes []GrepRule `section:"exclude"`

	keep, drop []grepMatcher
}

// GrepRule is one <regexp> or <exclude>.
type GrepRule struct {
	Key     string `conf:"key,required"`
	Pattern string `conf:"pattern,required"`
}

type grepMatcher struct {
	path []string
	re   *regexp.Regexp
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindFilter, Type: "grep", Summary: "keep or drop records by regular expressions",
		New: func() any { return &Grep{} }})
}

// Configure implements plugin.Configurer.
func (g *Grep) Configure(*plugin.Context) error {
	build := func(rules []GrepRule) ([]grepMatcher, error) {
		var out []grepMatcher
		for _, r := range rules {
			path, err := buffer.RecordPath(r.Key)
			if err != nil {
				return nil, err
			}
			re, err := parser.CompileRuby(r.Pattern)
			if err != nil {
				return nil, fmt.Errorf("pattern for %s: %w", r.Key, err)
			}
			out = append(out, grepMatcher{path: path, re: re})
		}
		return out, nil
	}
	var err error
	if g.keep, err = build(g.Regexps); err != nil {
		return err
	}
	g.drop, err = build(g.Excludes)
	return err
}

func (g *Grep) pass(r event.Record, scratch []byte) ([]byte, bool) {
	for _, m := range g.keep {
		v, ok := r.Lookup(m.path)
		if !ok {
			return scratch, false
		}
		scratch = v.AppendText(scratch[:0])
		if !m.re.Match(scratch) {
			return scratch, false
		}
	}
	for _, m := range g.drop {
		v, ok := r.Lookup(m.path)
		if !ok {
			continue
		}
		scratch = v.AppendText(scratch[:0])
		if m.re.Match(scratch) {
			return scratch, false
		}
	}
	return scratch, true
}

// Filter implements plugin.Filter. When every record passes, the stream is
// returned as it came, without a copy.
func (g *Grep) Filter(_ context.Context, s event.Stream, b *event.Builder) (event.Stream, error) {
	var scratch [256]byte
	buf := scratch[:0]
	r := event.NewReader(s.Data)
	dropped := false
	offset := 0
	for r.Next() {
		e := r.Entry()
		var ok bool
		buf, ok = g.pass(e.Record, buf)
		switch {
		case ok && dropped:
			b.AppendRaw(e.Raw)
		case !ok && !dropped:
			dropped = true
			b.AppendEntries(s.Data[:offset], r.Count()-1)
		}
		offset += len(e.Raw)
	}
	if err := r.Err(); err != nil {
		return s, err
	}
	if !dropped {
		return s, nil
	}
	return b.Stream(s.Tag), nil
}
