package engine

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/plugin"
)

// misdeclaredEnv makes this test binary register deliberately wrong
// plugin types, in a child process, so that the registry of every other
// test stays sound.
const misdeclaredEnv = "SLUICE_TEST_MISDECLARED"

type chunkless struct{}

type nullChunks struct{}

func (*nullChunks) Write(context.Context, *plugin.Chunk) error { return nil }

func init() {
	if os.Getenv(misdeclaredEnv) == "" {
		return
	}
	// An output with no Write, declaring a buffer; and a buffered output
	// whose buffer defaults name a parameter <buffer> does not have; and one
	// whose <inject> default is not a value time_type takes.
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "t_no_write", DoneWithDataOnReturn: true,
		New: func() any { return chunkless{} }})
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "t_bad_defaults",
		BufferDefaults: map[string]string{"flush_intervl": "1s"}, New: func() any { return &nullChunks{} }})
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "t_bad_inject", Inject: true,
		InjectDefaults: map[string]string{"time_type": "fortnights"}, New: func() any { return &nullChunks{} }})
}

// TestMisdeclaredPluginFailsEveryStart: a configuration that uses no
// plugin at all still fails to build, naming both and what is wrong with each.
func TestMisdeclaredPluginFailsEveryStart(t *testing.T) {
	if os.Getenv(misdeclaredEnv) != "" {
		root, err := config.Parse("test.conf", []byte("<system>\n  log_level warn\n</system>\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Build(root, Options{Logger: slog.New(slog.DiscardHandler)})
		if err == nil {
			t.Fatal("the configuration built")
		}
		os.Stdout.WriteString("BUILD ERROR: " + err.Error() + "\n")
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestMisdeclaredPluginFailsEveryStart$", "-test.v")
	cmd.Env = append(os.Environ(), misdeclaredEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	for _, want := range []string{
		"BUILD ERROR: plugin types registered wrongly",
		`plugin output "t_no_write": engine.chunkless does not implement plugin.BufferedOutput or plugin.SyncOutput`,
		`plugin output "t_bad_defaults": buffer defaults:`,
		"flush_intervl",
		`plugin output "t_bad_inject": inject defaults:`,
		"fortnights",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
}

// TestSubPluginWithoutType: a builder asked for a parser with neither a
// section nor a default type gets an error, not a crash.
func TestSubPluginWithoutType(t *testing.T) {
	root, err := config.Parse("test.conf", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Build(root, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Builder().Parser(nil, ""); err == nil || !strings.Contains(err.Error(), "no @type for the parser") {
		t.Errorf("Parser(nil, \"\"): %v", err)
	}
}
