// Package transform holds filters that select and reshape records: grep
// and record_transformer.
package transform

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/parser"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Grep keeps a record when every <regexp> matches its field and no
// <exclude> does. <and> and <or> group rules: a record passes an <and> of
// regexps when all match and an <or> of regexps when one does; it is
// dropped by an <and> of excludes when all match and by an <or> of
// excludes when one does. A missing field matches nothing.
type Grep struct {
	Regexps  []GrepRule  `section:"regexp" desc:"Keep only records whose key matches pattern (all <regexp>s must match)."`
	Excludes []GrepRule  `section:"exclude" desc:"Drop records whose key matches pattern (any <exclude> drops)."`
	And      []GrepGroup `section:"and" desc:"Keep a record only if every rule inside holds."`
	Or       []GrepGroup `section:"or" desc:"Keep a record if any rule inside holds."`

	keep, drop []grepMatcher
	groups     []grepGroup
}

// GrepGroup is an <and> or <or> of rules.
type GrepGroup struct {
	Regexps  []GrepRule `section:"regexp" desc:"Keep only records whose key matches pattern (all <regexp>s must match)."`
	Excludes []GrepRule `section:"exclude" desc:"Drop records whose key matches pattern (any <exclude> drops)."`
}

type grepGroup struct {
	all        bool // <and>
	keep, drop []grepMatcher
}

// GrepRule is one <regexp> or <exclude>.
type GrepRule struct {
	Key     string `conf:"key,required" desc:"The record field the rule looks at ($.a.b or a.b for a nested one)."`
	Pattern string `conf:"pattern,required" desc:"The regular expression, as /.../."`
}

type grepMatcher struct {
	path []string
	re   *regexp.Regexp
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindFilter, Type: "grep", Summary: "keep or drop records by regular expressions",
		New: func() any { return &Grep{} }})
}

// Configure implements plugin.Configurer. v0.12's flat regexp1 ...
// regexp20 and exclude1 ... exclude20 ("KEY PATTERN") are rules too, as
// in Fluentd.
func (g *Grep) Configure(c *plugin.Context) error {
	if c.Element != nil {
		for i := 1; i <= 20; i++ {
			for _, flat := range []struct {
				name  string
				rules *[]GrepRule
			}{{"regexp", &g.Regexps}, {"exclude", &g.Excludes}} {
				p := c.Element.Param(fmt.Sprintf("%s%d", flat.name, i))
				if p == nil {
					continue
				}
				key, pattern, ok := strings.Cut(strings.TrimSpace(p.Value), " ")
				if !ok {
					return config.Errorf(p.Pos, "%s%d: want KEY PATTERN", flat.name, i)
				}
				*flat.rules = append(*flat.rules, GrepRule{Key: key, Pattern: strings.TrimSpace(pattern)})
			}
		}
	}
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
	if g.drop, err = build(g.Excludes); err != nil {
		return err
	}
	for _, set := range []struct {
		groups []GrepGroup
		all    bool
	}{{g.And, true}, {g.Or, false}} {
		for _, grp := range set.groups {
			gg := grepGroup{all: set.all}
			if gg.keep, err = build(grp.Regexps); err != nil {
				return err
			}
			if gg.drop, err = build(grp.Excludes); err != nil {
				return err
			}
			if len(gg.keep) == 0 && len(gg.drop) == 0 {
				return fmt.Errorf("an <and> or <or> needs <regexp> or <exclude> rules")
			}
			g.groups = append(g.groups, gg)
		}
	}
	return nil
}

// matches reports whether m's pattern matches the record's field.
func (m grepMatcher) matches(r event.Record, scratch []byte) ([]byte, bool) {
	v, ok := r.Lookup(m.path)
	if !ok {
		return scratch, false
	}
	scratch = v.AppendText(scratch[:0])
	return scratch, m.re.Match(scratch)
}

// passGroup applies one <and> or <or>.
func (gg grepGroup) pass(r event.Record, scratch []byte) ([]byte, bool) {
	count := func(ms []grepMatcher) (int, []byte) {
		n := 0
		for _, m := range ms {
			var hit bool
			if scratch, hit = m.matches(r, scratch); hit {
				n++
			}
		}
		return n, scratch
	}
	if len(gg.keep) > 0 {
		var n int
		n, scratch = count(gg.keep)
		if (gg.all && n < len(gg.keep)) || (!gg.all && n == 0) {
			return scratch, false
		}
	}
	if len(gg.drop) > 0 {
		var n int
		n, scratch = count(gg.drop)
		if (gg.all && n == len(gg.drop)) || (!gg.all && n > 0) {
			return scratch, false
		}
	}
	return scratch, true
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
	for _, gg := range g.groups {
		var ok bool
		if scratch, ok = gg.pass(r, scratch); !ok {
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
