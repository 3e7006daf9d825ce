package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugin"
)

var update = flag.Bool("update", false, "rewrite docs/plugins from the code")

// TestPluginsTypePrintsOneReference: `sluice plugins s3` prints s3's own
// parameters with their descriptions and its <buffer> with the defaults
// it has for s3 (chunks by time, one hour), and nothing of other types.
func TestPluginsTypePrintsOneReference(t *testing.T) {
	code, out, errs := runMain("plugins", "s3")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"output s3: Write chunks as objects",
		"  s3_bucket  string  default (required)\n      The bucket the objects are written to.",
		"  <format> @type  string  default out_file",
		"  <format> output_tag  bool  default true",
		"  <buffer> (argument)  string  default time\n      The chunk keys",
		"  <buffer> timekey  time  default 1h\n",
		"  <buffer> flush_thread_count  integer  default 1\n      How many chunks are written at once",
		"  <assume_role_credentials> role_arn",
		"  <secondary>\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	for _, other := range []string{"delivery_stream_name", "chunk_size_limit", "heartbeat_type"} {
		if strings.Contains(out, other) {
			t.Errorf("s3's reference shows %s, another type's parameter", other)
		}
	}
	// A name several kinds use prints each, or the one asked for.
	if _, out, _ := runMain("plugins", "stdout"); strings.Count(out, " stdout: ") != 3 {
		t.Errorf("plugins stdout: want the output, the filter and the formatter:\n%s", out)
	}
	if _, out, _ := runMain("plugins", "filter", "stdout"); strings.Count(out, " stdout: ") != 1 {
		t.Errorf("plugins filter stdout:\n%s", out)
	}
}

// TestEveryParameterDescribed: every parameter and section of every
// plugin type, <buffer>'s included, has a description.
func TestEveryParameterDescribed(t *testing.T) {
	for _, info := range plugin.All() {
		for _, p := range engine.Reference(info) {
			if p.Desc == "" {
				t.Errorf("%s %s: %s has no desc tag", info.Kind, info.Type, p.Name)
			}
		}
	}
	for _, p := range engine.SystemReference() {
		if p.Desc == "" {
			t.Errorf("<system> %s has no desc tag", p.Name)
		}
	}
}

// TestPluginDocs: docs/plugins holds one page per plugin type, as the
// code describes it now. Run with -update to rewrite them.
func TestPluginDocs(t *testing.T) {
	dir := filepath.Join("..", "..", "docs", "plugins")
	want := map[string][]byte{}
	var index bytes.Buffer
	index.WriteString("# Plugin reference\n\nOne page per plugin type, generated from the code (the `conf`, `section` and `desc` tags) by\n" +
		"`go test ./internal/cli -run TestPluginDocs -update`; the test suite fails when a page is out of date.\n" +
		"`sluice plugins TYPE` prints the same reference in a terminal.\n\n| Kind | Type | What it does |\n|---|---|---|\n")
	for _, info := range plugin.All() {
		name := string(info.Kind) + "-" + info.Type + ".md"
		var b bytes.Buffer
		WriteReference(&b, info, true)
		want[name] = b.Bytes()
		index.WriteString("| " + string(info.Kind) + " | [" + info.Type + "](" + name + ") | " + info.Summary + " |\n")
	}
	var sys bytes.Buffer
	WriteSystemReference(&sys, true)
	want["system.md"] = sys.Bytes()
	index.WriteString("\n[`<system>`](system.md) has a page too.\n")
	want["README.md"] = index.Bytes()
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range want {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/cli -run TestPluginDocs -update)", err)
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; !ok {
			t.Errorf("docs/plugins/%s describes no plugin type any more (run with -update)", e.Name())
		}
	}
	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("docs/plugins/%s is out of date (run go test ./internal/cli -run TestPluginDocs -update)", name)
		}
	}
}
