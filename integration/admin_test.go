//go:build integration

package integration

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice-log/sluice/internal/firehosefake"
)

// TestAdminListenerWithSeedConfigs: each seed configuration, unchanged
// (neither has a prometheus source), run with the admin listener on
// through SLUICE_ADMIN_ADDR as the image sets it: the health check the
// image, the chart and the ECS task run (`sluice probe .../healthz`)
// passes, /readyz is ready, and /metrics serves the outputs' series.
func TestAdminListenerWithSeedConfigs(t *testing.T) {
	check := func(t *testing.T, in *instance, addr string) {
		t.Helper()
		for _, path := range []string{"/healthz", "/readyz"} {
			out, err := exec.Command(sluiceBinary(t), "probe", "http://"+addr+path).CombinedOutput()
			if err != nil {
				t.Errorf("sluice probe %s: %v\n%s\n%s", path, err, out, in.Logs())
			}
		}
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "fluentd_output_status_buffer_queue_length{") {
			t.Errorf("/metrics has no fluentd_output_status series:\n%.500s", body)
		}
	}
	t.Run("seed000", func(t *testing.T) {
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		in := startSeed000(t, firehosefake.New(), "SLUICE_ADMIN_ADDR="+addr)
		defer in.Stop()
		check(t, in, addr)
	})
	t.Run("seed002", func(t *testing.T) {
		dir := t.TempDir()
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		srv := startS3Server(t)
		env := append(srv.Env(""), "SLUICE_ADMIN_ADDR="+addr)
		in := startSluiceIn(t, dir, seed002Conf(t, freePort(t), filepath.Join(dir, "buffer")), env...)
		defer in.Stop()
		check(t, in, addr)
	})
	t.Run("port taken by the configuration", func(t *testing.T) {
		port := freePort(t)
		conf := fmt.Sprintf("<source>\n  @type prometheus\n  port %d\n</source>\n<match **>\n  @type null\n</match>\n", port)
		dir := t.TempDir()
		path := filepath.Join(dir, "sluice.conf")
		if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(sluiceBinary(t), "check", "-c", path, "--admin-addr", fmt.Sprintf("127.0.0.1:%d", port)).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "already taken") {
			t.Errorf("the admin listener on the configuration's port: %v\n%s", err, out)
		}
	})
}
