// Package config reads Fluentd v1 configuration files into a tree of Elements
// and decodes Elements into typed plugin structs.
//
// The tree keeps every parameter and section with its file and line, and
// remembers which of them a decoder consumed, so that after the whole graph is
// built the engine can report each parameter nobody asked for as an error
// (Unused). Parsing never evaluates anything but the small subset of embedded
// Ruby that real configurations use: ENV lookups and Socket.gethostname.
package config

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Pos is a position in a configuration file.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string {
	switch {
	case p.File == "":
		return fmt.Sprintf("line %d", p.Line)
	case p.Line == 0: // the file as a whole
		return p.File
	}
	return fmt.Sprintf("%s:%d", p.File, p.Line)
}

// Less orders positions by file, then line.
func (p Pos) Less(o Pos) bool {
	if p.File != o.File {
		return p.File < o.File
	}
	return p.Line < o.Line
}

// Error is a configuration problem at a position.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Errorf returns an *Error at pos.
func Errorf(pos Pos, format string, args ...any) error {
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

// Param is one "key value" line.
type Param struct {
	Key   string
	Value string
	Pos   Pos
	// Nil is a value of "#{... || use_nil}": the parameter is set to
	// nothing, its zero value, whatever its default.
	Nil  bool
	used bool
}

// Element is a directive or section: <Name Arg> ... </Name>. The root of a
// file is an Element named "ROOT".
type Element struct {
	Name     string
	Arg      string
	Params   []*Param
	Elements []*Element
	Pos      Pos
	used     bool
	known    map[string]struct{} // what decoders take here, for suggestions
	decoded  bool                // a decoder read this element's parameters
	notices  []Notice            // parameters accepted without effect
}

// Notice is a parameter the configuration may hold, as Fluentd's does, but
// that changes nothing in Sluice: it is accepted, and said once.
type Notice struct {
	Pos Pos
	Msg string
}

// AddNotice records that something at pos was accepted with a warning.
func (e *Element) AddNotice(pos Pos, msg string) {
	e.notices = append(e.notices, Notice{Pos: pos, Msg: msg})
}

// Notices returns what decoding accepted and ignored below e, in file
// order.
func (e *Element) Notices() []Notice {
	var out []Notice
	var walk func(*Element)
	walk = func(el *Element) {
		out = append(out, el.notices...)
		for _, c := range el.Elements {
			walk(c)
		}
	}
	walk(e)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Pos.Less(out[j].Pos) })
	return out
}

// Param returns the last parameter named key (Fluentd lets a later line
// override an earlier one) and marks every parameter of that name used.
func (e *Element) Param(key string) *Param {
	var last *Param
	for _, p := range e.Params {
		if p.Key == key {
			p.used = true
			last = p
		}
	}
	return last
}

// Get returns the value of parameter key and whether it is present.
func (e *Element) Get(key string) (string, bool) {
	if p := e.Param(key); p != nil {
		return p.Value, true
	}
	return "", false
}

// Sections returns the child elements named name, in file order, and marks
// them used. Their own parameters are not marked.
func (e *Element) Sections(name string) []*Element {
	var out []*Element
	for _, c := range e.Elements {
		if c.Name == name {
			c.used = true
			out = append(out, c)
		}
	}
	return out
}

// MarkUsed marks the element itself as consumed.
func (e *Element) MarkUsed() { e.used = true }

// know records that a decoder takes name here, for "did you mean" in
// Unused.
func (e *Element) know(name string) {
	if e.known == nil {
		e.known = map[string]struct{}{}
	}
	e.known[name] = struct{}{}
}

// MarkAllUsed marks the element, its parameters and all its descendants as
// consumed; used for free-form sections such as <record>.
func (e *Element) MarkAllUsed() {
	e.used = true
	for _, p := range e.Params {
		p.used = true
	}
	for _, c := range e.Elements {
		c.MarkAllUsed()
	}
}

