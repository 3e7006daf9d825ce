//go:build integration

package integration

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// TestImageWithPodman builds the Dockerfile's final stage with Debian's
// podman, without a Docker daemon and without a download: the build stage
// (a golang base image) is replaced by the same static build on this
// machine, and its /out tree is laid out as that stage lays it out. Then
// the image runs (runc, loopback port mappings): it runs as non-root, its
// HEALTHCHECK passes, it takes acknowledged events on its forward port,
// SIGTERM (podman stop) keeps them in its file buffer and exits 0, and
// the next start delivers each once.
// An arm64 image of the same stage builds too (it runs no commands, so no
// emulator is needed). scripts/test installs podman and runc.
func TestImageWithPodman(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is not installed (scripts/test installs it with runc)")
	}
	dir := t.TempDir()
	// podman's own settings for this machine: crun refuses its cgroup
	// layout (runc is used), and no default ulimits may be set.
	confPath := filepath.Join(dir, "containers.conf")
	if err := os.WriteFile(confPath, []byte("[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = \"runc\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	podman := func(args ...string) (string, error) {
		cmd := exec.Command("podman", args...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+confPath)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	final := string(df[strings.LastIndex(string(df), "\nFROM scratch")+1:])
	for old, repl := range map[string]string{
		"COPY --from=build /etc/ssl/certs/ca-certificates.crt ": "COPY ca-certificates.crt ",
		"COPY --from=build --chown=65532:65532 /out/ /":         "COPY --chown=65532:65532 out/ /",
	} {
		if !strings.Contains(final, old) {
			t.Fatalf("the Dockerfile's final stage no longer has %q", old)
		}
		final = strings.Replace(final, old, repl, 1)
	}
	if strings.Contains(final, "--from=") || strings.Contains(final, "\nRUN ") {
		t.Fatalf("the final stage must only copy from the build stage:\n%s", final)
	}
	ctxDir := filepath.Join(dir, "context")
	for _, d := range []string{"out/etc/fluent", "out/var/lib/sluice", "out/tmp"} {
		if err := os.MkdirAll(filepath.Join(ctxDir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(ctxDir, "Containerfile"), []byte(final), 0o644); err != nil {
		t.Fatal(err)
	}
	copyFile := func(from, to string) {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	copyFile("/etc/ssl/certs/ca-certificates.crt", filepath.Join(ctxDir, "ca-certificates.crt"))
	copyFile("../deploy/docker/fluent.conf", filepath.Join(ctxDir, "out/etc/fluent/fluent.conf"))
	m := regexp.MustCompile(`CGO_ENABLED=0 (?:\w+=\S+ )*go build ([^"]*?)-ldflags`).FindStringSubmatch(string(df))
	if m == nil {
		t.Fatal("no `CGO_ENABLED=0 go build ... -ldflags` in the Dockerfile")
	}
	build := func(arch, out string) {
		args := append([]string{"build"}, strings.Fields(strings.ReplaceAll(m[1], "\\", " "))...)
		args = append(args, "-ldflags", "-s -w", "-o", out, "../cmd/sluice")
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+arch)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, b)
		}
	}
	build("amd64", filepath.Join(ctxDir, "out/sluice"))

	tag := fmt.Sprintf("localhost/sluice-test:%d", time.Now().UnixNano())
	if out, err := podman("build", "--format", "docker", "--arch", "amd64", "-t", tag, "-f", filepath.Join(ctxDir, "Containerfile"), ctxDir); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	defer podman("rmi", "-f", tag)
	forwardPort, adminPort := freePort(t), freePort(t)
	name := fmt.Sprintf("sluice-test-%d", time.Now().UnixNano())
	if out, err := podman("run", "-d", "--name", name, "-p", fmt.Sprintf("127.0.0.1:%d:24224", forwardPort),
		"-p", fmt.Sprintf("127.0.0.1:%d:24232", adminPort), tag); err != nil {
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	defer podman("rm", "-f", name)
	logs := func() string { out, _ := podman("logs", name); return out }

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", adminPort))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container never became ready\n%s", logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, err := podman("healthcheck", "run", name); err != nil {
		t.Errorf("the image's HEALTHCHECK failed: %v\n%s", err, out)
	}
	if out, _ := podman("inspect", "--format", "{{.Config.User}}", name); strings.TrimSpace(out) != "65532:65532" {
		t.Errorf("the container runs as %q, want the non-root 65532:65532", strings.TrimSpace(out))
	}

	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: forwardPort, RequestAck: true})
	if err != nil {
		t.Fatal(err)
	}
	want := ids("in-container", 50)
	for _, id := range want {
		if err := logger.Post("podman.test", map[string]string{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
	logger.Close()
	// SIGTERM: the file buffer keeps what it holds on the volume (Fluentd's
	// flush_at_shutdown false for file buffers) and Sluice exits 0; the
	// next start delivers it, each event once.
	if out, err := podman("stop", "-t", "40", name); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	if out, _ := podman("inspect", "--format", "{{.State.ExitCode}}", name); strings.TrimSpace(out) != "0" {
		t.Errorf("exit code %q after SIGTERM, want 0\n%s", strings.TrimSpace(out), logs())
	}
	if !strings.Contains(logs(), "records kept in the file buffer") {
		t.Errorf("the shutdown did not keep the buffered events\n%s", logs())
	}
	if out, err := podman("start", name); err != nil {
		t.Fatalf("podman start: %v\n%s", err, out)
	}
	count := func(all, id string) int { return strings.Count(all, `"id":"`+id+`"`) }
	deadline = time.Now().Add(30 * time.Second)
	for count(logs(), want[len(want)-1]) == 0 && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	if out, err := podman("stop", "-t", "40", name); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	all := logs()
	for _, id := range want {
		if count(all, id) != 1 {
			t.Fatalf("event %s printed %d times across the restart, want once\n%s", id, count(all, id), all)
		}
	}

	// linux/arm64 (Graviton, Fargate ARM): the same stage, an arm64 binary.
	build("arm64", filepath.Join(ctxDir, "out/sluice"))
	armTag := tag + "-arm64"
	if out, err := podman("build", "--format", "docker", "--arch", "arm64", "-t", armTag, "-f", filepath.Join(ctxDir, "Containerfile"), ctxDir); err != nil {
		t.Fatalf("podman build --arch arm64: %v\n%s", err, out)
	}
	defer podman("rmi", "-f", armTag)
	if out, _ := podman("image", "inspect", "--format", "{{.Architecture}}", armTag); strings.TrimSpace(out) != "arm64" {
		t.Errorf("the arm64 image says architecture %q", strings.TrimSpace(out))
	}
}
