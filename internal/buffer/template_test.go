package buffer

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTemplate(t *testing.T) {
	keys, err := ParseChunkKeys("tag,time,path,$.kubernetes.pod")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := NewTemplate("/out/${tag}/${tag[1]}/${tag[-1]}/${path}/${$.kubernetes.pod}/%Y%m%d%H", keys)
	if err != nil {
		t.Fatal(err)
	}
	k := NewKey("app.web.access", 1362020400, []string{"cust%Y", "pod-1"})
	if got, err := tmpl.Expand(k, time.UTC); err != nil || got != "/out/app.web.access/web/access/cust%Y/pod-1/2013022803" {
		t.Errorf("Expand = %q, %v", got, err)
	}
	for _, bad := range []string{"${nope}", "${tag[x]}", "${unclosed"} {
		if _, err := NewTemplate(bad, keys); err == nil {
			t.Errorf("NewTemplate(%q) accepted", bad)
		}
	}
	if _, err := NewTemplate("/a/%Y", ChunkKeys{Tag: true}); err == nil {
		t.Error("time placeholder without time key accepted")
	}
	if _, err := NewTemplate("/a/${tag}", ChunkKeys{Time: true}); err == nil {
		t.Error("tag placeholder without tag key accepted")
	}
}

// Tags and record values come from clients: none may lead a path out of
// the place the template puts it.
func TestTemplateRefusesValuesCrossingPaths(t *testing.T) {
	keys, err := ParseChunkKeys("tag,dir")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := NewTemplate("/var/log/out/${tag}/${tag[0]}/${dir}/file", keys)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		tag, dir string
		refused  bool
	}{
		{"app.web", "shard-1", false},
		{"app/web", "a/b", false}, // nested directories stay inside
		{"app..web", "x..y", false},
		{"a", "..", true},
		{"a", "../../etc", true},
		{"a", "x/../../..", true},
		{"a", `x\..\..`, true},
		{"a", "/etc", true},
		{"a", `\windows`, true},
		{"../../x", "d", true},
		{"nul\x00byte", "d", true},
		{"a", "nul\x00byte", true},
		{"..", "d", true},
	} {
		got, err := tmpl.Expand(NewKey(tc.tag, 0, []string{tc.dir}), time.UTC)
		if tc.refused != (err != nil) || tc.refused && !errors.Is(err, ErrCrossesPath) {
			t.Errorf("tag %q dir %q: %q, %v (refused: want %v)", tc.tag, tc.dir, got, err, tc.refused)
		}
		if err == nil && !strings.HasPrefix(got, "/var/log/out/") {
			t.Errorf("tag %q dir %q expanded to %q", tc.tag, tc.dir, got)
		}
	}
}

func FuzzTemplateStaysInside(f *testing.F) {
	f.Add("app.web", "shard")
	f.Add("../x", "..")
	f.Fuzz(func(t *testing.T, tag, dir string) {
		keys, _ := ParseChunkKeys("tag,dir")
		tmpl, err := NewTemplate("/base/${tag}/${tag[1]}/${dir}.log", keys)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tmpl.Expand(NewKey(tag, 0, []string{dir}), time.UTC)
		if err != nil {
			return
		}
		if clean := filepath.Clean(got); !strings.HasPrefix(clean, "/base/") || strings.IndexByte(got, 0) >= 0 {
			t.Fatalf("tag %q dir %q expanded to %q, which leaves /base", tag, dir, got)
		}
	})
}

// Record values may hold any byte: two different sets of them never make
// one chunk key, and each comes back as it was.
func TestKeyValuesKeepTheirBoundaries(t *testing.T) {
	a, b := NewKey("t", 0, []string{"a\x00b", "c"}), NewKey("t", 0, []string{"a", "b\x00c"})
	if a == b {
		t.Error("values with a NUL made one key out of two")
	}
	for _, values := range [][]string{{"a\x00b", "c"}, {"", ""}, {"x"}, {strings.Repeat("v", 300), ""}} {
		got := NewKey("t", 0, values).Values()
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", values) {
			t.Errorf("values %q came back as %q", values, got)
		}
	}
}
