//go:build integration

package integration

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// edgeConf takes forward events into a file output through a file buffer
// under {{DIR}}, and serves /readyz on metricsPort.
func edgeConf(port, metricsPort int, bufferDir string) string {
	return fmt.Sprintf(`
<system>
  shutdown_timeout 5s
</system>
<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port %d
</source>
<match **>
  @type file
  path {{DIR}}/out/events
  append true
  <format>
    @type json
  </format>
  <buffer tag>
    @type file
    path %s
    flush_mode interval
    flush_interval 0.2
    chunk_limit_size 1m
    retry_wait 0.1
  </buffer>
</match>
`, port, metricsPort, bufferDir)
}

// ackedMessage is a Message-mode event with a chunk option.
func ackedMessage(tag, chunk, id string) []byte {
	b := msgp.AppendArrayHeader(nil, 4)
	b = msgp.AppendString(b, tag)
	b = msgp.AppendInt64(b, time.Now().Unix())
	b = msgp.AppendMapHeader(b, 1)
	b = msgp.AppendString(msgp.AppendString(b, "id"), id)
	b = msgp.AppendMapHeader(b, 1)
	return msgp.AppendString(msgp.AppendString(b, "chunk"), chunk)
}

func readyz(port int) int {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// On the binary: JSON-mode events without an ack request are written
// (item 7); values that are not event messages and a message cut short
// by the client's close are logged, not passed over (item 12); a 1 MiB
// tag, which the file buffer could not read back, is refused before it is
// acknowledged, and the next start finds nothing damaged (item 9).
func TestForwardEdgesOnTheBinary(t *testing.T) {
	port, metrics := freePort(t), freePort(t)
	dir := t.TempDir()
	conf := edgeConf(port, metrics, filepath.Join(dir, "buffer"))
	in := startSluiceIn(t, dir, conf)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	j, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(j, `["app.json", %d, {"id": "json-no-ack"}]`+"\n", time.Now().Unix())
	defer j.Close()

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(msgp.AppendInt64(nil, 42))
	c.Write(ackedMessage(strings.Repeat("t", 1<<20+10), "huge", "huge-tag"))
	c.Write(ackedMessage("app.ok", "ok1", "after-huge"))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	reply, err := readReply(c)
	if err != nil || !strings.Contains(reply, "ok1") || strings.Contains(reply, "huge") {
		t.Errorf("replies %q (%v): want the ack of ok1 only", reply, err)
	}
	whole := ackedMessage("app.cut", "cut", "cut-short")
	c.Write(whole[:len(whole)-4])
	c.Close()

	missing, _ := countByID(t, filepath.Join(dir, "out", "events*"), []string{"json-no-ack", "after-huge"}, 10*time.Second)
	if len(missing) > 0 {
		t.Errorf("missing %v\n%s", missing, in.Logs())
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(in.Logs(), "connection closed in the middle of a message") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, want := range []string{"skipping a value that is not an event message", "connection closed in the middle of a message",
		"more than the file buffer reads back"} {
		if !strings.Contains(in.Logs(), want) {
			t.Errorf("not logged: %q\n%s", want, in.Logs())
		}
	}
	in.Stop()
	again := startSluiceIn(t, dir, conf)
	time.Sleep(300 * time.Millisecond)
	again.Stop()
	if strings.Contains(again.Logs(), "bad header") || strings.Contains(again.Logs(), "damaged") {
		t.Errorf("the restart found a chunk it cannot read\n%s", again.Logs())
	}
}

// readReply reads what the server sends until it pauses.
func readReply(c net.Conn) (string, error) {
	var out []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out = append(out, buf[:n]...)
		if len(out) > 0 {
			c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		}
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && len(out) > 0 {
				return string(out), nil
			}
			return string(out), err
		}
	}
}

// On the binary, with its buffer on a file system that fills (item 10):
// /readyz fails while the buffer cannot take events, and passes again once
// there is room, without a restart; events sent after are delivered.
func TestFullDiskReadinessOnTheBinary(t *testing.T) {
	small := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", small).CombinedOutput(); err != nil {
		t.Skipf("a small file system is needed (mount -t tmpfs, as root): %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", small).Run() })
	port, metrics := freePort(t), freePort(t)
	dir := t.TempDir()
	in := startSluiceIn(t, dir, edgeConf(port, metrics, filepath.Join(small, "buffer")))
	if code := readyz(metrics); code != 200 {
		t.Fatalf("/readyz %d at start", code)
	}
	ballast := filepath.Join(small, "ballast")
	f, _ := os.Create(ballast)
	for {
		if _, err := f.Write(make([]byte, 64<<10)); err != nil {
			break
		}
	}
	f.Close()
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	big := strings.Repeat("f", 200<<10)
	b := msgp.AppendArrayHeader(nil, 3)
	b = msgp.AppendString(b, "app.full")
	b = msgp.AppendInt64(b, time.Now().Unix())
	b = msgp.AppendMapHeader(b, 1)
	b = msgp.AppendString(msgp.AppendString(b, "log"), big)
	deadline := time.Now().Add(10 * time.Second)
	for readyz(metrics) == 200 && time.Now().Before(deadline) {
		c.Write(b)
		time.Sleep(50 * time.Millisecond)
	}
	if code := readyz(metrics); code != 503 {
		t.Fatalf("/readyz %d with the buffer's disk full, want 503\n%s", code, in.Logs())
	}
	os.Remove(ballast)
	deadline = time.Now().Add(10 * time.Second)
	for readyz(metrics) != 200 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if code := readyz(metrics); code != 200 {
		t.Errorf("/readyz %d after the disk had room again, want 200", code)
	}
	a, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	a.Write(ackedMessage("app.after", "after", "after-full"))
	missing, _ := countByID(t, filepath.Join(dir, "out", "events*"), []string{"after-full"}, 10*time.Second)
	if len(missing) > 0 {
		t.Errorf("an event after the disk recovered was not delivered\n%s", in.Logs())
	}
	in.Stop()
}
