package transform

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/parser"
	"github.com/sluice-log/sluice/internal/plugin"
)

// RewriteTagFilter is fluent-plugin-rewrite-tag-filter: an output that
// gives each record a new tag by the first <rule> whose pattern matches
// (or, with invert, does not match) a field, and routes it again in the
// same label. A record no rule takes is dropped, as the plugin does.
//
// The tag may use $1..$9 (groups of the pattern), ${tag}, __TAG__,
// ${tag_parts[N]}, __TAG_PARTS[N]__, ${hostname} and __HOSTNAME__.
type RewriteTagFilter struct {
	Rules                        []RewriteRule `section:"rule" desc:"A rule, tried in order: the first that takes a record gives its new tag."`
	CapitalizeRegexBackreference bool          `conf:"capitalize_regex_backreference" desc:"Capitalize the first letter of each $N value in the new tag."`
	RemoveTagPrefix              string        `conf:"remove_tag_prefix" desc:"Remove this prefix from the tag before ${tag} is substituted."`
	RemoveTagRegexp              string        `conf:"remove_tag_regexp" desc:"Remove what this regular expression matches from the tag before ${tag} is substituted."`
	HostnameCommand              string        `conf:"hostname_command" desc:"Accepted for Fluentd compatibility but not run; ${hostname} is the machine's host name."`
	EmitMode                     string        `conf:"emit_mode" enum:"batch,record" desc:"batch routes records that get the same tag together; record routes them one by one."`
	Label                        string        `conf:"@label" desc:"The <label> the records go to with their new tags; the label this output is in when unset."`

	rules     []rewriteRule
	removeRE  *regexp.Regexp
	hostname  string
	reemit    plugin.Emitter // the label this output is in
	log       *slog.Logger
	pool      sync.Pool
	Unmatched atomic.Int64 // records no rule took, dropped
}

// RewriteRule is one <rule>.
type RewriteRule struct {
	Key     string `conf:"key,required" desc:"The record field the rule looks at ($.a.b or a.b for a nested one)."`
	Pattern string `conf:"pattern,required" desc:"The regular expression, as /.../."`
	Tag     string `conf:"tag,required" desc:"The new tag, with $1..$9 from the pattern's groups, ${tag}, ${tag_parts[N]} and ${hostname}."`
	Invert  bool   `conf:"invert" desc:"The rule takes records whose field does not match."`
	Label   string `conf:"label" desc:"The <label> this rule's records go to, instead of the output's."`
}

type rewriteRule struct {
	path   []string
	re     *regexp.Regexp
	tag    string
	invert bool
	out    plugin.Emitter // where the rule's records go
	label  string         // out's name, for grouping
}

var backref = regexp.MustCompile(`\$([1-9])|\$\{tag\}|__TAG__|\$\{tag_parts\[(-?\d+)\]\}|__TAG_PARTS\[(-?\d+)\]__|\$\{hostname\}|__HOSTNAME__`)

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "rewrite_tag_filter", Summary: "give records new tags by rules and route them again",
		New: func() any { return &RewriteTagFilter{EmitMode: "batch"} }})
}

// Configure implements plugin.Configurer.
func (f *RewriteTagFilter) Configure(c *plugin.Context) error {
	if len(f.Rules) == 0 {
		return fmt.Errorf("rewrite_tag_filter needs at least one <rule>")
	}
	if c.Reemit == nil {
		return fmt.Errorf("rewrite_tag_filter cannot route from here")
	}
	f.reemit, f.log, f.hostname = c.Reemit, c.Logger, c.Hostname
	out := f.reemit
	if f.Label != "" {
		var err error
		if out, err = c.Build.Label(f.Label); err != nil {
			return fmt.Errorf("@label %s: %w", f.Label, err)
		}
	}
	if f.HostnameCommand != "" {
		f.log.Warn("hostname_command is not run; the machine's host name is used", "hostname_command", f.HostnameCommand)
	}
	for _, r := range f.Rules {
		path, err := buffer.RecordPath(r.Key)
		if err != nil {
			return err
		}
		re, err := parser.CompileRuby(r.Pattern)
		if err != nil {
			return fmt.Errorf("<rule> %s: %w", r.Key, err)
		}
		rule := rewriteRule{path: path, re: re, tag: r.Tag, invert: r.Invert, out: out, label: f.Label}
		if r.Label != "" {
			if rule.out, err = c.Build.Label(r.Label); err != nil {
				return fmt.Errorf("<rule> label %s: %w", r.Label, err)
			}
			rule.label = r.Label
		}
		f.rules = append(f.rules, rule)
	}
	if f.RemoveTagRegexp != "" {
		re, err := parser.CompileRuby(f.RemoveTagRegexp)
		if err != nil {
			return fmt.Errorf("remove_tag_regexp: %w", err)
		}
		f.removeRE = re
	}
	f.pool.New = func() any { return &rewriteScratch{groups: map[string]*rewriteGroup{}} }
	return nil
}

