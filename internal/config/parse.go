package config

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Options control the environment the parser sees. The zero value uses the
// process environment and the machine's host name.
type Options struct {
	// Getenv looks up an environment variable for "#{ENV['X']}".
	Getenv func(string) (string, bool)
	// Hostname answers "#{Socket.gethostname}".
	Hostname func() (string, error)
	// ReadFile reads @include targets; os.ReadFile when nil.
	ReadFile func(string) ([]byte, error)
	// Warn hears what the parser accepts but an operator should know
	// (an @include that matched no file); nil drops it.
	Warn func(pos Pos, msg string)
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Getenv == nil {
		r.Getenv = os.LookupEnv
	}
	if r.Hostname == nil {
		r.Hostname = os.Hostname
	}
	if r.ReadFile == nil {
		r.ReadFile = os.ReadFile
	}
	return r
}

// maxIncludeDepth stops @include cycles.
const maxIncludeDepth = 16

// ParseFile reads and parses the configuration file at path.
func ParseFile(path string, opts *Options) (*Element, error) {
	o := opts.withDefaults()
	src, err := o.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parse(path, src, &o, 0)
}

// Parse parses src; name is used in positions and as the base for relative
// @include paths.
func Parse(name string, src []byte, opts *Options) (*Element, error) {
	o := opts.withDefaults()
	return parse(name, src, &o, 0)
}

func parse(name string, src []byte, o *Options, depth int) (*Element, error) {
	root, errs := parseAll(name, src, o, depth)
	if len(errs) > maxReported {
		more := len(errs) - maxReported
		errs = append(errs[:maxReported:maxReported], Errorf(Pos{File: name}, "%d more problems not shown", more))
	}
	switch len(errs) {
	case 0:
		return root, nil
	case 1:
		return nil, errs[0]
	}
	return nil, errors.Join(errs...)
}

// maxReported bounds the problems one parse reports: a binary file given
// by mistake would otherwise print one line per line of it.
const maxReported = 100

// parseAll parses src and returns every problem found: after an error the
// parser resumes at the next line it can make sense of, so that one run of
// check reports them all.
func parseAll(name string, src []byte, o *Options, depth int) (*Element, []error) {
	p := &parser{src: src, line: 1, file: name, opts: o, depth: depth}
	root := &Element{Name: "ROOT", Pos: Pos{File: name, Line: 1}, used: true}
	p.body(root, "")
	return root, p.errs
}

type parser struct {
	src   []byte
	off   int
	line  int
	file  string
	opts  *Options
	depth int
	// special is use_default or use_nil when the value just read was one
	// "#{...}" that gave it; rubyString otherwise.
	special rubyKind
	// errs are the problems found so far; the parser reads past each.
	errs []error
	// open holds the sections being read, innermost last.
	open []*Element
	// unwind names the enclosing section that a closing tag closed while
	// inner sections were still open; each inner one reports itself and
	// returns until that section is reached.
	unwind string
}

func (p *parser) fail(err error) { p.errs = append(p.errs, err) }

// mark is a place to come back to after an error.
type mark struct{ off, line int }

func (p *parser) mark() mark { return mark{p.off, p.line} }

// recover returns to m and skips its line. A scan that ran past that line
// (an unterminated string or JSON value) has no trustworthy end, so the
// parser also skips to the next line that starts a section or closes one:
// the lines between would otherwise be reported as spurious parameters.
func (p *parser) recover(m mark) {
	crossed := p.line > m.line+1 || (p.line > m.line && p.off > 0 && p.src[p.off-1] != '\n')
	p.off, p.line = m.off, m.line
	p.skipLine()
	if !p.eof() {
		p.next()
	}
	if !crossed {
		return
	}
	for !p.eof() {
		i := p.off
		for i < len(p.src) && isSpace(p.src[i]) {
			i++
		}
		if i < len(p.src) && p.src[i] == '<' {
			return
		}
		p.skipLine()
		if !p.eof() {
			p.next()
		}
	}
}

func (p *parser) pos() Pos { return Pos{File: p.file, Line: p.line} }

func (p *parser) errf(format string, args ...any) error { return Errorf(p.pos(), format, args...) }

func (p *parser) eof() bool { return p.off >= len(p.src) }

func (p *parser) peek() byte {
	if p.eof() {
		return 0
	}
	return p.src[p.off]
}

