// Package netin holds the inputs that take text over plain sockets:
// tcp, udp and syslog. They share one server: a TCP accept loop (plain
// or TLS) that frames each connection's bytes into messages, or one UDP
// socket whose datagrams are the messages; each message goes through the
// input's receive function (a parser, and for syslog the priority) into
// a batch that is emitted once per read.
//
// These protocols have no acknowledgement: what an output refuses, or
// what a shutdown cuts off mid-message, is counted and lost, as with
// Fluentd. A full buffer with overflow_action block stops the reading,
// and TCP's flow control then slows the senders; UDP senders are not
// slowed, and datagrams the socket cannot hold are dropped by the kernel
// (netstat -su "receive buffer errors"; receive_buffer_size raises the
// socket's share).
package netin

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluice-log/sluice/internal/budget"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/lograte"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// Stats are the counters every input of this package keeps.
type Stats struct {
	Connections      atomic.Int64 // open now
	ConnectionsTotal atomic.Int64
	Messages         atomic.Int64 // framed messages and datagrams
	Events           atomic.Int64 // accepted by the route
	Bytes            atomic.Int64 // message bytes
	Unmatched        atomic.Int64 // messages the parser did not match
	Oversized        atomic.Int64 // TCP messages dropped past message_length_limit
	Truncated        atomic.Int64 // datagrams cut at message_length_limit
	Incomplete       atomic.Int64 // partial messages dropped at shutdown
	FramingErrors    atomic.Int64 // connections closed: octet counting lost its place
	BufferFull       atomic.Int64 // connections closed waiting for receive_buffer_limit
	TLSFailures      atomic.Int64
	Refused          atomic.Int64 // events an output refused (no acks: lost)
}

func (s *Stats) measure(report plugin.Report) {
	report("connections", "TCP connections open now.", s.Connections.Load(), true)
	report("connections_total", "TCP connections accepted.", s.ConnectionsTotal.Load(), false)
	report("messages_total", "Messages received (TCP frames and UDP datagrams).", s.Messages.Load(), false)
	report("events_total", "Events emitted.", s.Events.Load(), false)
	report("bytes_total", "Message bytes received.", s.Bytes.Load(), false)
	report("unmatched_total", "Messages the parser did not match (emitted under TAG.unmatched with emit_unmatched_lines, else dropped).", s.Unmatched.Load(), false)
	report("oversized_total", "TCP messages dropped because they were longer than message_length_limit.", s.Oversized.Load(), false)
	report("truncated_total", "UDP datagrams longer than message_length_limit, kept cut at it.", s.Truncated.Load(), false)
	report("incomplete_total", "Partial messages a shutdown cut off, dropped.", s.Incomplete.Load(), false)
	report("framing_errors_total", "Connections closed because an octet-counted frame had no length.", s.FramingErrors.Load(), false)
	report("buffer_full_total", "Connections closed after waiting too long for receive_buffer_limit space that other connections held.", s.BufferFull.Load(), false)
	report("tls_failures_total", "TLS handshakes that failed.", s.TLSFailures.Load(), false)
	report("refused_total", "Events an output refused; these protocols have no acknowledgement, so they are lost.", s.Refused.Load(), false)
}

// receiver turns one message into events in w's batch.
type receiver func(w *worker, msg []byte)

// peer is where messages come from, in the form records carry it.
type peer struct {
	addr string // the IP address
	host string // reverse DNS, when source_hostname_key asks for it
}

// Bounds of the server.
const (
	// startBuffer is a connection's read buffer; it grows (within
	// receive_buffer_limit) only while a message longer than it arrives.
	startBuffer = 16 << 10
	// handshakeTimeout bounds a TLS handshake.
	handshakeTimeout = 10 * time.Second
	// maxBatchBytes is where a batch is emitted even before the read
	// that filled it has been handled.
	maxBatchBytes = 1 << 20
	// udpBatch is how many waiting datagrams are taken into one batch.
	udpBatch = 256
	// poolSize is how many connections may parse at once.
	poolSize = 8
	// maxPeers bounds the UDP sources whose names are remembered.
	maxPeers = 4096
)

