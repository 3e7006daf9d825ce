//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"
)

// peakRSS is the most memory process pid has held (the kernel's VmHWM).
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// The bound the soak below holds Sluice to, term by term as
// docs/operations.md gives it for any configuration.
const (
	soakReceiveBuffer = 32 << 20 // in_forward receive_buffer_limit
	soakChunkSize     = 16 << 20 // in_forward chunk_size_limit
	soakDecompressed  = 64 << 20 // in_forward max_decompressed_size
	soakBodyBuffer    = 64 << 20 // in_http body_buffer_limit
	soakBodySize      = 32 << 20 // in_http body_size_limit
	soakTotalLimit    = 64 << 20 // the memory buffer's total_limit_size, and the file buffer's memory_cache_size
	soakOverhead      = 160 << 20

	soakBound = max(soakReceiveBuffer, soakChunkSize+soakDecompressed) + max(soakBodyBuffer, 2*soakBodySize) +
		2*soakTotalLimit + soakOverhead
)

func adversarialConf(fwdPort, httpPort int) string {
	return fmt.Sprintf(`
<system>
  root_dir {{DIR}}/root
  shutdown_timeout 10s
</system>
<source>
  @type forward
  bind 127.0.0.1
  port %d
  receive_buffer_limit %d
  chunk_size_limit %d
  max_decompressed_size %d
</source>
<source>
  @type http
  bind 127.0.0.1
  port %d
  body_size_limit %d
  body_buffer_limit %d
</source>
<match good.**>
  @type file
  path {{DIR}}/out/good
  append true
  <format>
    @type json
  </format>
  <buffer tag>
    @type file
    path {{DIR}}/buffer-good
    flush_interval 0.3
    chunk_limit_size 8m
    total_limit_size %d
  </buffer>
</match>
<match **>
  @type file
  @id hostile_out
  path {{DIR}}/out/hostile/${tag}
  <format>
    @type json
  </format>
  <buffer tag>
    flush_interval 0.3
    retry_wait 0.1
    total_limit_size %d
  </buffer>
</match>
`, fwdPort, soakReceiveBuffer, soakChunkSize, soakDecompressed, httpPort, soakBodySize, soakBodyBuffer, soakTotalLimit, soakTotalLimit)
}

// partialMessage is the first half of a Message-mode message whose record
// holds a string of size bytes: it never finishes.
func partialMessage(size int) []byte {
	b := msgp.AppendArrayHeader(nil, 3)
	b = msgp.AppendString(b, "held")
	b = msgp.AppendInt64(b, time.Now().Unix())
	b = append(b, 0x81, 0xa3, 'l', 'o', 'g', 0xdb, byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
	return append(b, bytes.Repeat([]byte{'x'}, size/2)...)
}

// gzipOf compresses n zero bytes: a bomb of n bytes once inflated.
func gzipOf(n int) []byte {
	var z bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&z, gzip.BestCompression)
	zeros := make([]byte, 1<<20)
	for ; n > 0; n -= len(zeros) {
		zw.Write(zeros[:min(n, len(zeros))])
	}
	zw.Close()
	return z.Bytes()
}

