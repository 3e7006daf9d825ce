package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Embedded Ruby: Fluentd evaluates "#{...}" inside double-quoted values as
// Ruby when it reads the configuration. Sluice runs no Ruby; it evaluates
// the small subset real configurations use, and refuses anything else,
// naming the expression:
//
//	literals     'text' "text" 42 -1 nil true false
//	             use_default (the parameter is left unset) use_nil (set to nothing)
//	environment  ENV['X'] ENV["X"] ENV.fetch('X') ENV.fetch('X', default)
//	the machine  Socket.gethostname Dir.pwd worker_id (always 0: one process)
//	files        File.join(a, b, ...) File.read(path)
//	             File.open(path) do |f| f.readline end   (both read at parse time)
//	methods      .strip .lstrip .rstrip .chomp .to_s .to_i .downcase .upcase
//	operators    a || b (b when a is nil or false) a + b (concatenation) ( ... )
//
// As in Ruby, an empty string is true: ENV['X'] || 'd' is "" when X is set
// to "". A nil becomes "" in the value.

// rubyKind is the type of an evaluated expression.
type rubyKind int

const (
	rubyNil rubyKind = iota
	rubyString
	rubyInt
	rubyBool
	rubyUseDefault
	rubyUseNil
)

type rubyValue struct {
	kind rubyKind
	s    string // the string, or the integer's or boolean's digits
}

func (v rubyValue) truthy() bool {
	return v.kind != rubyNil && !(v.kind == rubyBool && v.s == "false")
}

// text is the value as string interpolation renders it (Ruby's to_s).
func (v rubyValue) text() string {
	if v.kind == rubyNil {
		return ""
	}
	return v.s
}

// maxRubyFile bounds what File.read and File.open may read at parse time.
const maxRubyFile = 1 << 20

// evalRuby evaluates the code of one "#{...}".
func evalRuby(code string, o *Options) (rubyValue, error) {
	toks, err := rubyTokens(code)
	if err != nil {
		return rubyValue{}, unsupportedRuby(code, err.Error())
	}
	r := &rubyEval{toks: toks, o: o}
	v, err := r.or()
	if err == nil && r.pos < len(r.toks) {
		err = fmt.Errorf("unexpected %q", r.toks[r.pos].text)
	}
	if err != nil {
		return rubyValue{}, unsupportedRuby(code, err.Error())
	}
	return v, nil
}

func unsupportedRuby(code, why string) error {
	return fmt.Errorf("embedded Ruby #{%s}: %s (Sluice evaluates a small subset: ENV[...], ENV.fetch, ||, +, string methods, "+
		"Socket.gethostname, Dir.pwd, worker_id, File.join, File.read, use_default, use_nil; see docs/configuration.md)",
		strings.TrimSpace(code), why)
}

// rubyToken is one token: an identifier (with dots inside, as in
// ENV.fetch), a literal, or punctuation.
type rubyToken struct {
	kind byte // 'i' identifier, 's' string, 'n' integer, 'p' punctuation
	text string
}

func rubyTokens(code string) ([]rubyToken, error) {
	var out []rubyToken
	for i := 0; i < len(code); {
		c := code[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '"':
			s, n, err := rubyQuoted(code[i:])
			if err != nil {
				return nil, err
			}
			out = append(out, rubyToken{'s', s})
			i += n
		case c >= '0' && c <= '9' || c == '-' && i+1 < len(code) && code[i+1] >= '0' && code[i+1] <= '9':
			j := i + 1
			for j < len(code) && code[j] >= '0' && code[j] <= '9' {
				j++
			}
			out = append(out, rubyToken{'n', code[i:j]})
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(code) && (code[j] == '_' || code[j] == '?' || isAlnum(code[j])) {
				j++
			}
			out = append(out, rubyToken{'i', code[i:j]})
			i = j
		case c == '|' && i+1 < len(code) && code[i+1] == '|':
			out = append(out, rubyToken{'p', "||"})
			i += 2
		case strings.IndexByte("[](),.+|", c) >= 0:
			out = append(out, rubyToken{'p', string(c)})
			i++
		default:
			return nil, fmt.Errorf("unexpected %q", c)
		}
	}
	return out, nil
}

// rubyQuoted reads a quoted literal at the start of s and returns its
// value and length. Single quotes know \\ and \'; double quotes also
// \n, \t and \", and no interpolation.
func rubyQuoted(s string) (string, int, error) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == q:
			return b.String(), i + 1, nil
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; {
			case q == '"' && e == 'n':
				b.WriteByte('\n')
			case q == '"' && e == 't':
				b.WriteByte('\t')
			case e == q || e == '\\':
				b.WriteByte(e)
			default:
				b.WriteByte('\\')
				b.WriteByte(e)
			}
		case q == '"' && c == '#' && i+1 < len(s) && s[i+1] == '{':
			return "", 0, fmt.Errorf("nested interpolation")
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

