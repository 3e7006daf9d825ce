package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// HTTPDrainGrace is how long an HTTP server that is told to stop lets the
// requests in progress finish (a request may be waiting for room in a
// buffer) before it closes their connections. It is well below <system>
// shutdown_timeout's default, so that the drain of the outputs that
// follows keeps most of the deadline.
const HTTPDrainGrace = 10 * time.Second

// ServeHTTP serves srv on ln (with TLS when srv.TLSConfig is set) until
// ctx is done, then stops accepting, lets the requests in progress finish
// for up to HTTPDrainGrace, and closes what is left. It returns once the
// server has stopped: nil after ctx, or the error that stopped it before.
func ServeHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() {
		var err error
		if srv.TLSConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		errc <- err
	}()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	grace, cancel := context.WithTimeout(context.Background(), HTTPDrainGrace)
	defer cancel()
	if err := srv.Shutdown(grace); err != nil {
		_ = srv.Close() // the grace passed: cut the requests still running
	}
	return <-errc
}

// HTTPServer is the server of an input's Run, kept so that the input's
// Close can end what a drain still waits for: the engine closes inputs
// after the shutdown deadline, which may come before HTTPDrainGrace.
type HTTPServer struct{ srv atomic.Pointer[http.Server] }

// Serve runs srv on ln with ServeHTTP.
func (h *HTTPServer) Serve(ctx context.Context, srv *http.Server, ln net.Listener) error {
	h.srv.Store(srv)
	return ServeHTTP(ctx, srv, ln)
}

// Close closes the server's listener and every connection at once.
func (h *HTTPServer) Close() {
	if srv := h.srv.Load(); srv != nil {
		_ = srv.Close()
	}
}
