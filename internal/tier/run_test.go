package tier

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// An instance that restarted inside a window has counters lower than at
// its start: its share is what it took since, not a negative number.
func TestSharesAcrossRestarts(t *testing.T) {
	before := sample{1: {3, 1000}, 2: {3, 5000}}
	after := sample{1: {2, 1600}, 2: {1, 700}, 3: {2, 300}}
	got := shares(before, after)
	want := []Share{{1, 2, 600}, {2, 1, 700}, {3, 2, 300}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("share %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCountPhases(t *testing.T) {
	dir := t.TempDir()
	sink := filepath.Join(dir, "sink", "instance-1", TracerTag)
	if err := os.MkdirAll(sink, 0o755); err != nil {
		t.Fatal(err)
	}
	lines := `{"tracer":"t0-0"}` + "\n" + `{"tracer":"t0-1"}` + "\n" + `{"tracer":"t0-1"}` + "\n"
	if err := os.WriteFile(filepath.Join(sink, "events.log"), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{"t0-0": "steady", "t0-1": "deploy", "t0-2": "deploy"}
	got, err := countPhases(&Tier{cfg: Config{Dir: dir}}, TracerTag, "tracer", acked)
	if err != nil {
		t.Fatal(err)
	}
	want := []PhaseCount{{"steady", 1, 0, 0}, {"deploy", 2, 1, 1}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	rep := &Report{Tracers: got, Background: []PhaseCount{{"deploy", 10, 0, 0}}}
	if d := rep.Total("deploy"); d != (PhaseCount{Sent: 12, Lost: 1, Duplicated: 1}) {
		t.Errorf("deploy total %+v", d)
	}
	var out strings.Builder
	rep.Write(&out)
	if !strings.Contains(out.String(), "tracers/deploy") || !strings.Contains(out.String(), "background/deploy") {
		t.Errorf("report:\n%s", out.String())
	}
}
