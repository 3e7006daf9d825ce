package httpio

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/sluice-log/sluice/internal/transport"
)

// headerTimeout bounds the wait for a request's headers, as net/http's
// ReadHeaderTimeout did: a client that trickles its headers holds its
// connection for this long at most. request_timeout then covers the body.
const headerTimeout = 10 * time.Second

// server is in_http's HTTP/1.1 server. It is fasthttp rather than
// net/http because net/http alone costs 14–16 µs of CPU per request on
// two cores (docs/benchmarks.md), more than the whole budget seed 002's
// one-event-per-request load allows; fasthttp costs about half.
//
// Sluice runs the accept loop and serves each connection with ServeConn,
// rather than fasthttp's Serve: its worker pool keeps a goroutine for up
// to ten seconds after a stop, and its shutdown cannot cut a request
// that the engine's deadline has passed. The connSet does both.
type server struct {
	srv     *fasthttp.Server
	conns   *connSet
	serving sync.WaitGroup // a goroutine per connection
}

// newServer builds the server; handler serves every request.
func (in *Input) newServer(handler fasthttp.RequestHandler) *server {
	s := &server{conns: in.conns}
	s.srv = &fasthttp.Server{
		Handler: handler,
		// After the headers, the body has request_timeout from then.
		HeaderReceived: func(*fasthttp.RequestHeader) fasthttp.RequestConfig {
			return fasthttp.RequestConfig{ReadTimeout: in.RequestTimeout, MaxRequestBodySize: int(in.BodySizeLimit)}
		},
		ConnState:    s.conns.setState,
		ReadTimeout:  min(headerTimeout, in.RequestTimeout),
		WriteTimeout: in.RequestTimeout,
		IdleTimeout:  in.KeepaliveTimeout,
		// The read buffer is also the largest header block fasthttp reads.
		ReadBufferSize:     int(in.MaxHeaderSize),
		MaxRequestBodySize: int(in.BodySizeLimit),
		// A streamed body is read by the handler, within body_buffer_limit
		// shared by all connections; fasthttp itself reads at most 8 KiB of
		// it ahead, per connection.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		// Idle keep-alive connections give their buffers back.
		ReduceMemoryUsage:     true,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		Logger:                slog.NewLogLogger(in.log.Handler(), slog.LevelDebug),
	}
	return s
}

// serve serves ln (TLS when tlsConfig is set) until ctx is done, then
// stops accepting, closes idle keep-alive connections, lets the requests
// in progress finish for up to transport.HTTPDrainGrace (answering each
// with Connection: close), and closes what is left. It returns once no
// connection is served any more.
func (s *server) serve(ctx context.Context, ln net.Listener, tlsConfig *tls.Config) error {
	accepted := make(chan error, 1)
	go func() { accepted <- s.accept(ln, tlsConfig) }()
	select {
	case err := <-accepted:
		s.conns.closeAll()
		s.wait(connWaitLimit)
		return err
	case <-ctx.Done():
	}
	_ = ln.Close()
	_ = <-accepted // nil: the loop ends when the listener closes
	s.conns.draining.Store(true)
	grace := time.Now().Add(transport.HTTPDrainGrace)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for s.conns.closeWhere(func(tc *trackedConn) bool { return tc.idle() || tc.silent() }) > 0 {
		if time.Now().After(grace) {
			s.conns.closeAll() // the grace passed: cut the requests still running
			break
		}
		<-tick.C
	}
	s.wait(connWaitLimit)
	return nil
}

// connWaitLimit bounds how long serve waits for the goroutines of the
// connections it closed: a handler blocked in an emit ends on its own
// context, so this is only a backstop.
const connWaitLimit = 5 * time.Second

// wait waits up to limit for every connection's goroutine to end.
func (s *server) wait(limit time.Duration) {
	done := make(chan struct{})
	go func() { s.serving.Wait(); close(done) }()
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
}

// accept serves every connection ln accepts until ln is closed.
func (s *server) accept(ln net.Listener, tlsConfig *tls.Config) error {
	var pause time.Duration
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return nil
		}
		if err != nil {
			// Out of file descriptors, say: wait and try again, as
			// net/http does, rather than stop serving.
			pause = min(max(2*pause, 5*time.Millisecond), time.Second)
			time.Sleep(pause)
			continue
		}
		pause = 0
		if tlsConfig != nil {
			c = tls.Server(c, tlsConfig)
		}
		s.serving.Add(1)
		go func() {
			defer s.serving.Done()
			_ = s.srv.ServeConn(c)
		}()
	}
}

// connSet tracks the connections open: how many, which are idle, and
// closes them when told.
type connSet struct {
	mu       sync.Mutex
	open     map[*trackedConn]struct{}
	count    *atomic.Int64
	draining atomic.Bool
}

func newConnSet(count *atomic.Int64) *connSet {
	return &connSet{open: map[*trackedConn]struct{}{}, count: count}
}

func (s *connSet) add(c net.Conn) *trackedConn {
	tc := &trackedConn{Conn: c, set: s, accepted: time.Now()}
	s.mu.Lock()
	s.open[tc] = struct{}{}
	s.mu.Unlock()
	s.count.Add(1)
	return tc
}

func (s *connSet) remove(tc *trackedConn) {
	s.mu.Lock()
	delete(s.open, tc)
	s.mu.Unlock()
	s.count.Add(-1)
}

// setState is fasthttp's ConnState hook. A connection that goes idle
// while the server drains is closed: its request has been answered.
func (s *connSet) setState(c net.Conn, state fasthttp.ConnState) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tc, ok := c.(*trackedConn)
	if !ok {
		return
	}
	tc.state.Store(int32(state))
	if state == fasthttp.StateIdle && s.draining.Load() {
		_ = tc.Close()
	}
}

// idleGrace is how long a drain waits for a new connection that has sent
// nothing yet, as net/http's Shutdown does.
const idleGrace = 5 * time.Second

// closeAll closes every open connection; the goroutines serving them end
// at their next read or write.
func (s *connSet) closeAll() { s.closeWhere(func(*trackedConn) bool { return true }) }

// closeWhere closes the connections cut says to, and returns how many
// remain open.
func (s *connSet) closeWhere(cut func(*trackedConn) bool) int {
	s.mu.Lock()
	var conns []*trackedConn
	for c := range s.open {
		if cut(c) {
			conns = append(conns, c)
		}
	}
	remaining := len(s.open) - len(conns)
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return remaining
}

type trackedConn struct {
	net.Conn
	set      *connSet
	accepted time.Time
	state    atomic.Int32 // a fasthttp.ConnState; StateNew until the first byte
	closed   atomic.Bool
}

func (c *trackedConn) idle() bool {
	return fasthttp.ConnState(c.state.Load()) == fasthttp.StateIdle
}

// silent: a connection that has not sent its first byte in idleGrace.
func (c *trackedConn) silent() bool {
	return fasthttp.ConnState(c.state.Load()) == fasthttp.StateNew && time.Since(c.accepted) > idleGrace
}

func (c *trackedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.set.remove(c)
	}
	return c.Conn.Close()
}

// limitListener refuses connections past max_connections and tracks the
// ones it accepts.
type limitListener struct {
	net.Listener
	in *Input
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.in.MaxConnections > 0 && l.in.Stats.Connections.Load() >= int64(l.in.MaxConnections) {
			l.in.Stats.Overloaded.Add(1)
			c.Close()
			continue
		}
		l.in.transport.Tune(c, 0)
		return l.in.conns.add(c), nil
	}
}