type rubyEval struct {
	toks []rubyToken
	pos  int
	o    *Options
}

func (r *rubyEval) peek(text string) bool {
	return r.pos < len(r.toks) && r.toks[r.pos].kind != 's' && r.toks[r.pos].text == text
}

func (r *rubyEval) expect(text string) error {
	if !r.peek(text) {
		if r.pos < len(r.toks) {
			return fmt.Errorf("expected %q, found %q", text, r.toks[r.pos].text)
		}
		return fmt.Errorf("expected %q at the end", text)
	}
	r.pos++
	return nil
}

// or is a || b || ...: Ruby evaluates b only when a is nil or false.
func (r *rubyEval) or() (rubyValue, error) {
	v, err := r.sum()
	for err == nil && r.peek("||") {
		r.pos++
		var rhs rubyValue
		if rhs, err = r.sum(); err == nil && !v.truthy() {
			v = rhs
		}
	}
	return v, err
}

// sum is a + b + ...: string concatenation.
func (r *rubyEval) sum() (rubyValue, error) {
	v, err := r.postfix()
	for err == nil && r.peek("+") {
		r.pos++
		var rhs rubyValue
		if rhs, err = r.postfix(); err != nil {
			break
		}
		if v.kind != rubyString || rhs.kind != rubyString {
			return v, fmt.Errorf("+ joins strings only")
		}
		v.s += rhs.s
	}
	return v, err
}

// postfix is a primary followed by string methods.
func (r *rubyEval) postfix() (rubyValue, error) {
	v, err := r.primary()
	for err == nil && r.peek(".") {
		r.pos++
		if r.pos >= len(r.toks) || r.toks[r.pos].kind != 'i' {
			return v, fmt.Errorf("expected a method name after '.'")
		}
		v, err = stringMethod(v, r.toks[r.pos].text)
		r.pos++
	}
	return v, err
}

func stringMethod(v rubyValue, name string) (rubyValue, error) {
	if name == "to_s" {
		return rubyValue{kind: rubyString, s: v.text()}, nil
	}
	if v.kind != rubyString && !(v.kind == rubyInt && name == "to_i") {
		return v, fmt.Errorf("%s on a value that is not a string (nil? use ENV.fetch with a default)", name)
	}
	switch name {
	case "strip":
		v.s = strings.TrimSpace(v.s)
	case "lstrip":
		v.s = strings.TrimLeft(v.s, " \t\r\n\f\v\x00")
	case "rstrip":
		v.s = strings.TrimRight(v.s, " \t\r\n\f\v\x00")
	case "chomp":
		v.s = strings.TrimSuffix(strings.TrimSuffix(v.s, "\n"), "\r")
	case "downcase":
		v.s = strings.ToLower(v.s)
	case "upcase":
		v.s = strings.ToUpper(v.s)
	case "to_i":
		digits := strings.TrimSpace(v.s)
		end := 0
		for end < len(digits) && (digits[end] >= '0' && digits[end] <= '9' || end == 0 && digits[end] == '-') {
			end++
		}
		n, _ := strconv.ParseInt(digits[:end], 10, 64)
		return rubyValue{kind: rubyInt, s: strconv.FormatInt(n, 10)}, nil
	default:
		return v, fmt.Errorf("method %s is not in the subset", name)
	}
	return v, nil
}

func (r *rubyEval) primary() (rubyValue, error) {
	if r.pos >= len(r.toks) {
		return rubyValue{}, fmt.Errorf("an expression was expected")
	}
	t := r.toks[r.pos]
	r.pos++
	switch t.kind {
	case 's':
		return rubyValue{kind: rubyString, s: t.text}, nil
	case 'n':
		return rubyValue{kind: rubyInt, s: t.text}, nil
	case 'p':
		if t.text == "(" {
			v, err := r.or()
			if err == nil {
				err = r.expect(")")
			}
			return v, err
		}
		return rubyValue{}, fmt.Errorf("unexpected %q", t.text)
	}
	switch t.text {
	case "nil":
		return rubyValue{kind: rubyNil}, nil
	case "true", "false":
		return rubyValue{kind: rubyBool, s: t.text}, nil
	case "use_default":
		return rubyValue{kind: rubyUseDefault}, nil
	case "use_nil":
		return rubyValue{kind: rubyUseNil}, nil
	case "worker_id":
		return rubyValue{kind: rubyString, s: "0"}, nil
	case "ENV":
		return r.env()
	case "Socket":
		if err := r.member("gethostname"); err != nil {
			return rubyValue{}, err
		}
		h, err := r.o.Hostname()
		if err != nil {
			return rubyValue{}, fmt.Errorf("Socket.gethostname: %w", err)
		}
		return rubyValue{kind: rubyString, s: h}, nil
	case "Dir":
		if err := r.member("pwd"); err != nil {
			return rubyValue{}, err
		}
		wd, err := os.Getwd()
		if err != nil {
			return rubyValue{}, fmt.Errorf("Dir.pwd: %w", err)
		}
		return rubyValue{kind: rubyString, s: wd}, nil
	case "File":
		return r.file()
	}
	return rubyValue{}, fmt.Errorf("%s is not in the subset", t.text)
}