// Every attack of issue 17 at once (escaping and over-long tags, silent
// partial holders, slowloris, gzip bombs over forward and http, a large
// message arriving slowly) against a well-behaved client with acks: its
// events all arrive exactly once, Sluice stays within the memory its
// configuration allows, and it stops cleanly. Bounded: about 30 s.
func TestAdversarialSoak(t *testing.T) {
	fwdPort, httpPort := freePort(t), freePort(t)
	base := t.TempDir()
	dir := filepath.Join(base, "sluice")
	os.Mkdir(dir, 0o755)
	in := startSluiceIn(t, dir, adversarialConf(fwdPort, httpPort))
	addr := fmt.Sprintf("127.0.0.1:%d", fwdPort)
	stop := make(chan struct{})
	var attacks sync.WaitGroup
	// SOAK_ATTACK=name runs only that attack, to measure its cost alone
	// (docs/operations.md has the figures).
	only := os.Getenv("SOAK_ATTACK")
	attack := func(name string, f func()) {
		if only != "" && only != name {
			return
		}
		attacks.Add(1)
		go func() {
			defer attacks.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				f()
			}
		}()
	}
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			time.Sleep(100 * time.Millisecond)
			return nil
		}
		return c
	}
	// 1, 2: names that would escape the output's directory or that no
	// file system takes.
	attack("names", func() {
		for _, tag := range []string{"../../escaped", strings.Repeat("t", 300), "nul\x00tag", "x/../../../escaped2"} {
			if c := dial(); c != nil {
				msg := msgp.AppendArrayHeader(nil, 3)
				msg = msgp.AppendString(msg, tag)
				msg = msgp.AppendInt64(msg, time.Now().Unix())
				msg = append(msg, 0x81, 0xa1, 'k', 0xa1, 'v')
				c.Write(msg)
				c.Close()
			}
		}
		time.Sleep(200 * time.Millisecond)
	})
	// 3: two clients that send most of a 12 MiB message and go silent,
	// and slowloris clients at a byte a second.
	for i := 0; i < 2; i++ {
		attack("holder", func() {
			if c := dial(); c != nil {
				c.Write(partialMessage(12 << 20))
				select {
				case <-stop:
				case <-time.After(20 * time.Second):
				}
				c.Close()
			}
		})
	}
	for i := 0; i < 4; i++ {
		attack("slowloris", func() {
			if c := dial(); c != nil {
				head := partialMessage(1 << 20)[:64]
				for _, b := range head {
					if _, err := c.Write([]byte{b}); err != nil {
						break
					}
					select {
					case <-stop:
						c.Close()
						return
					case <-time.After(time.Second):
					}
				}
				c.Close()
			}
		})
	}
	// 4: gzip bombs over forward, 8 at once.
	bomb := gzipOf(60 << 20)
	for i := 0; i < 8; i++ {
		attack("forward bomb", func() {
			if c := dial(); c != nil {
				msg := msgp.AppendArrayHeader(nil, 3)
				msg = msgp.AppendString(msg, "bomb")
				msg = msgp.AppendBytes(msg, bomb)
				msg = msgp.AppendMapHeader(msg, 1)
				msg = msgp.AppendString(msgp.AppendString(msg, "compressed"), "gzip")
				c.SetDeadline(time.Now().Add(40 * time.Second))
				c.Write(msg)
				c.Read(make([]byte, 1))
				c.Close()
			}
		})
	}
	// 5: gzip bombs over http, 8 at once.
	httpBomb := gzipOf(30 << 20)
	client := &http.Client{Timeout: 40 * time.Second}
	for i := 0; i < 8; i++ {
		attack("http bomb", func() {
			req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d/bomb", httpPort), bytes.NewReader(httpBomb))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Content-Encoding", "gzip")
			if resp, err := client.Do(req); err == nil {
				resp.Body.Close()
			} else {
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	// 6: a large Forward-mode message arriving at 0.5 MB/s.
	attack("slow large message", func() {
		c := dial()
		if c == nil {
			return
		}
		defer c.Close()
		rec := []byte{0x81, 0xa3, 'l', 'o', 'g', 0xd9, 100}
		rec = append(rec, bytes.Repeat([]byte{'s'}, 100)...)
		var entries []byte
		n := 0
		for ; len(entries) < 8<<20; n++ {
			entries = msgp.AppendArrayHeader(entries, 2)
			entries = msgp.AppendInt64(entries, time.Now().Unix())
			entries = append(entries, rec...)
		}
		msg := msgp.AppendArrayHeader(nil, 2)
		msg = msgp.AppendString(msg, "slow.large")
		msg = msgp.AppendArrayHeader(msg, uint32(n))
		msg = append(msg, entries...)
		for len(msg) > 0 {
			step := min(len(msg), 50<<10)
			if _, err := c.Write(msg[:step]); err != nil {
				return
			}
			msg = msg[step:]
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})

	// The well-behaved client, with acks.
	logger, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: fwdPort, RequestAck: true,
		Timeout: 30 * time.Second, WriteTimeout: 30 * time.Second, MaxRetry: 20})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < 3000 && time.Now().Before(deadline); i++ {
		id := fmt.Sprintf("good-%d", i)
		if err := logger.Post("good.app", map[string]string{"id": id, "log": "well behaved"}); err != nil {
			t.Errorf("the well-behaved client's event %d was refused: %v", i, err)
			break
		}
		want = append(want, id)
		if i%100 == 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	logger.Close()
	close(stop)
	attacks.Wait()
	peak := peakRSS(t, in.cmd.Process.Pid)
	missing, dups := countByID(t, filepath.Join(dir, "out", "good.*"), want, 30*time.Second)
	in.Stop()
	t.Logf("well-behaved events %d: missing %d, duplicated %d; peak RSS %d MiB (bound %d MiB)", len(want), len(missing), len(dups), peak>>20, soakBound>>20)
	if len(want) < 1000 {
		t.Errorf("only %d events from the well-behaved client in 20 s", len(want))
	}
	if len(missing) > 0 || len(dups) > 0 {
		t.Errorf("missing %v, duplicated %v", first3(missing), first3(dups))
	}
	if peak > soakBound {
		t.Errorf("peak RSS %d MiB over the bound of %d MiB", peak>>20, soakBound>>20)
	}
	_ = filepath.WalkDir(base, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), "escaped") {
			t.Errorf("an attack's name created %s", p)
		}
		return nil
	})
}
