package config

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the expected part of testdata/*.conf")

const separator = "----------\n"

func testOptions() *Options {
	return &Options{
		Getenv: func(k string) (string, bool) {
			if k == "SLUICE_TEST_VAR" {
				return "from-env", true
			}
			return "", false
		},
		Hostname: func() (string, error) { return "test-host", nil },
	}
}

// TestGolden parses each testdata/*.conf and compares the rendered tree (or
// the error) with the text after the separator line.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/*.conf")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			src, want, ok := strings.Cut(string(raw), separator)
			if !ok {
				t.Fatalf("%s has no %q separator", file, strings.TrimSpace(separator))
			}
			var got string
			root, err := Parse(file, []byte(src), testOptions())
			if err != nil {
				got = "error: " + err.Error() + "\n"
			} else {
				got = root.String()
			}
			if *update {
				if err := os.WriteFile(file, []byte(src+separator+got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if got != want {
				t.Errorf("mismatch for %s\n--- got\n%s--- want\n%s", file, got, want)
			}
		})
	}
}

func TestUnused(t *testing.T) {
	root, err := Parse("t.conf", []byte("<match **>\n  @type null\n  typo 1\n  <buffer>\n  </buffer>\n  <bogus>\n  </bogus>\n</match>\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	m := root.Elements[0]
	m.MarkUsed()
	m.Param("@type")
	m.Sections("buffer")
	errs := root.Unused()
	if len(errs) != 2 {
		t.Fatalf("want 2 errors, got %v", errs)
	}
	if got := errs[0].Error(); got != `t.conf:3: unknown parameter "typo" in <match **>` {
		t.Errorf("first error = %q", got)
	}
	if got := errs[1].Error(); got != `t.conf:6: unknown section <bogus> in <match **>` {
		t.Errorf("second error = %q", got)
	}
}

func TestIncludeCycle(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "self.conf")
	if err := os.WriteFile(path, []byte("@include self.conf\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := ParseFile(path, nil)
	if err == nil || !strings.Contains(err.Error(), "nested more than") {
		t.Fatalf("want a cycle error, got %v", err)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.conf")
	for _, file := range files {
		raw, _ := os.ReadFile(file)
		src, _, _ := strings.Cut(string(raw), separator)
		f.Add(src)
	}
	f.Add("<a\n")
	f.Add("k \"#{")
	f.Add("k [\"\\")
	opts := testOptions()
	opts.ReadFile = func(string) ([]byte, error) { return nil, os.ErrNotExist }
	f.Fuzz(func(t *testing.T, src string) {
		root, err := Parse("fuzz.conf", []byte(src), opts)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		// Rendering and reporting must work on any tree the parser accepts.
		_ = root.String()
		_ = root.Unused()
	})
}

// TestIncludeOfNothing: an @include path that names no file includes
// nothing, as Fluentd's globbing does, and says so; a file that exists
// but cannot be read is still an error.
func TestIncludeOfNothing(t *testing.T) {
	var warned []string
	opts := &Options{
		ReadFile: func(p string) ([]byte, error) {
			if p == "/etc/x/broken.conf" {
				return nil, os.ErrPermission
			}
			return nil, os.ErrNotExist
		},
		Warn: func(pos Pos, msg string) { warned = append(warned, pos.String()+": "+msg) },
	}
	root, err := Parse("/etc/x/main.conf", []byte("@include missing.conf\n<system>\n</system>\n"), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(root.Elements) != 1 || len(warned) != 1 || !strings.Contains(warned[0], "/etc/x/main.conf:1: @include /etc/x/missing.conf matches no file") {
		t.Errorf("elements %d, warnings %q", len(root.Elements), warned)
	}
	if _, err := Parse("/etc/x/main.conf", []byte("@include broken.conf\n"), opts); err == nil {
		t.Error("an unreadable include was ignored")
	}
}

// TestEveryStructuralProblemOnce: after a structural error the parser goes
// on, so that one run reports each problem (the golden error_many.conf has
// the kinds), and a file of garbage reports a bounded number of them.
func TestEveryStructuralProblemOnce(t *testing.T) {
	_, err := Parse("g.conf", []byte(strings.Repeat("<\n", 150)), testOptions())
	if err == nil {
		t.Fatal("garbage parsed")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != maxReported+1 || lines[len(lines)-1] != "g.conf: 50 more problems not shown" {
		t.Errorf("%d lines, last %q", len(lines), lines[len(lines)-1])
	}
	if lines[1] != "g.conf:2: expected a section name after '<'" {
		t.Errorf("line 2: %q", lines[1])
	}
}