// budgetPatience is how long a connection waits for its share of
// receive_buffer_limit before it is closed (a variable for tests).
var budgetPatience = 10 * time.Second

// server is the listener and the connections of one input.
type server struct {
	network     string // "tcp" or "udp"
	bind        string
	port        int
	transport   transport.Transport
	keepalive   bool
	frame       framer // each connection's starts as a copy
	limit       int    // datagram read size (udp)
	addressKey  string
	hostnameKey string
	rcvBuf      int // SO_RCVBUF of the UDP socket
	receive     receiver
	log         *slog.Logger

	workers     chan *worker
	budget      *budget.Bytes
	bufferLimit int64 // the budget's size
	tlsConfig   *tls.Config
	ln          net.Listener
	pc          *net.UDPConn
	bound       atomic.Pointer[string]
	conns       sync.WaitGroup
	active      transport.ConnSet
	rare        lograte.Limiter

	Stats Stats
}

// newWorkers fills the pool; newParser is called once per worker (parsers
// are not safe for concurrent use).
func (s *server) newWorkers(n int, newParser func() (plugin.Parser, error)) error {
	s.workers = make(chan *worker, n)
	for i := 0; i < n; i++ {
		p, err := newParser()
		if err != nil {
			return err
		}
		w := &worker{s: s, parser: p, batch: batch{byTag: map[string]*event.Builder{}}}
		w.onMessage = func(msg []byte) {
			s.Stats.Messages.Add(1)
			s.Stats.Bytes.Add(int64(len(msg)))
			s.receive(w, msg)
		}
		s.workers <- w
	}
	return nil
}

func (s *server) listen() error {
	addr := net.JoinHostPort(s.bind, strconv.Itoa(s.port))
	if s.network == "udp" {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return err
		}
		pc, err := net.ListenUDP("udp", ua)
		if err != nil {
			return err
		}
		if s.rcvBuf > 0 {
			if err := pc.SetReadBuffer(s.rcvBuf); err != nil {
				_ = pc.Close()
				return err
			}
		}
		s.pc = pc
		bound := pc.LocalAddr().String()
		s.bound.Store(&bound)
		return nil
	}
	cfg, err := s.transport.ServerConfig()
	if err != nil {
		return err
	}
	s.tlsConfig = cfg
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.ln = ln
	bound := ln.Addr().String()
	s.bound.Store(&bound)
	return nil
}

func (s *server) run(ctx context.Context, out plugin.Emitter) error {
	if s.network == "udp" {
		return s.readDatagrams(ctx, out)
	}
	stopped := make(chan struct{})
	go func() {
		<-ctx.Done()
		s.ln.Close()
		s.active.WakeAll()
		close(stopped)
	}()
	defer func() {
		s.conns.Wait()
		<-stopped
	}()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.track(nc, true)
		s.conns.Add(1)
		go func() {
			defer s.conns.Done()
			defer s.track(nc, false)
			s.serve(ctx, nc, out)
		}()
	}
}

func (s *server) track(nc net.Conn, open bool) {
	if open {
		s.active.Add(nc)
		s.Stats.Connections.Add(1)
		s.Stats.ConnectionsTotal.Add(1)
		return
	}
	s.active.Remove(nc)
	s.Stats.Connections.Add(-1)
}

