package parser

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// CompileRuby compiles a Ruby regular expression as Fluentd users write
// it: "/expr/flags" (i: ignore case; m: '.' matches newlines, Go's s; x is
// refused) or a bare expression. Named groups (?<name>...) work as in Ruby;
// \A, \z, \h and \Z are translated; lookaround, backreferences and atomic
// groups, which Go's RE2 engine does not have, are refused with a clear
// error.
func CompileRuby(s string) (*regexp.Regexp, error) {
	expr := s
	var flags string
	if len(s) >= 2 && s[0] == '/' {
		if end := strings.LastIndexByte(s, '/'); end > 0 {
			expr = s[1:end]
			for _, f := range s[end+1:] {
				switch f {
				case 'i':
					flags += "i"
				case 'm':
					flags += "s"
				case 'x':
					return nil, fmt.Errorf("the x (extended) flag is not supported")
				default:
					return nil, fmt.Errorf("unknown regular expression flag %q", f)
				}
			}
		}
	}
	for _, unsupported := range []struct{ seq, what string }{
		{"(?=", "lookahead"}, {"(?!", "negative lookahead"}, {"(?<=", "lookbehind"}, {"(?<!", "negative lookbehind"},
		{"(?>", "atomic groups"},
	} {
		if strings.Contains(expr, unsupported.seq) {
			return nil, fmt.Errorf("%q uses %s, which Go's regular expressions (RE2) do not support", s, unsupported.what)
		}
	}
	expr = translateRuby(expr)
	if flags != "" {
		expr = "(?" + flags + ")" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("%w (Go's RE2 syntax: no lookaround, no backreferences)", err)
	}
	return re, nil
}

// translateRuby rewrites the Ruby escapes RE2 lacks: \h (hex digit) and \Z
// (end of text, before a final newline).
func translateRuby(expr string) string {
	var b strings.Builder
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		if c != '\\' || i+1 == len(expr) {
			b.WriteByte(c)
			continue
		}
		i++
		switch expr[i] {
		case 'h':
			b.WriteString(`[0-9a-fA-F]`)
		case 'H':
			b.WriteString(`[^0-9a-fA-F]`)
		case 'Z':
			b.WriteString(`(?:\n?\z)`)
		default:
			b.WriteByte('\\')
			b.WriteByte(expr[i])
		}
	}
	return b.String()
}

// Regexp is the regexp parser: named groups become fields.
type Regexp struct {
	Expression string `conf:"expression,required" desc:"The regular expression, as /.../ with optional i and m flags; its named groups become the record's fields."`
	IgnoreCase bool   `conf:"ignorecase" desc:"Match the expression without regard to case."`
	Multiline  bool   `conf:"multiline" desc:"Let . in the expression match newlines."`
	Common

	re     *regexp.Regexp
	simple *simpleMatcher // nil unless re has the shape it matches faster
	match  []int
	names  []string
	fields []field
	buf    []byte
}

func init() {
	register("regexp", "named groups of a regular expression", func() any { return &Regexp{Common: defaultCommon("time")} })
}

// Configure implements plugin.Configurer.
func (p *Regexp) Configure(*plugin.Context) error {
	if err := p.Common.configure(); err != nil {
		return err
	}
	re, err := CompileRuby(p.Expression)
	if err != nil {
		return fmt.Errorf("expression: %w", err)
	}
	if p.IgnoreCase || p.Multiline {
		prefix := "(?"
		if p.IgnoreCase {
			prefix += "i"
		}
		if p.Multiline {
			prefix += "s"
		}
		if re, err = regexp.Compile(prefix + ")" + re.String()); err != nil {
			return err
		}
	}
	p.re = re
	p.simple = compileSimple(re)
	p.names = re.SubexpNames()
	named := false
	for _, n := range p.names {
		named = named || n != ""
	}
	if !named {
		return fmt.Errorf("expression %q has no named group (?<name>...)", p.Expression)
	}
	return nil
}

// Parse implements plugin.Parser.
func (p *Regexp) Parse(text []byte, emit func(event.Time, []byte) error) error {
	var m []int
	if p.simple != nil {
		m = p.simple.match(text, p.match)
		if m != nil {
			p.match = m
		}
	} else {
		m = p.re.FindSubmatchIndex(text)
	}
	if m == nil {
		return fmt.Errorf("%w: %q", ErrNoMatch, truncate(text))
	}
	p.fields = p.fields[:0]
	for i, name := range p.names {
		if name == "" {
			continue
		}
		if m[2*i] < 0 {
			continue // Fluentd leaves out groups that did not take part
		}
		p.fields = append(p.fields, field{key: name, val: string(text[m[2*i]:m[2*i+1]])})
	}
	rec, t, err := p.record(p.buf[:0], p.fields)
	p.buf = rec
	if err != nil {
		return err
	}
	return emit(p.eventTime(t), rec)
}

func truncate(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "..."
	}
	return string(b)
}
