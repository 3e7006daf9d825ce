package parser

import (
	"regexp"
	"slices"
	"testing"
)

// The expressions the one-pass matcher takes, and some it must leave to
// Go's regexp because a run could stop at more than one place.
func TestCompileSimple(t *testing.T) {
	for _, tc := range []struct {
		expr   string
		simple bool
	}{
		{`(?s)^(?P<path>[^\s]+) (?P<content>.+)$`, true},                              // seed 002
		{`^(?P<host>[^ ]*) (?P<user>[^ ]*) \[(?P<time>[^\]]*)\] (?P<rest>.*)$`, true}, // apache-like
		{`^(?P<k>[a-z]+)=(?P<v>[0-9]*)`, true},
		{`^(?P<a>.+) (?P<b>.+)$`, false}, // '.' takes the space: where to stop is a choice
		{`^(?P<a>[a-z]+)(?P<b>[0-9]+)$`, false},
		{`(?P<a>[^ ]+) (?P<b>.*)`, false},    // unanchored: a search
		{`^(?P<a>[^ ]+?) (?P<b>.*)$`, false}, // lazy
		{`(?i)^(?P<a>[^ ]+) x(?P<b>.*)$`, false},
		{`(?m)^(?P<a>[^ ]+) (?P<b>.*)$`, false},
		{`^(?P<a>[^ ]+) (?P<b>a|b)$`, false},
	} {
		re := regexp.MustCompile(tc.expr)
		if got := compileSimple(re) != nil; got != tc.simple {
			t.Errorf("%s: one-pass %v, want %v", tc.expr, got, tc.simple)
		}
	}
	p := &Regexp{Expression: `/^(?<path>[^\s]+) (?<content>.+)$/m`, Common: defaultCommon("time")}
	if err := p.Configure(nil); err != nil {
		t.Fatal(err)
	}
	if p.simple == nil {
		t.Error("seed 002's expression is not matched in one pass")
	}
}

var simpleSeeds = []string{
	`(?s)^(?P<path>[^\s]+) (?P<content>.+)$`,
	`^(?P<host>[^ ]*) (?P<user>[^ ]*) \[(?P<time>[^\]]*)\] (?P<rest>.*)$`,
	`^(?P<k>[a-z]+)=(?P<v>[0-9]*)`,
	`^(?P<a>[^,]*),(?P<b>[^,]*),(?P<c>.*)\z`,
	`^x(?P<a>[é-ü]+)ü(?P<b>\pL*)`,
	`^(?P<a>a*)b(?P<b>[^\n]+)$`,
}

// FuzzSimpleMatcher holds the one-pass matcher to Go's regexp: for every
// expression it takes, the same indexes on every text.
func FuzzSimpleMatcher(f *testing.F) {
	for i := range simpleSeeds {
		for _, text := range []string{"customer-17/events some content", "a b", "", "aab\n", "x,y,z\n", "xéü\xffab", "h u [t] r\n"} {
			f.Add(uint8(i), "", text)
		}
	}
	f.Add(uint8(0), `^(?P<a>[^:]+):(?P<b>[0-9]+) (?P<c>.*)$`, "k:12 rest")
	f.Fuzz(func(t *testing.T, pick uint8, expr, text string) {
		if expr == "" {
			expr = simpleSeeds[int(pick)%len(simpleSeeds)]
		}
		re, err := regexp.Compile(expr)
		if err != nil {
			return
		}
		m := compileSimple(re)
		if m == nil {
			return
		}
		want := re.FindSubmatchIndex([]byte(text))
		got := m.match([]byte(text), nil)
		if !slices.Equal(got, want) {
			t.Fatalf("%q on %q: one pass %v, regexp %v", expr, text, got, want)
		}
	})
}