// serve reads one connection until it ends or the input stops.
func (s *server) serve(ctx context.Context, raw net.Conn, out plugin.Emitter) {
	defer raw.Close()
	if tcp, ok := raw.(*net.TCPConn); ok && s.keepalive {
		_ = tcp.SetKeepAlive(true)
	}
	s.transport.Tune(raw, 0)
	var nc net.Conn = raw
	if s.tlsConfig != nil {
		tc := tls.Server(raw, s.tlsConfig)
		_ = tc.SetDeadline(time.Now().Add(handshakeTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			s.Stats.TLSFailures.Add(1)
			s.log.Warn("TLS handshake failed", "peer", raw.RemoteAddr().String(), "err", err)
			return
		}
		_ = tc.SetDeadline(time.Time{})
		nc = tc
	}
	src := &peer{}
	if a, ok := raw.RemoteAddr().(*net.TCPAddr); ok {
		src.addr = a.IP.String()
		if s.hostnameKey != "" {
			src.host = transport.LookupHostname(ctx, a.IP)
		}
	}
	held := int64(0)
	defer func() { s.budget.Release(held) }()
	if err := s.budget.Acquire(ctx, startBuffer, budgetPatience); err != nil {
		s.bufferFull(raw, err)
		return
	}
	held = startBuffer
	f := s.frame
	buf := make([]byte, 0, startBuffer)
	for {
		if len(buf) == cap(buf) {
			// Only a message still arriving fills the buffer; the framer
			// has dropped it by the time it passes f.pending().
			grow := min(2*cap(buf), f.pending()) - cap(buf)
			if err := s.budget.Acquire(ctx, int64(grow), budgetPatience); err != nil {
				s.bufferFull(raw, err)
				return
			}
			held += int64(grow)
			buf = append(make([]byte, 0, cap(buf)+grow), buf...)
		}
		n, err := nc.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if n > 0 {
			used, ferr := s.frames(ctx, out, &f, buf, src)
			buf = buf[:copy(buf, buf[used:])]
			if ferr != nil {
				s.Stats.FramingErrors.Add(1)
				s.log.Warn("closing a connection whose framing was lost", "peer", raw.RemoteAddr().String(), "err", ferr)
				return
			}
			if len(buf) <= startBuffer && cap(buf) > startBuffer {
				s.budget.Release(held - startBuffer)
				held = startBuffer
				buf = append(make([]byte, 0, startBuffer), buf...)
			}
		}
		if err != nil {
			s.ended(ctx, out, &f, buf, src, err)
			return
		}
	}
}

// frames hands every whole message in buf to the input and emits them;
// it returns how much of buf it used.
func (s *server) frames(ctx context.Context, out plugin.Emitter, f *framer, buf []byte, src *peer) (int, error) {
	w := <-s.workers
	defer func() { s.workers <- w }()
	w.src = src
	used, oversized, err := f.split(buf, w.onMessage)
	if oversized > 0 {
		s.Stats.Oversized.Add(int64(oversized))
		if s.rare.Allow() {
			s.log.Warn("dropped messages longer than message_length_limit", "peer", src.addr, "limit", f.limit, "count", oversized)
		}
	}
	w.batch.flush(ctx, out, s)
	return used, err
}

// ended handles what a connection left when it ended: a last message
// without its delimiter is a message if the client closed (as nc or a
// script sends one), and cut off if the input stopped.
func (s *server) ended(ctx context.Context, out plugin.Emitter, f *framer, rest []byte, src *peer, err error) {
	if len(rest) == 0 || f.skipping || f.skip > 0 {
		return
	}
	if errors.Is(err, io.EOF) && !f.octetCount {
		w := <-s.workers
		w.src = src
		w.onMessage(rest)
		w.batch.flush(ctx, out, s)
		s.workers <- w
		return
	}
	s.Stats.Incomplete.Add(1)
}

func (s *server) bufferFull(nc net.Conn, err error) {
	s.Stats.BufferFull.Add(1)
	s.log.Warn("closing a connection: receive_buffer_limit stayed held by other connections", "peer", nc.RemoteAddr().String(), "err", err)
}

// readDatagrams is the UDP server: one goroutine takes each datagram,
// and those already waiting, into one batch.
func (s *server) readDatagrams(ctx context.Context, out plugin.Emitter) error {
	stop := context.AfterFunc(ctx, func() { _ = s.pc.Close() })
	defer stop()
	w := <-s.workers
	defer func() { s.workers <- w }()
	buf := make([]byte, s.limit)
	peers := map[netip.Addr]*peer{}
	for {
		_ = s.pc.SetReadDeadline(time.Time{})
		for i := 0; i < udpBatch; i++ {
			n, _, flags, from, err := s.pc.ReadMsgUDPAddrPort(buf, nil)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break // nothing more waiting
				}
				w.batch.flush(ctx, out, s)
				if errors.Is(err, net.ErrClosed) {
					return nil
				}
				return err
			}
			if flags&syscall.MSG_TRUNC != 0 {
				s.Stats.Truncated.Add(1)
			}
			w.src = s.peerOf(ctx, peers, from.Addr())
			w.onMessage(buf[:n])
			if w.batch.size >= maxBatchBytes {
				break
			}
			_ = s.pc.SetReadDeadline(time.Now()) // take only what is waiting
		}
		w.batch.flush(ctx, out, s)
	}
}

