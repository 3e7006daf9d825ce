// Package route matches tags against Fluentd's patterns and resolves a tag
// to the filters and output that handle it.
package route

import (
	"fmt"
	"regexp"
	"strings"
)

// Pattern is the argument of a <match> or <filter>: one or more patterns
// separated by white space, any of which may match.
type Pattern struct {
	src  string
	alts []matcher
}

type matcher interface{ match(tag string) bool }

// maxPatternLen bounds the work of compiling client-facing patterns.
const maxPatternLen = 4096

// Compile parses a pattern list. An empty list matches every tag ("**"),
// as Fluentd's <match> without an argument does.
func Compile(src string) (*Pattern, error) {
	if len(src) > maxPatternLen {
		return nil, fmt.Errorf("pattern longer than %d bytes", maxPatternLen)
	}
	p := &Pattern{src: src}
	fields := splitPatterns(src)
	if len(fields) == 0 {
		fields = []string{"**"}
	}
	for _, f := range fields {
		m, err := compileOne(f)
		if err != nil {
			return nil, fmt.Errorf("pattern %q: %w", f, err)
		}
		p.alts = append(p.alts, m)
	}
	return p, nil
}

// splitPatterns splits on white space outside /regex/ and {...}.
func splitPatterns(s string) []string {
	var out []string
	depth := 0
	inRegex := false
	start := -1
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case start < 0 && (c == ' ' || c == '\t'):
			continue
		case start < 0:
			start = i
			inRegex = c == '/'
			if c == '{' {
				depth++
			}
			continue
		case inRegex:
			if c == '\\' {
				i++
			} else if c == '/' {
				inRegex = false
			}
			continue
		case c == '{':
			depth++
		case c == '}':
			depth--
		case (c == ' ' || c == '\t') && depth <= 0:
			out = append(out, s[start:i])
			start, depth = -1, 0
		}
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out
}

// String returns the source text.
func (p *Pattern) String() string { return p.src }

// Match reports whether tag matches any of the patterns.
func (p *Pattern) Match(tag string) bool {
	for _, m := range p.alts {
		if m.match(tag) {
			return true
		}
	}
	return false
}

type regexMatcher struct{ re *regexp.Regexp }

func (r regexMatcher) match(tag string) bool { return r.re.MatchString(tag) }

func compileOne(s string) (matcher, error) {
	if strings.HasPrefix(s, "/") {
		if len(s) < 2 || !strings.HasSuffix(s, "/") {
			return nil, fmt.Errorf("a regular expression pattern must end with '/'")
		}
		re, err := regexp.Compile(`\A(?:` + s[1:len(s)-1] + `)\z`)
		if err != nil {
			return nil, fmt.Errorf("regular expression (Go RE2 syntax; no lookaround or backreferences): %w", err)
		}
		return regexMatcher{re}, nil
	}
	prog, rest, err := compileSeq(s, 0)
	if err != nil {
		return nil, err
	}
	if rest != len(s) {
		return nil, fmt.Errorf("unexpected %q at offset %d", s[rest], rest)
	}
	return globMatcher{prog}, nil
}

// The glob language follows Fluentd's GlobMatchPattern:
//
//   - any run of characters without a dot (one tag part)
//     **    any run of characters; "a.**" also matches "a", and "**.b" also
//     matches "b" (the dot next to ** is optional)
//     {x,y} any of the comma-separated sub-patterns
//     \c    the character c literally
type opKind uint8

const (
	opLit      opKind = iota // literal text
	opPart                   // [^.]*
	opAny                    // .*
	opAnyDot                 // (?:.*\.|\A): nothing at the start, or anything ending in a dot
	opBoundary               // at the end or before a dot: the optional dot before **
	opAlt                    // alternatives
)

type op struct {
	kind opKind
	lit  string
	alts [][]op
}

func compileSeq(s string, i int) ([]op, int, error) {
	var prog []op
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			prog = append(prog, op{kind: opLit, lit: lit.String()})
			lit.Reset()
		}
	}
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return nil, i, fmt.Errorf("trailing backslash")
			}
			lit.WriteByte(s[i+1])
			i += 2
		case c == '.' && strings.HasPrefix(s[i+1:], "**"):
			flush()
			prog = append(prog, op{kind: opBoundary})
			i++
		case strings.HasPrefix(s[i:], "**"):
			flush()
			if i+2 < len(s) && s[i+2] == '.' {
				prog = append(prog, op{kind: opAnyDot})
				i += 3
			} else {
				prog = append(prog, op{kind: opAny})
				i += 2
			}
		case c == '*':
			flush()
			prog = append(prog, op{kind: opPart})
			i++
		case c == '{':
			flush()
			alt := op{kind: opAlt}
			i++
			for {
				sub, next, err := compileSeq(s, i)
				if err != nil {
					return nil, next, err
				}
				alt.alts = append(alt.alts, sub)
				if next >= len(s) {
					return nil, next, fmt.Errorf("unclosed '{'")
				}
				i = next + 1
				if s[next] == '}' {
					break
				}
			}
			prog = append(prog, alt)
		case c == ',' || c == '}':
			flush()
			return prog, i, nil
		default:
			lit.WriteByte(c)
			i++
		}
	}
	flush()
	return prog, i, nil
}

type globMatcher struct{ prog []op }

func (g globMatcher) match(tag string) bool { return run(g.prog, tag, 0, nil) }

// cont is what remains to match after an alternative.
type cont struct {
	prog []op
	next *cont
}

// run is a backtracking matcher; tags are short and the router caches its
// answers, so simplicity wins over speed here.
func run(prog []op, s string, i int, k *cont) bool {
	for len(prog) > 0 {
		o := prog[0]
		prog = prog[1:]
		switch o.kind {
		case opLit:
			if !strings.HasPrefix(s[i:], o.lit) {
				return false
			}
			i += len(o.lit)
		case opBoundary:
			if i < len(s) && s[i] != '.' {
				return false
			}
		case opPart:
			for j := i; ; j++ {
				if run(prog, s, j, k) {
					return true
				}
				if j == len(s) || s[j] == '.' {
					return false
				}
			}
		case opAny:
			for j := len(s); j >= i; j-- {
				if run(prog, s, j, k) {
					return true
				}
			}
			return false
		case opAnyDot:
			if i == 0 && run(prog, s, 0, k) {
				return true
			}
			for j := i; j < len(s); j++ {
				if s[j] == '.' && run(prog, s, j+1, k) {
					return true
				}
			}
			return false
		case opAlt:
			next := &cont{prog: prog, next: k}
			for _, a := range o.alts {
				if run(a, s, i, next) {
					return true
				}
			}
			return false
		}
	}
	if k != nil {
		return run(k.prog, s, i, k.next)
	}
	return i == len(s)
}
