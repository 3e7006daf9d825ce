package transport

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestServeHTTPFinishesRequestsInProgress: once ctx is done the server
// stops, after the request it was serving has had its answer; and a
// listener that fails ends it with that error.
func TestServeHTTPFinishesRequestsInProgress(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	})}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ServeHTTP(ctx, srv, ln) }()
	answer := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String())
		if err != nil {
			answer <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answer <- string(b)
	}()
	<-started
	cancel()
	select {
	case err := <-served:
		t.Fatalf("stopped with a request in progress: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if got := <-answer; got != "done" {
		t.Errorf("the request in progress got %q", got)
	}
	if err := <-served; err != nil {
		t.Errorf("ServeHTTP after ctx: %v", err)
	}

	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	ln2.Close()
	if err := ServeHTTP(context.Background(), &http.Server{}, ln2); err == nil {
		t.Error("a closed listener did not end ServeHTTP with an error")
	}
}
