//go:build integration

package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// fileBufferedConf takes events over forward and writes them as JSON lines
// under {{DIR}}/out through a file buffer in {{DIR}}/buffer.
func fileBufferedConf(port int, flushInterval string) string {
	return fmt.Sprintf(`
<system>
  shutdown_timeout 10s
</system>
<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
<match **>
  @type file
  path {{DIR}}/out/${tag}/events
  append true
  <format>
    @type json
  </format>
  <buffer tag,time>
    @type file
    path {{DIR}}/buffer
    timekey 1d
    timekey_wait 0
    flush_mode interval
    flush_interval %s
    fsync never
  </buffer>
</match>
`, port, flushInterval)
}

// TestSIGKILLWithFileBufferLosesNothingAcknowledged: fluent-logger-golang
// with RequestAck (Docker's driver with fluentd-request-ack) sends while
// Sluice is killed with SIGKILL; after a restart on the same buffer, every
// event Sluice acknowledged is delivered.
func TestSIGKILLWithFileBufferLosesNothingAcknowledged(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	conf := fileBufferedConf(port, "5s") // long: the kill finds data in the buffer
	first := startSluiceIn(t, dir, conf)

	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port, RequestAck: true,
		// One quick retry: a post after the kill fails fast (0 means "the
		// default", 13 retries with backoff).
		Timeout: time.Second, MaxRetry: 1, RetryWait: 10, MaxRetryWait: 10})
	if err != nil {
		t.Fatal(err)
	}
	var acked []string
	killed := false
	for i := 0; i < 5000 && !killed; i++ {
		if i == 2000 {
			first.Kill()
			killed = true
		}
		id := fmt.Sprintf("kill-%d", i)
		if err := logger.Post("app.kill", map[string]string{"id": id, "log": "survives SIGKILL"}); err == nil {
			acked = append(acked, id)
		}
	}
	logger.Close()
	if len(acked) < 2000 {
		t.Fatalf("only %d events acknowledged before the kill", len(acked))
	}
	chunks, _ := filepath.Glob(filepath.Join(dir, "buffer", "sluice.[bq]*.chunk"))
	if len(chunks) == 0 {
		t.Fatal("no buffer chunks on disk after SIGKILL: the test did not exercise recovery")
	}

	second := startSluiceIn(t, dir, fileBufferedConf(port, "0.2"))
	missing, dups := countByID(t, filepath.Join(dir, "out", "app.kill", "*.log"), acked, 20*time.Second)
	second.Stop()
	t.Logf("acknowledged %d before SIGKILL; after restart missing %d, duplicated %d", len(acked), len(missing), len(dups))
	if len(missing) > 0 {
		t.Errorf("%d acknowledged events lost (first %v)\n%s", len(missing), first3(missing), second.Logs())
	}
}

func first3(s []string) []string {
	if len(s) > 3 {
		return s[:3]
	}
	return s
}

// TestDestinationDownDataWaitsOnDisk: the next hop is down; events wait in
// the file buffer and arrive in full, once each, when it comes up.
func TestDestinationDownDataWaitsOnDisk(t *testing.T) {
	inPort, hopPort := freePort(t), freePort(t)
	relay := startSluice(t, fmt.Sprintf(`
<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
<match **>
  @type forward
  require_ack_response true
  ack_response_timeout 2
  recover_wait 0.2
  connect_timeout 1
  <server>
    host 127.0.0.1
    port %d
  </server>
  <buffer tag>
    @type file
    path {{DIR}}/buffer
    flush_interval 0.2
    retry_wait 0.2
    retry_max_interval 0.5
    retry_forever true
  </buffer>
</match>
`, inPort, hopPort))
	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: inPort, RequestAck: true})
	if err != nil {
		t.Fatal(err)
	}
	want := ids("down", 1000)
	for _, id := range want {
		if err := logger.Post("app.down", map[string]string{"id": id}); err != nil {
			t.Fatal(err)
		}
	}
	logger.Close()
	time.Sleep(time.Second) // several failed flushes
	chunks, _ := filepath.Glob(filepath.Join(relay.Dir, "buffer", "sluice.[bq]*.chunk"))
	if len(chunks) == 0 {
		t.Fatal("nothing waiting on disk while the destination is down")
	}
	hop := startSluice(t, fileSinkConf(hopPort, ""))
	requireAllOnce(t, hop, "app.down", want)
	relay.Stop()
	hop.Stop()
}

// One flipped byte in the middle of a file-buffer chunk costs only the
// frame it is in: after a SIGKILL and the damage, the restart delivers
// every other acknowledged event, moves the damaged bytes to the backup
// directory and logs them (it used to cut off every record after the
// byte, uncounted).
func TestFlippedByteCostsOnlyItsFrame(t *testing.T) {
	port := freePort(t)
	dir := t.TempDir()
	first := startSluiceIn(t, dir, fileBufferedConf(port, "1h"))
	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: port, RequestAck: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var acked []string
	for i := 0; i < 200; i++ {
		id := fmt.Sprintf("flip-%d", i)
		if err := logger.Post("app.flip", map[string]string{"id": id, "log": "one frame each"}); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, id)
	}
	logger.Close()
	first.Kill()
	chunks, _ := filepath.Glob(filepath.Join(dir, "buffer", "sluice.b*.chunk"))
	if len(chunks) != 1 {
		t.Fatalf("chunk files %v, want one", chunks)
	}
	data, err := os.ReadFile(chunks[0])
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0x10
	if err := os.WriteFile(chunks[0], data, 0o644); err != nil {
		t.Fatal(err)
	}
	second := startSluiceIn(t, dir, fileBufferedConf(port, "0.2"))
	missing, dups := countByID(t, filepath.Join(dir, "out", "app.flip", "*.log"), acked, 10*time.Second)
	second.Stop()
	if len(missing) > 1 || len(dups) > 0 {
		t.Errorf("after one flipped byte: %d acknowledged events missing (want at most the one of its frame), %d duplicated",
			len(missing), len(dups))
	}
	if damaged, _ := filepath.Glob(filepath.Join(dir, "buffer", "backup", "*.damaged-*.bin")); len(damaged) != 1 {
		t.Errorf("damaged bytes in the backup directory: %v, want one file", damaged)
	}
	if !strings.Contains(second.Logs(), "damaged") {
		t.Errorf("the damage is not logged\n%s", second.Logs())
	}
}
