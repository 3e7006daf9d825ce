package parser

import (
	"regexp"
	"regexp/syntax"
	"slices"
	"unicode/utf8"
)

// simpleMatcher matches, in one pass and without an automaton, the shape
// most line expressions have: anchored at the start, a sequence of
// literals and greedy runs of one character class, each run followed by a
// literal that starts with a character outside the class, or by the end.
// Seed 002's /^(?<path>[^\s]+) (?<content>.+)$/m is one. For such an
// expression the leftmost-first match Go's regexp finds is the one where
// every run stops at the first character outside its class, so no choice
// is ever undone. It returns what (*regexp.Regexp).FindSubmatchIndex
// does; a differential fuzz target holds it to that.
type simpleMatcher struct {
	steps  []simpleStep
	atEnd  bool // the expression ends with \z or $
	groups int  // 1 + the number of capture groups
}

type simpleStep struct {
	literal string     // when class is nil: bytes that must come next
	class   *runeClass // a greedy run of this class
	min     int        // 0 (*) or 1 (+)
	capture int        // the run's capture group, or 0 for none
}

// runeClass is a character class: a table for ASCII, ranges for the rest.
type runeClass struct {
	ascii  [128]bool
	ranges []rune // lo, hi pairs, as syntax.Regexp.Rune holds them
}

func (c *runeClass) has(r rune) bool {
	if r < utf8.RuneSelf {
		return c.ascii[r]
	}
	for i := 0; i+1 < len(c.ranges); i += 2 {
		if r < c.ranges[i] {
			return false
		}
		if r <= c.ranges[i+1] {
			return true
		}
	}
	return false
}

func newRuneClass(ranges []rune) *runeClass {
	c := &runeClass{ranges: ranges}
	for i := 0; i+1 < len(ranges); i += 2 {
		for r := ranges[i]; r <= ranges[i+1] && r < utf8.RuneSelf; r++ {
			c.ascii[r] = true
		}
	}
	return c
}

var (
	anyRune      = newRuneClass([]rune{0, utf8.MaxRune})
	anyRuneNotNL = newRuneClass([]rune{0, '\n' - 1, '\n' + 1, utf8.MaxRune})
)

// compileSimple returns a simpleMatcher for re, or nil when re is not of
// the shape above (then Go's regexp matches it).
func compileSimple(re *regexp.Regexp) *simpleMatcher {
	tree, err := syntax.Parse(re.String(), syntax.Perl)
	if err != nil {
		return nil
	}
	tree = tree.Simplify()
	var parts []*syntax.Regexp
	if tree.Op == syntax.OpConcat {
		parts = tree.Sub
	} else {
		parts = []*syntax.Regexp{tree}
	}
	if len(parts) == 0 || parts[0].Op != syntax.OpBeginText {
		return nil // unanchored: a search, not one pass
	}
	m := &simpleMatcher{groups: re.NumSubexp() + 1}
	parts = parts[1:]
	if n := len(parts); n > 0 && parts[n-1].Op == syntax.OpEndText {
		m.atEnd = true
		parts = parts[:n-1]
	}
	for _, p := range parts {
		step, ok := simpleStepOf(p)
		if !ok {
			return nil
		}
		if n := len(m.steps); n > 0 && step.class == nil && m.steps[n-1].class == nil {
			m.steps[n-1].literal += step.literal
			continue
		}
		m.steps = append(m.steps, step)
	}
	// Every run must be followed by a literal whose first character it
	// cannot take, or end the expression.
	for i, s := range m.steps {
		if s.class == nil {
			if s.literal == "" {
				return nil
			}
			continue
		}
		if i+1 == len(m.steps) {
			continue
		}
		next := m.steps[i+1]
		if next.class != nil {
			return nil
		}
		first, _ := utf8.DecodeRuneInString(next.literal)
		if s.class.has(first) {
			return nil
		}
	}
	return m
}

func simpleStepOf(p *syntax.Regexp) (simpleStep, bool) {
	capture := 0
	if p.Op == syntax.OpCapture {
		capture = p.Cap
		p = p.Sub[0]
	}
	switch p.Op {
	case syntax.OpLiteral:
		if capture != 0 || p.Flags&syntax.FoldCase != 0 || slices.Contains(p.Rune, utf8.RuneError) {
			// U+FFFD in an expression also matches an invalid byte, which a
			// comparison of bytes would not.
			return simpleStep{}, false
		}
		return simpleStep{literal: string(p.Rune)}, true
	case syntax.OpPlus, syntax.OpStar:
		if p.Flags&syntax.NonGreedy != 0 {
			return simpleStep{}, false
		}
		class := classOf(p.Sub[0])
		if class == nil {
			return simpleStep{}, false
		}
		min := 0
		if p.Op == syntax.OpPlus {
			min = 1
		}
		return simpleStep{class: class, min: min, capture: capture}, true
	}
	return simpleStep{}, false
}

func classOf(p *syntax.Regexp) *runeClass {
	switch p.Op {
	case syntax.OpCharClass:
		return newRuneClass(p.Rune)
	case syntax.OpAnyChar:
		return anyRune
	case syntax.OpAnyCharNotNL:
		return anyRuneNotNL
	case syntax.OpLiteral:
		if len(p.Rune) == 1 && p.Flags&syntax.FoldCase == 0 {
			return newRuneClass([]rune{p.Rune[0], p.Rune[0]})
		}
	}
	return nil
}

// match appends to dst[:0] the match's indexes as FindSubmatchIndex
// returns them, or returns nil when text does not match.
func (m *simpleMatcher) match(text []byte, dst []int) []int {
	dst = dst[:0]
	for range 2 * m.groups {
		dst = append(dst, -1)
	}
	pos := 0
	for _, s := range m.steps {
		if s.class == nil {
			if len(text)-pos < len(s.literal) || string(text[pos:pos+len(s.literal)]) != s.literal {
				return nil
			}
			pos += len(s.literal)
			continue
		}
		start, runes := pos, 0
		for pos < len(text) {
			r, size := rune(text[pos]), 1
			if r >= utf8.RuneSelf {
				r, size = utf8.DecodeRune(text[pos:])
			}
			if !s.class.has(r) {
				break
			}
			pos += size
			runes++
		}
		if runes < s.min {
			return nil
		}
		if s.capture != 0 {
			dst[2*s.capture], dst[2*s.capture+1] = start, pos
		}
	}
	if m.atEnd && pos != len(text) {
		return nil
	}
	dst[0], dst[1] = 0, pos
	return dst
}