// member reads ".name" after a constant.
func (r *rubyEval) member(name string) error {
	if err := r.expect("."); err != nil {
		return err
	}
	if !r.peek(name) {
		return fmt.Errorf("only .%s is in the subset here", name)
	}
	r.pos++
	return nil
}

// args reads "(a, b, ...)".
func (r *rubyEval) args() ([]rubyValue, error) {
	if err := r.expect("("); err != nil {
		return nil, err
	}
	var out []rubyValue
	for !r.peek(")") {
		v, err := r.or()
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		if !r.peek(",") {
			break
		}
		r.pos++
	}
	return out, r.expect(")")
}

func (r *rubyEval) env() (rubyValue, error) {
	if r.peek("[") {
		r.pos++
		name, err := r.or()
		if err == nil {
			err = r.expect("]")
		}
		if err != nil {
			return rubyValue{}, err
		}
		if v, ok := r.o.Getenv(name.text()); ok {
			return rubyValue{kind: rubyString, s: v}, nil
		}
		return rubyValue{kind: rubyNil}, nil
	}
	if err := r.member("fetch"); err != nil {
		return rubyValue{}, err
	}
	args, err := r.args()
	if err != nil {
		return rubyValue{}, err
	}
	if len(args) == 0 || len(args) > 2 {
		return rubyValue{}, fmt.Errorf("ENV.fetch takes a name and an optional default")
	}
	if v, ok := r.o.Getenv(args[0].text()); ok {
		return rubyValue{kind: rubyString, s: v}, nil
	}
	if len(args) == 1 {
		return rubyValue{}, fmt.Errorf("environment variable %s is not set (ENV.fetch without a default)", args[0].text())
	}
	return args[1], nil
}

func (r *rubyEval) file() (rubyValue, error) {
	if err := r.expect("."); err != nil {
		return rubyValue{}, err
	}
	if r.pos >= len(r.toks) {
		return rubyValue{}, fmt.Errorf("File. what?")
	}
	method := r.toks[r.pos].text
	r.pos++
	args, err := r.args()
	if err != nil {
		return rubyValue{}, err
	}
	switch method {
	case "join":
		parts := make([]string, len(args))
		for i, a := range args {
			parts[i] = a.text()
		}
		return rubyValue{kind: rubyString, s: rubyJoin(parts)}, nil
	case "read":
		if len(args) != 1 {
			return rubyValue{}, fmt.Errorf("File.read takes a path")
		}
		return r.readFile(args[0].text())
	case "open":
		// File.open(path) do |f| f.readline end: the file's first line.
		if len(args) != 1 {
			return rubyValue{}, fmt.Errorf("File.open takes a path")
		}
		if err := r.expect("do"); err != nil {
			return rubyValue{}, err
		}
		var name string
		if err := r.expect("|"); err == nil && r.pos < len(r.toks) {
			name = r.toks[r.pos].text
			r.pos++
			err = r.expect("|")
			if err != nil {
				return rubyValue{}, err
			}
		} else {
			return rubyValue{}, fmt.Errorf("File.open needs a block: do |f| f.readline end")
		}
		for _, want := range []string{name, ".", "readline", "end"} {
			if err := r.expect(want); err != nil {
				return rubyValue{}, fmt.Errorf("only do |f| f.readline end is in the subset")
			}
		}
		v, err := r.readFile(args[0].text())
		if err != nil {
			return v, err
		}
		if i := strings.IndexByte(v.s, '\n'); i >= 0 {
			v.s = v.s[:i+1]
		}
		return v, nil
	}
	return rubyValue{}, fmt.Errorf("File.%s is not in the subset", method)
}

func (r *rubyEval) readFile(path string) (rubyValue, error) {
	b, err := r.o.ReadFile(path)
	if err != nil {
		return rubyValue{}, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(b) > maxRubyFile {
		return rubyValue{}, fmt.Errorf("%s is larger than %d bytes", path, maxRubyFile)
	}
	return rubyValue{kind: rubyString, s: string(b)}, nil
}

// rubyJoin is File.join: the parts joined by one slash each, keeping a
// leading slash and a trailing one.
func rubyJoin(parts []string) string {
	var b strings.Builder
	for i, p := range parts {
		if i > 0 {
			if !strings.HasSuffix(b.String(), "/") {
				b.WriteByte('/')
			}
			p = strings.TrimLeft(p, "/")
		}
		b.WriteString(p)
	}
	return filepath.ToSlash(b.String())
}