func (p *parser) next() byte {
	c := p.src[p.off]
	p.off++
	if c == '\n' {
		p.line++
	}
	return c
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' }

func (p *parser) skipSpaces() {
	for !p.eof() && isSpace(p.peek()) {
		p.next()
	}
}

func (p *parser) skipLine() {
	for !p.eof() && p.peek() != '\n' {
		p.next()
	}
}

// endOfLine accepts trailing spaces and a comment, then a newline or EOF.
func (p *parser) endOfLine(what string) error {
	p.skipSpaces()
	switch {
	case p.eof():
		return nil
	case p.peek() == '#':
		p.skipLine()
		return nil
	case p.peek() == '\n':
		p.next()
		return nil
	}
	return p.errf("unexpected %q after %s", rest(p.src[p.off:]), what)
}

func rest(b []byte) string {
	if i := strings.IndexByte(string(b), '\n'); i >= 0 {
		b = b[:i]
	}
	if len(b) > 40 {
		b = b[:40]
	}
	return string(b)
}

// body parses parameters and elements into e until </end> (or EOF at the
// top level, end == ""). Problems are recorded and reading goes on.
func (p *parser) body(e *Element, end string) {
	for {
		for !p.eof() && (isSpace(p.peek()) || p.peek() == '\n') {
			p.next()
		}
		if p.eof() {
			if end != "" {
				p.fail(Errorf(e.Pos, "<%s> is never closed (expected </%s>)", end, end))
			}
			return
		}
		switch c := p.peek(); {
		case c == '#':
			p.skipLine()
		case c == '<':
			if p.off+1 < len(p.src) && p.src[p.off+1] == '/' {
				if p.closeTag(end) {
					return
				}
				continue
			}
			if child := p.element(); child != nil {
				e.Elements = append(e.Elements, child)
			}
			if p.unwind != "" {
				return
			}
		default:
			m := p.mark()
			if err := p.param(e); err != nil {
				p.fail(err)
				p.recover(m)
			}
		}
	}
}

func isNameChar(c byte) bool {
	return c == '_' || c == '-' || c == '@' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// closeTag reads a closing tag inside <end> and reports whether it ends
// the section being read. A tag naming an enclosing section closes that
// one (the inner sections report that they were never closed); a tag
// naming no open section is taken as a misspelt close of the current one.
func (p *parser) closeTag(end string) bool {
	pos := p.pos()
	p.next()
	p.next()
	start := p.off
	for !p.eof() && isNameChar(p.peek()) {
		p.next()
	}
	name := string(p.src[start:p.off])
	p.skipSpaces()
	if p.peek() == '>' {
		p.next()
		if err := p.endOfLine("</" + name + ">"); err != nil {
			p.fail(err)
			p.skipLine()
		}
	} else {
		p.fail(p.errf("expected '>' to close </%s", name))
		p.skipLine()
	}
	switch {
	case end == "":
		p.fail(Errorf(pos, "</%s> without an opening <%s>", name, name))
		return false
	case name == end:
		return true
	}
	for i := len(p.open) - 2; i >= 0; i-- {
		if p.open[i].Name == name {
			p.unwind = name
			return true
		}
	}
	p.fail(Errorf(pos, "</%s> closes <%s>", name, end))
	return true
}

// element reads a section; it returns nil when there is none to keep.
func (p *parser) element() *Element {
	e := &Element{Pos: p.pos()}
	p.next() // '<'
	start := p.off
	for !p.eof() && isNameChar(p.peek()) {
		p.next()
	}
	e.Name = string(p.src[start:p.off])
	if e.Name == "" {
		p.fail(p.errf("expected a section name after '<'"))
		p.skipLine()
		return nil
	}
	p.skipSpaces()
	start = p.off
	for !p.eof() && p.peek() != '>' && p.peek() != '\n' {
		p.next()
	}
	closed := p.peek() == '>'
	arg := strings.TrimSpace(string(p.src[start:p.off]))
	if len(arg) >= 2 && (arg[0] == '"' || arg[0] == '\'') && arg[len(arg)-1] == arg[0] {
		arg = arg[1 : len(arg)-1]
	}
	e.Arg = arg
	if closed {
		p.next() // '>'
		if err := p.endOfLine("<" + e.Name + ">"); err != nil {
			p.fail(err)
			p.skipLine()
		}
	} else {
		// Read the body all the same: its closing tag is most likely there.
		p.fail(Errorf(e.Pos, "<%s is missing its closing '>'", e.Name))
	}
	p.open = append(p.open, e)
	p.body(e, e.Name)
	p.open = p.open[:len(p.open)-1]
	switch p.unwind {
	case "":
	case e.Name:
		p.unwind = ""
	default:
		p.fail(Errorf(e.Pos, "<%s> is never closed (</%s> closes the section around it)", e.Name, p.unwind))
	}
	return e
}

func (p *parser) param(e *Element) error {
	pos := p.pos()
	start := p.off
	for !p.eof() && !isSpace(p.peek()) && p.peek() != '\n' {
		p.next()
	}
	key := string(p.src[start:p.off])
	if strings.ContainsAny(key, "<>") {
		return Errorf(pos, "invalid parameter name %q", key)
	}
	p.skipSpaces()
	p.special = rubyString
	value, err := p.value()
	if err != nil {
		return err
	}
	if key == "@include" {
		return p.include(e, value, pos)
	}
	switch p.special {
	case rubyUseDefault:
		p.special = rubyString
		return nil // as if the parameter were not there
	case rubyUseNil:
		p.special = rubyString
		e.Params = append(e.Params, &Param{Key: key, Pos: pos, Nil: true})
		return nil
	}
	e.Params = append(e.Params, &Param{Key: key, Value: value, Pos: pos})
	return nil
}

// value parses a parameter value starting at the current offset and consumes
// the rest of its (last) line.
func (p *parser) value() (string, error) {
	switch p.peek() {
	case '"':
		start, from := p.pos(), p.off
		v, err := p.doubleQuoted()
		if err != nil {
			return "", err
		}
		if p.line > start.Line && p.opts.Warn != nil && tagInside(p.src[from:p.off]) {
			p.opts.Warn(start, fmt.Sprintf("the quoted string that starts here runs to line %d, across a section tag (a missing closing quote?)", p.line))
		}
		if err := p.endOfLine("quoted string"); err != nil {
			if p.line > start.Line {
				// A double-quoted string may span lines, so a missing
				// closing quote shows up only where the next quote is.
				return "", Errorf(start, "the quoted string that starts here ends at line %d and is followed by %q (a missing closing quote?)", p.line, rest(p.src[p.off:]))
			}
			return "", err
		}
		return v, nil
	case '\'':
		v, err := p.singleQuoted()
		if err != nil {
			return "", err
		}
		return v, p.endOfLine("quoted string")
	case '[', '{':
		v, err := p.jsonish()
		if err != nil {
			return "", err
		}
		return v, p.endOfLine("JSON value")
	}
	// Unquoted: up to the end of the line; a '#' after white space starts a
	// comment, a '#' inside a word does not.
	if p.peek() == '#' {
		p.skipLine()
		return "", nil
	}
	start := p.off
	end := p.off
	for !p.eof() && p.peek() != '\n' {
		c := p.next()
		if c == '#' && p.off-1 > start && isSpace(p.src[p.off-2]) {
			p.off--
			p.skipLine()
			break
		}
		end = p.off
	}
	if !p.eof() {
		p.next()
	}
	return strings.TrimRight(string(p.src[start:end]), " \t\r\f\v"), nil
}

// doubleQuoted reads a double-quoted value, evaluating the embedded Ruby
// in it. A value that is one "#{...}" alone may be use_default or use_nil,
// which it reports in p.special.
func (p *parser) doubleQuoted() (string, error) {
	pos := p.pos()
	p.next()
	var b strings.Builder
	p.special = rubyString
	parts := 0 // literal runs and expressions
	for {
		if p.eof() {
			return "", Errorf(pos, "unterminated double-quoted string")
		}
		c := p.next()
		switch c {
		case '"':
			if parts > 1 && p.special != rubyString {
				return "", Errorf(pos, "use_default and use_nil must be the whole value")
			}
			return b.String(), nil
		case '\\':
			if p.eof() {
				return "", Errorf(pos, "unterminated double-quoted string")
			}
			esc := p.next()
			switch esc {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'f':
				b.WriteByte('\f')
			case 'b':
				b.WriteByte('\b')
			case '0':
				b.WriteByte(0)
			default:
				if isAlnum(esc) {
					// As in Fluentd, an error; the string goes on, so that
					// one run reports every such line.
					p.errs = append(p.errs, p.errf("unexpected back-slash escape character '%c'", esc))
				}
				b.WriteByte(esc)
			}
		case '#':
			if p.peek() == '{' {
				code, err := p.embedded()
				if err != nil {
					return "", err
				}
				v, err := evalRuby(code, p.opts)
				if err != nil {
					p.errs = append(p.errs, Errorf(pos, "%v", err)) // the string goes on: read past it
					continue
				}
				if v.kind == rubyUseDefault || v.kind == rubyUseNil {
					p.special = v.kind
				}
				parts++
				b.WriteString(v.text())
				continue
			}
			b.WriteByte(c)
			parts++
		default:
			b.WriteByte(c)
			parts++
		}
	}
}

// tagInside reports whether a line of b starts with a section tag.
func tagInside(b []byte) bool {
	for _, line := range bytes.Split(b, []byte("\n"))[1:] {
		if l := bytes.TrimLeft(line, " \t"); len(l) > 0 && l[0] == '<' {
			return true
		}
	}
	return false
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// embedded scans "{...}" after '#', with nested braces and quoted strings,
// and returns the code between the braces.
func (p *parser) embedded() (string, error) {
	pos := p.pos()
	p.next() // '{'
	start := p.off
	depth := 1
	var quote byte
	for !p.eof() {
		c := p.next()
		switch {
		case quote != 0:
			if c == '\\' && !p.eof() {
				p.next()
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return string(p.src[start : p.off-1]), nil
			}
		}
	}
	return "", Errorf(pos, "unterminated #{...}")
}

func (p *parser) singleQuoted() (string, error) {
	pos := p.pos()
	p.next()
	var b strings.Builder
	for {
		if p.eof() {
			return "", Errorf(pos, "unterminated single-quoted string")
		}
		c := p.next()
		switch {
		case c == '\'':
			return b.String(), nil
		case c == '\\' && (p.peek() == '\'' || p.peek() == '\\'):
			b.WriteByte(p.next())
		default:
			b.WriteByte(c)
		}
	}
}

// jsonish scans a JSON array or object that may span lines, balancing
// brackets outside strings, and returns its text unchanged. The typed
// decoder parses it.
func (p *parser) jsonish() (string, error) {
	pos := p.pos()
	start := p.off
	depth := 0
	inString := false
	for !p.eof() {
		c := p.next()
		if inString {
			if c == '\\' && !p.eof() {
				p.next()
			} else if c == '"' {
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '[', '{':
			depth++
		case ']', '}':
			depth--
			if depth == 0 {
				return string(p.src[start:p.off]), nil
			}
		case '\n':
			if depth == 0 {
				return "", Errorf(pos, "unbalanced JSON value")
			}
		}
	}
	return "", Errorf(pos, "unterminated JSON value (missing %d closing brackets)", depth)
}

func (p *parser) include(e *Element, target string, pos Pos) error {
	if strings.Contains(target, "://") {
		return Errorf(pos, "@include %s: only local files are supported", target)
	}
	if p.depth >= maxIncludeDepth {
		return Errorf(pos, "@include nested more than %d deep (a cycle?)", maxIncludeDepth)
	}
	if !filepath.IsAbs(target) {
		target = filepath.Join(filepath.Dir(p.file), target)
	}
	var files []string
	if strings.ContainsAny(target, "*?[") {
		m, err := filepath.Glob(target)
		if err != nil {
			return Errorf(pos, "@include %s: %v", target, err)
		}
		sort.Strings(m)
		files = m
		if len(m) == 0 && p.opts.Warn != nil {
			p.opts.Warn(pos, fmt.Sprintf("@include %s matches no file; nothing is included, as in Fluentd", target))
		}
	} else {
		files = []string{target}
	}
	for _, f := range files {
		src, err := p.opts.ReadFile(f)
		if errors.Is(err, fs.ErrNotExist) && len(files) == 1 && files[0] == target {
			// Fluentd globs every include path: no file, nothing included.
			if p.opts.Warn != nil {
				p.opts.Warn(pos, fmt.Sprintf("@include %s matches no file; nothing is included, as in Fluentd", target))
			}
			return nil
		}
		if err != nil {
			return Errorf(pos, "@include: %v", err)
		}
		sub, errs := parseAll(f, src, p.opts, p.depth+1)
		p.errs = append(p.errs, errs...)
		e.Params = append(e.Params, sub.Params...)
		e.Elements = append(e.Elements, sub.Elements...)
	}
	return nil
}