type rewriteScratch struct {
	groups map[string]*rewriteGroup // by label and tag
	order  []string
	text   []byte
}

// rewriteGroup is the records of one batch that go to one label and tag.
type rewriteGroup struct {
	b   event.Builder
	out plugin.Emitter
	tag string
}

// Process implements plugin.SyncOutput.
func (f *RewriteTagFilter) Process(ctx context.Context, s event.Stream) error {
	sc := f.pool.Get().(*rewriteScratch)
	defer f.pool.Put(sc)
	for _, g := range sc.groups {
		g.b.Reset()
	}
	sc.order = sc.order[:0]
	r := event.NewReader(s.Data)
	for r.Next() {
		e := r.Entry()
		tag, rule, ok := f.newTag(sc, s.Tag, e.Record)
		if !ok {
			f.Unmatched.Add(1)
			continue
		}
		if tag == s.Tag && rule.out == f.reemit {
			f.log.Warn("a rule gives the same tag again; dropping the record to avoid a loop", "tag", tag)
			continue
		}
		if f.EmitMode == "record" {
			var one event.Builder
			one.AppendRaw(e.Raw)
			if err := rule.out.Emit(ctx, one.Stream(tag)); err != nil {
				return err
			}
			continue
		}
		key := rule.label + "\x00" + tag
		g := sc.groups[key]
		if g == nil {
			if len(sc.groups) > 1024 { // tags come from records: bound the scratch
				clear(sc.groups)
			}
			g = &rewriteGroup{}
			sc.groups[key] = g
		}
		if g.b.Len() == 0 {
			g.out, g.tag = rule.out, tag
			sc.order = append(sc.order, key)
		}
		g.b.AppendRaw(e.Raw)
	}
	for _, key := range sc.order {
		g := sc.groups[key]
		if err := g.out.Emit(ctx, g.b.Stream(g.tag)); err != nil {
			return err
		}
	}
	return r.Err()
}

func (f *RewriteTagFilter) newTag(sc *rewriteScratch, tag string, rec event.Record) (string, *rewriteRule, bool) {
	for i := range f.rules {
		rule := &f.rules[i]
		v, ok := rec.Lookup(rule.path)
		sc.text = sc.text[:0]
		if ok {
			sc.text = v.AppendText(sc.text)
		}
		m := rule.re.FindSubmatch(sc.text)
		if (m != nil) == rule.invert || (!ok && !rule.invert) {
			continue
		}
		return f.render(rule.tag, f.trimTag(tag), m), rule, true
	}
	return "", nil, false
}

func (f *RewriteTagFilter) trimTag(tag string) string {
	if f.RemoveTagPrefix != "" {
		tag = strings.TrimPrefix(strings.TrimPrefix(tag, f.RemoveTagPrefix), ".")
	}
	if f.removeRE != nil {
		tag = f.removeRE.ReplaceAllString(tag, "")
	}
	return tag
}

func (f *RewriteTagFilter) render(tmpl, tag string, m [][]byte) string {
	return backref.ReplaceAllStringFunc(tmpl, func(ph string) string {
		switch {
		case ph == "${tag}" || ph == "__TAG__":
			return tag
		case ph == "${hostname}" || ph == "__HOSTNAME__":
			return f.hostname
		case ph[0] == '$' && len(ph) == 2:
			i := int(ph[1] - '0')
			if i < len(m) {
				s := string(m[i])
				if f.CapitalizeRegexBackreference && s != "" {
					s = strings.ToUpper(s[:1]) + s[1:]
				}
				return s
			}
			return ""
		}
		sub := backref.FindStringSubmatch(ph)
		idx := sub[2] + sub[3]
		n, _ := strconv.Atoi(idx)
		parts := strings.Split(tag, ".")
		if n < 0 {
			n += len(parts)
		}
		if n >= 0 && n < len(parts) {
			return parts[n]
		}
		return ""
	})
}
