package engine

import (
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/output"
	"github.com/sluice-log/sluice/internal/plugin"
)

func decodeV012(t *testing.T, src string, declared map[string]bool) (output.BufferConfig, *config.Element) {
	t.Helper()
	root, err := config.Parse("t.conf", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	el := root.Elements[0]
	buf, err := v012Buffer(el, declared)
	if err != nil {
		t.Fatal(err)
	}
	if buf == nil {
		t.Fatal("no <buffer> from the flat parameters")
	}
	cfg, err := bufferConfig(plugin.Info{Type: "t"}, "memory")
	if err != nil {
		t.Fatal(err)
	}
	if typ, ok := buf.Get("@type"); ok {
		cfg = output.DefaultBufferConfig(typ)
	}
	if err := config.Decode(buf, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg, el
}

// TestV012BufferParameters: an output section with v0.12's flat buffer
// parameters gets the <buffer> Fluentd's compat_parameters makes of them.
func TestV012BufferParameters(t *testing.T) {
	cfg, el := decodeV012(t, `<match **>
  @type file
  time_slice_format %Y%m%d%H
  time_slice_wait 10m
  buffer_type file
  buffer_path /var/buffer/app.*.buffer
  num_threads 4
  retry_limit 17
  max_retry_wait 30s
  disable_retry_limit false
  buffer_chunk_limit 4m
  buffer_queue_limit 64
  buffer_queue_full_action exception
  try_flush_interval 2s
  timezone +0900
</match>
`, nil)
	want := output.DefaultBufferConfig("file")
	want.Path, want.ChunkKeys, want.Timekey, want.TimekeyWait = "/var/buffer/app.*.buffer", "time", time.Hour, 10*time.Minute
	want.FlushThreadCount, want.RetryMaxTimes, want.RetryMaxInterval = 4, 17, 30*time.Second
	want.ChunkLimitSize, want.QueueLimitLength, want.OverflowAction = 4<<20, 64, "throw_exception"
	want.FlushThreadInterval, want.TimekeyZone = 2*time.Second, "+0900"
	if cfg != want {
		t.Errorf("got  %+v\nwant %+v", cfg, want)
	}
	el.Param("@type") // the engine reads it
	if unused := el.Unused(); len(unused) != 0 {
		t.Errorf("flat parameters left unused: %v", unused)
	}
	if dir, err := v012Path(cfg.Path); err != nil || dir != "/var/buffer/app" {
		t.Errorf("buffer_path: %q, %v", dir, err)
	}

	cfg, _ = decodeV012(t, "<match **>\n  @type forward\n  flush_interval 5s\n</match>\n", nil)
	if cfg.FlushMode != "interval" || cfg.FlushInterval != 5*time.Second {
		t.Errorf("flush_interval without time slices: mode %s every %v", cfg.FlushMode, cfg.FlushInterval)
	}
	// A parameter the output declares itself stays the output's.
	root, _ := config.Parse("t.conf", []byte("<match **>\n  @type x\n  timezone UTC\n</match>\n"), nil)
	if buf, _ := v012Buffer(root.Elements[0], map[string]bool{"timezone": true}); buf != nil {
		t.Errorf("the output's own timezone became a <buffer>: %v", buf)
	}
	for _, bad := range []string{"/var/buffer/*.buffer", "*"} {
		if _, err := v012Path(bad); err == nil || !strings.Contains(err.Error(), "needs a name") {
			t.Errorf("v012Path(%q): %v", bad, err)
		}
	}
}
