package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCorpus runs `sluice check` on every configuration under
// testdata/corpus (written for Sluice, in the shapes real deployments
// use: Helm include trees, daemonset environment configs, operator output
// with hashed labels, FireLens label chains, v0.12 leftovers, the seeds)
// and compares the whole output, exit status included, with the .golden
// file beside it. Run with -update to rewrite them.
func TestConfigCorpus(t *testing.T) {
	t.Chdir(filepath.Join("testdata", "corpus")) // File.read in the configurations is relative, as in Fluentd
	t.Setenv("SLUICE_CORPUS_PROFILE", "default")
	confs, err := filepath.Glob("*.conf")
	if err != nil || len(confs) < 40 {
		t.Fatalf("%d configurations (want at least 40): %v", len(confs), err)
	}
	for _, conf := range confs {
		t.Run(strings.TrimSuffix(conf, ".conf"), func(t *testing.T) {
			code, out, errs := runMain("check", "-c", conf)
			got := fmt.Sprintf("exit %d\n%s%s", code, out, errs)
			golden := strings.TrimSuffix(conf, ".conf") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("sluice check -c %s:\n--- got\n%s--- want\n%s", conf, got, want)
			}
		})
	}
}