// MarkUnread marks consumed everything below e that no decoder read,
// keeping what one did: after a plugin failed to configure, the unknown
// parameters of e and of the sections decoded anyway (its <buffer>,
// copy's <store>s) are worth reporting, but a section left for a step
// that never ran (a <format> for Configure) is not.
func (e *Element) MarkUnread() {
	e.used = true
	for _, c := range e.Elements {
		if c.decoded {
			c.MarkUnread()
		} else {
			c.MarkAllUsed()
		}
	}
}

// Unused returns one error for every parameter and section below e (e
// itself included) that no decoder consumed. Children of an unused section
// are not reported separately.
func (e *Element) Unused() []error {
	var errs []error
	var walk func(el *Element, where string)
	walk = func(el *Element, where string) {
		for _, p := range el.Params {
			if !p.used {
				errs = append(errs, Errorf(p.Pos, "unknown parameter %q in %s%s", p.Key, where, el.suggest(p.Key)))
			}
		}
		for _, c := range el.Elements {
			if !c.used {
				errs = append(errs, Errorf(c.Pos, "unknown section <%s> in %s%s", c.Name, where, el.suggest("<"+c.Name+">")))
				continue
			}
			walk(c, c.describe())
		}
	}
	walk(e, e.describe())
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].(*Error).Pos.Less(errs[j].(*Error).Pos) }) //nolint:errorlint // built above as *Error
	return errs
}

// suggest returns ` (did you mean "x"?)` for the name a decoder takes here
// that is closest to name, when one is close (an edit or two, or a
// prefix), and "" otherwise.
func (e *Element) suggest(name string) string {
	best, bestDist := "", 3
	for k := range e.known {
		d := editDistance(name, k)
		if d < bestDist || d == bestDist && k < best {
			best, bestDist = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (e *Element) describe() string {
	if e.Arg != "" {
		return "<" + e.Name + " " + e.Arg + ">"
	}
	return "<" + e.Name + ">"
}

// String renders the element back in configuration syntax with every value
// quoted and every line's position, the form the golden tests compare.
func (e *Element) String() string {
	var b strings.Builder
	e.dump(&b, 0)
	return b.String()
}

func (e *Element) dump(b *strings.Builder, depth int) {
	ind := strings.Repeat("  ", depth)
	inner := ind
	if e.Name != "ROOT" {
		fmt.Fprintf(b, "%s%s # %d\n", ind, e.describe(), e.Pos.Line)
		inner = ind + "  "
	}
	for _, p := range e.Params {
		fmt.Fprintf(b, "%s%s %q # %d\n", inner, p.Key, p.Value, p.Pos.Line)
	}
	for _, c := range e.Elements {
		if e.Name == "ROOT" {
			c.dump(b, depth)
		} else {
			c.dump(b, depth+1)
		}
	}
	if e.Name != "ROOT" {
		fmt.Fprintf(b, "%s</%s>\n", ind, e.Name)
	}
}

// Fingerprint identifies the element's content: its name, argument,
// parameters and nested sections, in order, without positions. Two
// sections with the same fingerprint configure the same thing wherever
// they sit in the file, which is how a reload tells what it may keep.
func (e *Element) Fingerprint() string {
	h := sha256.New()
	e.fingerprint(h)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

func (e *Element) fingerprint(w io.Writer) {
	field := func(s string) {
		var n [binary.MaxVarintLen64]byte
		_, _ = w.Write(n[:binary.PutUvarint(n[:], uint64(len(s)))]) // a hash: writes do not fail
		_, _ = io.WriteString(w, s)
	}
	field(e.Name)
	field(e.Arg)
	field(strconv.Itoa(len(e.Params)))
	for _, p := range e.Params {
		field(p.Key)
		field(p.Value)
	}
	field(strconv.Itoa(len(e.Elements)))
	for _, c := range e.Elements {
		c.fingerprint(w)
	}
}
