package httpio_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/plugins/httpio"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// TestStopFinishesRequestsAndClosesIdleConnections: when the input stops,
// a request whose body is still arriving is read, emitted and answered
// (with Connection: close), and an idle keep-alive connection is closed
// at once rather than at keepalive_timeout.
func TestStopFinishesRequestsAndClosesIdleConnections(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, source("keepalive_timeout 60")+captureAll)
	stop := plugintest.Start(t, e)
	in := e.Inputs()[0].(*httpio.Input)
	var addr string
	plugintest.WaitFor(t, "the listener", func() bool { addr = in.BoundAddr(); return addr != "" })

	idle, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer idle.Close()
	idleReader := bufio.NewReader(idle)
	fmt.Fprintf(idle, "POST /idle HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"k\":1}")
	resp, err := http.ReadResponse(idleReader, nil)
	plugintest.Must(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("idle connection's request: %d", resp.StatusCode)
	}

	// fasthttp reads the first 8 KiB of a body before the handler runs:
	// this one is longer, and its end is sent only after the stop.
	late := strings.Repeat("x", 20<<10)
	body := `{"k":"` + late + `"}`
	busy, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer busy.Close()
	fmt.Fprintf(busy, "POST /busy HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:10<<10])
	plugintest.WaitFor(t, "the busy request to be read", func() bool { return in.BodyBufferUsed() > 0 })

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()

	// The idle connection is closed by the drain.
	_ = idle.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, err := idleReader.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("the idle keep-alive connection was not closed by the drain (read %d, %v)", n, err)
	}
	// The busy request completes.
	_, err = busy.Write([]byte(body[10<<10:]))
	plugintest.Must(t, err)
	_ = busy.SetReadDeadline(time.Now().Add(3 * time.Second))
	resp, err = http.ReadResponse(bufio.NewReader(busy), nil)
	if err != nil {
		t.Fatalf("the request in progress got no answer: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || !resp.Close {
		t.Errorf("request in progress: status %d, Connection: close %v", resp.StatusCode, resp.Close)
	}
	<-stopped
	var emitted int
	for _, ev := range plugintest.Captured("http") {
		if ev.Tag == "busy" && ev.Record["k"] == late {
			emitted++
		}
	}
	if emitted != 1 {
		t.Errorf("the request finished during the drain was emitted %d times", emitted)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestStreamedBodyHoldsBudgetBeforeItArrives: a body is reserved from
// body_buffer_limit by its Content-Length once fasthttp has read its first
// 8 KiB, before the rest: many slow uploads cannot together take more than
// the limit.
func TestStreamedBodyHoldsBudgetBeforeItArrives(t *testing.T) {
	_, in, base := start(t, source("body_size_limit 1m\nbody_buffer_limit 1m")+captureAll)
	addr := strings.TrimPrefix(base, "http://")
	slow, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer slow.Close()
	fmt.Fprintf(slow, "POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"k\":\"%s", 1<<20, strings.Repeat("y", 10<<10))
	plugintest.WaitFor(t, "the slow body's reservation", func() bool { return in.BodyBufferUsed() == 1<<20 })
	// A small request needs no reservation beyond what fasthttp read ahead
	// and is not held up.
	if resp := post(t, base+"/small", "application/json", []byte(`{"k":1}`)); resp.StatusCode != 200 {
		t.Errorf("a small request behind a slow large one: %d", resp.StatusCode)
	}
	slow.Close()
	plugintest.WaitFor(t, "the slow body's reservation to be given back", func() bool { return in.BodyBufferUsed() == 0 })
}

// TestMaxConnectionsAcrossClients: past max_connections, a new connection
// is closed and counted, whoever opens it.
func TestMaxConnectionsAcrossClients(t *testing.T) {
	_, in, base := start(t, source("max_connections 2\nkeepalive_timeout 60")+captureAll)
	addr := strings.TrimPrefix(base, "http://")
	http.DefaultTransport.(*http.Transport).CloseIdleConnections() // start's probe
	plugintest.WaitFor(t, "the readiness probe's connection to close", func() bool { return in.Stats.Connections.Load() == 0 })
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		plugintest.Must(t, err)
		defer c.Close()
		held = append(held, c)
	}
	plugintest.WaitFor(t, "two connections", func() bool { return in.Stats.Connections.Load() == 2 })
	third, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer third.Close()
	_ = third.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := third.Read(make([]byte, 1)); err == nil || isTimeout(err) {
		t.Fatalf("a third connection was served past max_connections 2: %v", err)
	}
	if in.Stats.Overloaded.Load() != 1 {
		t.Errorf("refused connections counted %d, want 1", in.Stats.Overloaded.Load())
	}
	held[0].Close()
	plugintest.WaitFor(t, "a slot to free", func() bool { return in.Stats.Connections.Load() == 1 })
	if resp := post(t, base+"/again", "application/json", []byte(`{"k":1}`)); resp.StatusCode != 200 {
		t.Errorf("after a slot freed: %d", resp.StatusCode)
	}
}

// TestCurlExpectContinueAndChunked: curl sends Expect: 100-continue for a
// body over 1 KiB, and chunked transfer encoding when told; both bodies
// arrive whole.
func TestCurlExpectContinueAndChunked(t *testing.T) {
	_, _, base := start(t, source("")+captureAll)
	big := `{"k":"` + strings.Repeat("x", 4000) + `"}`
	file := filepath.Join(t.TempDir(), "body.json")
	plugintest.Must(t, os.WriteFile(file, []byte(big), 0o600))
	if code, out := curl(t, "-H", "Content-Type: application/json", "--data-binary", "@"+file, base+"/expect"); code != 200 {
		t.Fatalf("Expect: 100-continue body: %d %s", code, out)
	}
	if code, out := curl(t, "-H", "Content-Type: application/json", "-H", "Transfer-Encoding: chunked", "--data-binary", "@"+file, base+"/chunked"); code != 200 {
		t.Fatalf("chunked body: %d %s", code, out)
	}
	got := plugintest.Captured("http")
	if len(got) != 2 || got[0].Record["k"] != strings.Repeat("x", 4000) || got[1].Record["k"] != strings.Repeat("x", 4000) {
		t.Fatalf("captured %d events", len(got))
	}
}

// TestPipelinedRequests: requests sent back to back on one connection
// before any answer are each answered, in order.
func TestPipelinedRequests(t *testing.T) {
	_, _, base := start(t, source("")+captureAll)
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	plugintest.Must(t, err)
	defer c.Close()
	var batch bytes.Buffer
	for i := range 3 {
		b := fmt.Sprintf(`{"n":%d}`, i)
		fmt.Fprintf(&batch, "POST /pipe HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(b), b)
	}
	_, err = c.Write(batch.Bytes())
	plugintest.Must(t, err)
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := range 3 {
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("answer %d: %d", i, resp.StatusCode)
		}
	}
	if n := len(plugintest.Captured("http")); n != 3 {
		t.Errorf("captured %d events, want 3", n)
	}
}
