package route

import (
	"fmt"
	"reflect"
	"testing"
)

// The cases from Fluentd's configuration documentation ("Wildcards,
// Expansions and other tips") and from the behaviour of its
// GlobMatchPattern, each a pattern, the tags it matches and those it must not.
func TestPatternTable(t *testing.T) {
	cases := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{"a", []string{"a"}, []string{"b", "a.b", "aa", ""}},
		{"a.*", []string{"a.b", "a.c"}, []string{"a", "a.b.c", "b.a"}},
		{"a.**", []string{"a", "a.b", "a.b.c"}, []string{"ab", "b", "b.a"}},
		{"**", []string{"a", "a.b", "a.b.c", ""}, nil},
		{"{a,b}", []string{"a", "b"}, []string{"c", "a.b"}},
		{"a.{b,c}.*", []string{"a.b.x", "a.c.y"}, []string{"a.d.x", "a.b", "a.b.x.y"}},
		{"a.{b,c.**}", []string{"a.b", "a.c", "a.c.d", "a.c.d.e"}, []string{"a.d", "a.b.c"}},
		{"**.b", []string{"b", "a.b", "x.y.b"}, []string{"ab", "b.a"}},
		{"a.**.b", []string{"a.b", "a.x.b", "a.x.y.b"}, []string{"a.xb", "ab", "a.b.c"}},
		{"*", []string{"a", "frontend-apache"}, []string{"a.b"}},
		{"frontend*", []string{"frontend", "frontend-apache", "frontendx"}, []string{"frontend.x", "backend-api"}},
		{"health*", []string{"healthcheck"}, []string{"health.check", "x.healthcheck"}},
		{"backend*", []string{"backend-api"}, []string{"frontend-apache"}},
		{"a b", []string{"a", "b"}, []string{"c", "a b"}},
		{"a.** b.*", []string{"a", "a.x.y", "b.c"}, []string{"b", "b.c.d"}},
		{`/^app\.(foo|bar)$/`, []string{"app.foo", "app.bar"}, []string{"app.baz", "xapp.foo"}},
		{`/app\..*/`, []string{"app.x", "app.x.y"}, []string{"xapp.x"}},
		{`a\*`, []string{"a*"}, []string{"ab"}},
		{"", []string{"anything", "a.b"}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.pattern, func(t *testing.T) {
			p, err := Compile(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			for _, tag := range tc.match {
				if !p.Match(tag) {
					t.Errorf("%q should match %q", tc.pattern, tag)
				}
			}
			for _, tag := range tc.noMatch {
				if p.Match(tag) {
					t.Errorf("%q should not match %q", tc.pattern, tag)
				}
			}
		})
	}
}

func TestPatternErrors(t *testing.T) {
	for _, bad := range []string{"{a,b", "/unclosed", `/(?<=x)y/`, `a\`, "a}"} {
		if _, err := Compile(bad); err == nil {
			t.Errorf("Compile(%q) succeeded", bad)
		}
	}
}

func TestRouterFirstMatchWinsAndFilterOrder(t *testing.T) {
	r := NewRouter[string, string](0)
	add := func(filter bool, pat, name string) {
		p, err := Compile(pat)
		if err != nil {
			t.Fatal(err)
		}
		if filter {
			r.AddFilter(p, name)
		} else {
			r.AddMatch(p, name)
		}
	}
	add(true, "app.**", "f1")
	add(true, "other", "f-other")
	add(false, "app.access", "out-access")
	add(true, "app.**", "f-after-access")
	add(false, "app.**", "out-app")
	add(false, "app.**", "out-never")

	cases := []struct {
		tag     string
		filters []string
		out     string
		matched bool
	}{
		{"app.access", []string{"f1"}, "out-access", true},
		{"app.error", []string{"f1", "f-after-access"}, "out-app", true},
		{"nomatch", nil, "", false},
		{"other", nil, "", false},
	}
	for _, tc := range cases {
		rt := r.Lookup(tc.tag)
		if !reflect.DeepEqual(rt.Filters, tc.filters) || rt.Output != tc.out || rt.Matched != tc.matched {
			t.Errorf("Lookup(%q) = %+v, want filters %v out %q matched %v", tc.tag, rt, tc.filters, tc.out, tc.matched)
		}
	}
}

func TestRouterCacheBounded(t *testing.T) {
	r := NewRouter[int, int](16)
	p, _ := Compile("**")
	r.AddMatch(p, 1)
	for i := 0; i < 100; i++ {
		if !r.Lookup(fmt.Sprintf("tag.%d", i)).Matched {
			t.Fatal("no match")
		}
	}
	if len(r.cache) > 16 {
		t.Errorf("cache holds %d tags, limit 16", len(r.cache))
	}
	if r.CacheResets() == 0 {
		t.Error("cache was never reset")
	}
}

func TestRouterCacheHitAllocs(t *testing.T) {
	r := NewRouter[int, int](0)
	p, _ := Compile("frontend*")
	r.AddMatch(p, 1)
	tag := "frontend-apache"
	r.Lookup(tag)
	if n := testing.AllocsPerRun(1000, func() { r.Lookup(tag) }); n != 0 {
		t.Errorf("cache hit allocates %v times", n)
	}
}

func BenchmarkRouterLookupHit(b *testing.B) {
	r := NewRouter[int, int](0)
	for _, pat := range []string{"health*", "frontend*", "backend*"} {
		p, _ := Compile(pat)
		r.AddMatch(p, 1)
	}
	r.Lookup("backend-api")
	b.ReportAllocs()
	for b.Loop() {
		r.Lookup("backend-api")
	}
}

func FuzzCompile(f *testing.F) {
	for _, s := range []string{"a.**", "{a,b.{c,d}}.*", "**.x", `/re(x)?/`, `a\.b`, "a b c"} {
		f.Add(s, "a.b.c")
	}
	f.Fuzz(func(t *testing.T, pattern, tag string) {
		if len(pattern) > 64 || len(tag) > 64 {
			return // backtracking cost grows with both; real patterns are short
		}
		p, err := Compile(pattern)
		if err != nil {
			return
		}
		p.Match(tag)
	})
}
