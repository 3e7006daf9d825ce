package engine_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-log/sluice/internal/plugintest"
)

// TestSecondaryFileFromConfig: a <secondary> secondary_file takes the
// chunks a failing output cannot deliver.
func TestSecondaryFileFromConfig(t *testing.T) {
	dir := t.TempDir()
	e := plugintest.Build(t, `
<system>
  root_dir `+dir+`/root
</system>
<match **>
  @type null
  @id   failing
  never_flush true
  <buffer tag>
    @type file
    flush_interval 0.05
    retry_wait 0.01
    retry_max_times 2
    retry_secondary_threshold 0.5
  </buffer>
  <secondary>
    @type secondary_file
    directory `+dir+`/failed/${tag}
    basename dump.${chunk_id}
  </secondary>
</match>`)
	stop := plugintest.Start(t, e)
	plugintest.WaitFor(t, "the buffer to open", func() bool {
		_, err := os.Stat(filepath.Join(dir, "root", "failing", "buffer"))
		return err == nil
	})
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "app.fail", map[string]any{"k": "v"})))
	plugintest.WaitFor(t, "a dump file", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "failed", "app.fail", "dump.*"))
		return len(m) == 1
	})
	stop()
	m, _ := filepath.Glob(filepath.Join(dir, "failed", "app.fail", "dump.*"))
	data, _ := os.ReadFile(m[0])
	if !strings.Contains(string(data), "k") || !strings.HasSuffix(m[0], ".0") {
		t.Errorf("dump %s holds %q", m[0], data)
	}
	if _, err := os.Stat(filepath.Join(dir, "root", "failing", "buffer")); err != nil {
		t.Errorf("file buffer under root_dir: %v", err)
	}
}

func TestSecondaryErrors(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"<match **>\n  @type null\n  <buffer>\n  </buffer>\n  <secondary>\n    @type nosuch\n  </secondary>\n</match>", `unknown plugin type "nosuch"`},
		{"<match **>\n  @type null\n  <buffer>\n  </buffer>\n  <secondary>\n    @type secondary_file\n  </secondary>\n</match>", `required parameter "directory"`},
		{"<match **>\n  @type null\n  <buffer>\n    @type file\n  </buffer>\n</match>", "needs path"},
		{"<match **>\n  @type null\n  <buffer>\n    @type file\n    path /tmp/*.log\n  </buffer>\n</match>", "a '*' needs a name before it"},
	} {
		if _, err := plugintest.BuildErr(tc.conf); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