func (s *server) peerOf(ctx context.Context, peers map[netip.Addr]*peer, a netip.Addr) *peer {
	a = a.Unmap()
	if p, ok := peers[a]; ok {
		return p
	}
	if len(peers) >= maxPeers {
		clear(peers)
	}
	p := &peer{addr: a.String()}
	if s.hostnameKey != "" {
		p.host = transport.LookupHostname(ctx, a.AsSlice())
	}
	peers[a] = p
	return p
}

func (s *server) close() {
	if s.ln != nil {
		s.ln.Close()
	}
	if s.pc != nil {
		_ = s.pc.Close()
	}
}

// boundAddr is the listener's address once bound, "" before.
func (s *server) boundAddr() string {
	if a := s.bound.Load(); a != nil {
		return *a
	}
	return ""
}

// worker is what one read's messages are parsed with.
type worker struct {
	s         *server
	parser    plugin.Parser
	batch     batch
	src       *peer
	record    []byte // a record with the source fields added
	line      []byte // an unmatched line's record
	kv        []string
	onMessage func(msg []byte)
}

// add puts one parsed record into the batch under tag, with the source
// fields and extra (key, value, ...) set.
func (w *worker) add(tag string, t event.Time, rec []byte, extra ...string) {
	if t == 0 {
		t = event.Now()
	}
	kv := append(w.kv[:0], extra...)
	if w.s.addressKey != "" {
		kv = append(kv, w.s.addressKey, w.src.addr)
	}
	if w.s.hostnameKey != "" {
		kv = append(kv, w.s.hostnameKey, w.src.host)
	}
	w.kv = kv
	if len(kv) > 0 {
		var err error
		if w.record, err = event.AppendRecordFields(w.record[:0], rec, kv...); err != nil {
			w.s.Stats.Unmatched.Add(1)
			return
		}
		rec = w.record
	}
	w.batch.add(tag, t, rec)
}

// unmatched counts a message the parser did not take, and logs some.
func (w *worker) unmatched(msg []byte, err error) {
	w.s.Stats.Unmatched.Add(1)
	if w.s.rare.Allow() {
		w.s.log.Warn("message not matched by the parser", "peer", w.src.addr, "message", string(head(msg)), "err", err)
	}
}

// batch gathers one read's events by tag.
type batch struct {
	order []string
	byTag map[string]*event.Builder
	size  int
}

func (b *batch) add(tag string, t event.Time, rec []byte) {
	bl := b.byTag[tag]
	if bl == nil {
		bl = &event.Builder{}
		b.byTag[tag] = bl
	}
	if bl.Len() == 0 {
		b.order = append(b.order, tag)
	}
	before := len(bl.Bytes())
	bl.Append(t, rec)
	b.size += len(bl.Bytes()) - before
}

// flush emits what the batch holds, tag by tag, and empties it.
func (b *batch) flush(ctx context.Context, out plugin.Emitter, s *server) {
	for _, tag := range b.order {
		bl := b.byTag[tag]
		n := bl.Len()
		if err := out.Emit(ctx, bl.Stream(tag)); err != nil {
			s.Stats.Refused.Add(int64(n))
			if s.rare.Allow() {
				s.log.Warn("events not accepted; this protocol has no acknowledgement, so they are lost", "tag", tag, "records", n, "err", err)
			}
		} else {
			s.Stats.Events.Add(int64(n))
		}
		bl.Reset()
		if cap(bl.Bytes()) > maxBatchBytes || len(b.byTag) > 256 {
			delete(b.byTag, tag) // a large builder is not kept for ever
		}
	}
	b.order, b.size = b.order[:0], 0
}
