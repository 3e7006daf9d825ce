package transport

import (
	"context"
	"errors"
	"net"
	"net/http"
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
