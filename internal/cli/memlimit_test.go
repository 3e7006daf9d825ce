package cli

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	if l, from := memoryLimit(2<<30, 0); l != 2<<30 || from != "configuration" {
		t.Errorf("no cgroup: %d %s", l, from)
	}
	if l, from := memoryLimit(2<<30, 1<<30); l != (1<<30)/10*9 || from != "container" {
		t.Errorf("a smaller cgroup: %d %s", l, from)
	}
	if l, _ := memoryLimit(256<<20, 4<<30); l != 256<<20 {
		t.Errorf("a larger cgroup: %d", l)
	}
	dir := t.TempDir()
	if cgroupMemoryLimit(dir) != 0 {
		t.Error("a limit without cgroup files")
	}
	write := func(name, v string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("memory/memory.limit_in_bytes", "9223372036854771712\n")
	if cgroupMemoryLimit(dir) != 0 {
		t.Error("v1's unlimited read as a limit")
	}
	write("memory/memory.limit_in_bytes", "536870912\n")
	if cgroupMemoryLimit(dir) != 512<<20 {
		t.Error("v1 limit")
	}
	write("memory.max", "max\n")
	if cgroupMemoryLimit(dir) != 0 {
		t.Error("v2 max read as a limit")
	}
	write("memory.max", "1073741824\n")
	if cgroupMemoryLimit(dir) != 1<<30 {
		t.Error("v2 limit")
	}
}
