//go:build integration

package integration

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestImageBinaryIsStatic builds Sluice the way the Dockerfile does (no
// Docker engine runs here) and checks that the result runs on an empty
// base: a static executable with no interpreter and no shared libraries,
// whose check of the image's configuration passes.
func TestImageBinaryIsStatic(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`CGO_ENABLED=0 (?:\w+=\S+ )*go build ([^"]*?)-ldflags`).FindStringSubmatch(string(df))
	if m == nil {
		t.Fatal("no `CGO_ENABLED=0 go build ... -ldflags` in the Dockerfile")
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	args := append([]string{"build"}, strings.Fields(strings.ReplaceAll(m[1], "\\", " "))...)
	args = append(args, "-ldflags", "-s -w", "-o", bin, "../cmd/sluice")
	cmd := exec.Command("go", args...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %v: %v\n%s", args, err, out)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary asks for a dynamic loader: it would not start on an empty base")
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	out, err := exec.Command(bin, "check", "-c", "../deploy/docker/fluent.conf").CombinedOutput()
	if err != nil {
		t.Fatalf("sluice check of the image's configuration: %v\n%s", err, out)
	}
}
