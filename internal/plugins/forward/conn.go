package forward

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net"
	"time"

	"github.com/sluice-log/sluice/internal/budget"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
	"github.com/tinylib/msgp/msgp"
)

const (
	// minBuffer is a connection's read buffer while messages are small;
	// it grows for a large message and shrinks back once that is handled.
	minBuffer = 16 << 10
	// shrinkAbove is the capacity past which an empty buffer is released.
	shrinkAbove = 1 << 20
	// writeTimeout bounds a write of HELO, PONG or an ack to a client
	// that does not read.
	writeTimeout = 10 * time.Second
	// maxTags bounds a connection's cache of tag strings.
	maxTags = 256
)

// Variables, not constants, only so that tests can shorten them.
var (
	// budgetPatience is how long a connection waits for buffer space
	// before it is closed.
	budgetPatience = 30 * time.Second
	// A message that has begun must keep coming (slowloris): a partial
	// message silent for partialIdle, or arriving slower than
	// slowMessageRate once slowMessageGrace has passed, closes the
	// connection. Both are well below budgetPatience, so that connections
	// holding buffer space without sending free it before the others
	// give up waiting for it.
	partialIdle      = 10 * time.Second
	slowMessageGrace = 10 * time.Second
	slowMessageRate  = float64(64 << 10) // bytes per second
)

// conn is one client connection. Only its own goroutine touches it.
type conn struct {
	in       *Input
	raw      net.Conn // the accepted TCP connection
	nc       net.Conn // raw, or the TLS connection over it
	peer     string
	ip       net.IP
	hostname string
	auth     *serverAuth // non-nil until the handshake succeeds
	started  time.Time
	msgs     int       // messages handled so far
	deadline time.Time // max_connection_age; zero for none
	lastRead time.Time
	// partialSince is when the first byte of the message not yet whole
	// at the buffer's start arrived; zero when the buffer is empty.
	partialSince time.Time
	// held is what this connection took from the input's budget: read
	// buffer capacity beyond minBuffer, and inflate buffers.
	held int64
	// graceful: the connection ends between messages (shutdown,
	// max_connection_age, idleness), so close half-closes first.
	graceful bool

	dec      Decoder
	frame    frameScanner // where the message at the buffer's start ends
	msg      Message
	jsonMode bool // acks are JSON too
	// batch gathers consecutive Message-mode messages that want no ack
	// and share a tag, so that a client sending one event per message
	// (Docker's driver) costs one emit per read, not one per event.
	batch    event.Builder
	batchTag string
	tags     map[string]string
	reply    []byte
	// resendKey is the current chunk's key in the input's ackCache.
	resendKey []byte
	rebuild   event.Builder
	record    []byte
}

func (in *Input) serve(ctx context.Context, nc net.Conn, out plugin.Emitter) {
	now := time.Now()
	c := &conn{
		in: in, raw: nc, nc: nc, peer: nc.RemoteAddr().String(), started: now, lastRead: now,
		deadline: in.connectionDeadline(now),
		dec:      Decoder{MaxDecompressed: int(in.MaxDecompressedSize), SkipInvalid: in.SkipInvalidEvent},
		tags:     map[string]string{},
	}
	c.dec.Reserve = func(n int) error { return c.reserve(ctx, n) }
	defer c.dec.Close()
	defer c.close()
	defer func() { in.budget.Release(c.held) }()
	if addr, ok := nc.RemoteAddr().(*net.TCPAddr); ok {
		c.ip = addr.IP
	}
	if tcp, ok := nc.(*net.TCPConn); ok && in.SendKeepalivePacket {
		_ = tcp.SetKeepAlive(true)
	}
	in.transport.Tune(nc, in.LingerTimeout)
	if in.tlsConfig != nil {
		tc := tls.Server(nc, in.tlsConfig)
		_ = tc.SetDeadline(now.Add(in.HandshakeTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			in.Stats.AuthFailures.Add(1)
			in.log.Warn("TLS handshake failed", "peer", c.peer, "err", err)
			return
		}
		_ = tc.SetDeadline(time.Time{})
		c.nc = tc
	}
	if in.SourceHostnameKey != "" {
		c.hostname = transport.LookupHostname(ctx, c.ip)
	}
	if in.security != nil {
		c.auth = newServerAuth(in.security, !in.DenyKeepalive)
		if !c.write(c.auth.appendHelo(c.reply[:0])) {
			return
		}
	}
	c.loop(ctx, out)
}

// lingerDrain bounds how long a gracefully closing connection waits for
// the client to take its FIN.
const lingerDrain = time.Second

// close ends the connection. A graceful close sends FIN after the last
// acknowledgement and reads, discarding, until the client has received
// everything (its kernel acknowledged the FIN), closes too, or lingerDrain
// passes. Closing with unread bytes at once would make the kernel send a
// reset, which throws away whatever it has not yet delivered, possibly the
// last acks: the client would then resend events Sluice has already taken.
// What is discarded here was never acknowledged, so a client that asked
// for acks resends it elsewhere.
func (c *conn) close() {
	defer c.raw.Close()
	if !c.graceful {
		return
	}
	if tc, ok := c.nc.(*tls.Conn); ok {
		_ = tc.CloseWrite() // close_notify
	}
	tcp, ok := c.raw.(*net.TCPConn)
	if !ok || tcp.CloseWrite() != nil {
		return
	}
	deadline := time.Now().Add(lingerDrain)
	var scratch [4096]byte
	for time.Now().Before(deadline) {
		_ = tcp.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		n, err := tcp.Read(scratch[:])
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			return // the client closed (or reset) too
		}
		if n == 0 && finAcked(tcp) {
			return
		}
	}
}

func (c *conn) write(b []byte) bool {
	_ = c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.nc.Write(b); err != nil {
		c.in.log.Debug("write to client failed", "peer", c.peer, "err", err)
		return false
	}
	return true
}

func mustJSON(b []byte) []byte {
	out, _ := json.Marshal(string(b))
	return out
}

func (c *conn) protocolError(err error) {
	c.in.Stats.ProtocolErrors.Add(1)
	c.in.log.Warn("closing connection after a protocol error", "peer", c.peer, "err", err)
}

// loop reads messages until the client leaves, a limit closes the
// connection, or shutdown. Complete messages already received are always
// handled (and acknowledged) before the connection closes.
func (c *conn) loop(ctx context.Context, out plugin.Emitter) {
	in := c.in
	limit := int(in.ChunkSizeLimit) + 1024 // room for the envelope
	buf := make([]byte, 0, minBuffer)
	start := 0
	eof := false
	for {
		for start < len(buf) {
			n, err := c.frameNext(buf[start:])
			if err != nil {
				c.protocolError(err)
				return
			}
			if n == 0 {
				break // the rest of the message is still to come
			}
			c.frame.reset()
			end := start + n
			if end-start > limit {
				c.protocolError(protoErr("message of %d bytes is larger than chunk_size_limit (%d bytes)", end-start, int64(in.ChunkSizeLimit)))
				return
			}
			msg := buf[start:end]
			start = end
			if !c.handle(ctx, msg, out) {
				c.flushBatch(ctx, out)
				return
			}
		}
		c.flushBatch(ctx, out)
		c.msg = Message{} // its slices may point into the inflate buffer
		c.release(c.dec.Shrink(shrinkAbove))
		if start > 0 {
			buf = buf[:copy(buf, buf[start:])]
			start = 0
		}
		if len(buf) == 0 && cap(buf) > shrinkAbove {
			c.release(cap(buf) - minBuffer)
			buf = make([]byte, 0, minBuffer)
		}
		if eof {
			if len(buf) > 0 {
				in.Stats.TruncatedMessages.Add(1)
				in.log.Warn("connection closed in the middle of a message; its events are dropped (never acknowledged)",
					"peer", c.peer, "bytes", len(buf))
			}
			return
		}
		if len(buf) >= limit {
			c.protocolError(protoErr("message larger than chunk_size_limit (%d bytes)", int64(in.ChunkSizeLimit)))
			return
		}
		now := time.Now()
		// Handling what the last read brought (an output's backpressure
		// included) was Sluice's time, not the client's.
		c.paused(now.Sub(c.lastRead))
		// max_connection_age closes only between messages, after their acks.
		if len(buf) == 0 && c.auth == nil && !c.deadline.IsZero() && !now.Before(c.deadline) {
			c.graceful = true
			in.Stats.AgedOut.Add(1)
			in.log.Debug("closing connection at max_connection_age", "peer", c.peer, "age", now.Sub(c.started).Round(time.Second).String())
			return
		}
		if cap(buf)-len(buf) < minBuffer/2 {
			size := min(max(2*cap(buf), len(buf)+minBuffer), limit+minBuffer)
			if err := c.reserve(ctx, size-cap(buf)); err != nil {
				return
			}
			grown := make([]byte, len(buf), size)
			copy(grown, buf)
			buf = grown
		}
		switch {
		case len(buf) == 0:
			c.partialSince = time.Time{}
		case c.partialSince.IsZero():
			c.partialSince = c.lastRead
		}
		c.setReadDeadline(ctx, c.readDeadline(now, len(buf)))
		n, err := c.nc.Read(buf[len(buf):cap(buf)])
		fresh := len(buf) == 0 && c.msgs == 0 && c.auth == nil && c.in.security == nil
		buf = buf[:len(buf)+n]
		if n > 0 {
			c.lastRead = time.Now()
			if fresh && isJSONStart(buf[0]) {
				c.jsonLoop(ctx, out, buf)
				return
			}
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() {
			c.timedOut(len(buf))
			return
		}
		// EOF, a reset, or shutdown (Run set a past deadline): handle what
		// arrived completely, then stop.
		eof = true
		c.graceful = ctx.Err() != nil
	}
}

// frameNext returns the length of the message at the start of b, 0 while
// it is incomplete. A message that arrived whole (nearly all of them) is
// stepped over by event.Skip, which is quicker on records than the
// scanner; the scanner takes over once one is cut short, so that the rest
// of it costs only the bytes still to come.
func (c *conn) frameNext(b []byte) (int, error) {
	if c.frame.off == 0 {
		rest, err := event.Skip(b)
		if err == nil {
			return len(b) - len(rest), nil
		}
		if !errors.Is(err, msgp.ErrShortBytes) {
			return 0, err
		}
	}
	return c.frame.scan(b)
}

// setReadDeadline sets the connection's read deadline, unless the input
// is shutting down: Run then sets a past deadline on every connection, and
// a deadline set here just after would undo it and leave Read blocked.
// Run cancels ctx before it sets deadlines, so checking ctx after setting
// ours closes the gap.
func (c *conn) setReadDeadline(ctx context.Context, t time.Time) {
	_ = c.nc.SetReadDeadline(t)
	if ctx.Err() != nil {
		_ = c.nc.SetReadDeadline(time.Now())
	}
}

// readDeadline is the earliest of the handshake timeout, the idle timeout
// and, between messages (pending is 0), the connection's max age; while a
// message is partial (pending bytes of it arrived), the slow-sender
// bounds too.
func (c *conn) readDeadline(now time.Time, pending int) time.Time {
	var d time.Time
	earlier := func(t time.Time) {
		if !t.IsZero() && (d.IsZero() || t.Before(d)) {
			d = t
		}
	}
	if c.auth != nil {
		earlier(c.started.Add(c.in.HandshakeTimeout))
	}
	if c.in.IdleTimeout > 0 {
		earlier(c.lastRead.Add(c.in.IdleTimeout))
	}
	if pending == 0 && c.auth == nil {
		earlier(c.deadline)
	}
	if pending > 0 {
		earlier(c.lastRead.Add(partialIdle))
		earlier(c.partialSince.Add(slowMessageGrace + time.Duration(float64(pending)/slowMessageRate*float64(time.Second))))
	}
	return d
}

func (c *conn) timedOut(pending int) {
	in := c.in
	switch {
	case c.auth != nil:
		in.Stats.AuthFailures.Add(1)
		in.log.Warn("closing connection: no handshake in time", "peer", c.peer, "handshake_timeout", in.HandshakeTimeout.String())
	case pending == 0 && !c.deadline.IsZero() && !time.Now().Before(c.deadline):
		c.graceful = true
		in.Stats.AgedOut.Add(1)
		in.log.Debug("closing idle connection at max_connection_age", "peer", c.peer)
	case pending > 0 && (in.IdleTimeout == 0 || time.Since(c.lastRead) < in.IdleTimeout):
		in.Stats.SlowClosed.Add(1)
		in.log.Warn("closing connection: its message arrives too slowly", "peer", c.peer, "bytes", pending,
			"for", time.Since(c.partialSince).Round(time.Millisecond).String(),
			"silent_for", time.Since(c.lastRead).Round(time.Millisecond).String())
	default:
		c.graceful = pending == 0
		in.Stats.IdleClosed.Add(1)
		in.log.Debug("closing idle connection", "peer", c.peer, "idle_timeout", in.IdleTimeout.String())
	}
}

// reserve takes n bytes of the input's receive budget for this
// connection, waiting up to budgetPatience. A connection that cannot get
// them is closed: the space is held by others (counted and logged as
// such, not as this client's fault). The wait is Sluice's, not the
// client's: the slow-sender clocks restart after it.
func (c *conn) reserve(ctx context.Context, n int) error {
	in := c.in
	began := time.Now()
	err := in.budget.Acquire(ctx, int64(n), budgetPatience)
	c.paused(time.Since(began))
	if err != nil {
		if ctx.Err() == nil {
			in.Stats.BufferFull.Add(1)
			in.log.Warn("closing connection: receive_buffer_limit is held by other connections", "peer", c.peer,
				"wanted", n, "held", in.budget.Used(), "receive_buffer_limit", int64(in.ReceiveBufferLimit),
				"waited", budgetPatience.String())
		}
		return err
	}
	c.held += int64(n)
	return nil
}

// paused moves the client's clocks (idleness, a partial message's
// progress) on by d, a time Sluice did not read: handling messages (an
// output's backpressure) or waiting for buffer space.
func (c *conn) paused(d time.Duration) {
	c.lastRead = c.lastRead.Add(d)
	if !c.partialSince.IsZero() {
		c.partialSince = c.partialSince.Add(d)
	}
}

// release gives n bytes back to the input's receive budget.
func (c *conn) release(n int) {
	if n > 0 {
		c.in.budget.Release(int64(n))
		c.held -= int64(n)
	}
}

// handle processes one complete message and reports whether the
// connection stays open.
func (c *conn) handle(ctx context.Context, msg []byte, out plugin.Emitter) bool {
	in := c.in
	if c.auth != nil {
		pong, ok, reason := c.auth.check(msg, c.ip)
		if !c.write(pong) {
			return false
		}
		if !ok {
			in.Stats.AuthFailures.Add(1)
			in.log.Warn("client failed authentication", "peer", c.peer, "reason", reason)
			return false
		}
		c.auth = nil
		return true
	}
	c.msgs++
	m := &c.msg
	if err := c.dec.Decode(msg, m, event.Now()); err != nil {
		var refused *budget.Refused
		if !errors.As(err, &refused) { // a refusal is logged and counted by reserve
			c.protocolError(err)
		}
		return false
	}
	if m.Mode == ModeIgnored {
		// The spec lets a client send nil as a keep-alive; any other
		// value that is not an event message is noted, then skipped.
		if len(msg) != 1 || msg[0] != 0xc0 {
			in.Stats.IgnoredValues.Add(1)
			in.log.Warn("skipping a value that is not an event message", "peer", c.peer, "bytes", len(msg),
				"type", msgp.NextType(msg).String())
		}
		return true
	}
	in.Stats.Messages.Add(1)
	if m.Invalid > 0 {
		in.Stats.InvalidEvents.Add(int64(m.Invalid))
		in.log.Warn("skipped invalid events", "peer", c.peer, "tag", string(m.Tag), "events", m.Invalid)
	}
	if in.ChunkSizeWarnLimit > 0 && int64(len(msg)) > int64(in.ChunkSizeWarnLimit) {
		in.log.Warn("message larger than chunk_size_warn_limit", "peer", c.peer, "tag", string(m.Tag), "bytes", len(msg))
	}
	tag := c.tag(m.Tag)
	if m.Mode == "message" && m.Chunk == nil && m.Count == 1 {
		if c.batch.Len() > 0 && (tag != c.batchTag || c.batch.Len() >= maxBatchEvents || len(c.batch.Bytes()) >= maxBatchBytes) {
			c.flushBatch(ctx, out)
		}
		c.batchTag = tag
		c.batch.AppendEntries(m.Entries, 1)
		return true
	}
	c.flushBatch(ctx, out) // keep the connection's order
	entries := m.Entries
	if (in.SourceAddressKey != "" || in.SourceHostnameKey != "") && m.Count > 0 {
		var err error
		if entries, err = c.addSourceKeys(entries); err != nil {
			c.protocolError(err)
			return false
		}
	}
	if m.Chunk != nil && in.dedup != nil {
		c.resendKey = in.dedup.resendKey(c.resendKey[:0], m)
		switch in.dedup.begin(c.resendKey, time.Now()) {
		case chunkDuplicate:
			in.Stats.DuplicatesSuppressed.Add(int64(m.Count))
			return c.ack(m.Chunk)
		case chunkInFlight:
			// The same chunk is being emitted on another connection; the
			// client resends after its ack timeout and is acked then.
			return true
		}
	}
	var err error
	if m.Count > 0 {
		err = out.Emit(ctx, event.Stream{Tag: tag, Data: entries, Len: m.Count, Index: m.Index})
	}
	if m.Chunk != nil && in.dedup != nil {
		in.dedup.finish(c.resendKey, err == nil, time.Now())
	}
	if err != nil {
		in.Stats.Refused.Add(1)
		in.log.Warn("events not accepted; not acknowledging", "peer", c.peer, "tag", tag, "records", m.Count, "err", err)
		return true
	}
	in.Stats.Events.Add(int64(m.Count))
	in.Stats.Bytes.Add(int64(len(entries)))
	if m.Chunk != nil {
		return c.ack(m.Chunk)
	}
	return true
}

// Bounds of a batch of Message-mode events.
const (
	maxBatchEvents = 1000
	maxBatchBytes  = 1 << 20
)

// flushBatch emits the gathered Message-mode events. They asked for no ack,
// so a refusal is logged and counted only.
func (c *conn) flushBatch(ctx context.Context, out plugin.Emitter) {
	n := c.batch.Len()
	if n == 0 {
		return
	}
	entries := c.batch.Bytes()
	defer c.batch.Reset()
	in := c.in
	if in.SourceAddressKey != "" || in.SourceHostnameKey != "" {
		var err error
		if entries, err = c.addSourceKeys(entries); err != nil {
			c.protocolError(err)
			return
		}
	}
	if err := out.Emit(ctx, event.Stream{Tag: c.batchTag, Data: entries, Len: n}); err != nil {
		in.Stats.Refused.Add(1)
		in.log.Warn("events not accepted (the client asked for no ack)", "peer", c.peer, "tag", c.batchTag, "records", n, "err", err)
		return
	}
	in.Stats.Events.Add(int64(n))
	in.Stats.Bytes.Add(int64(len(entries)))
}

func (c *conn) ack(chunk []byte) bool {
	if c.jsonMode {
		c.reply = append(append(append(c.reply[:0], `{"ack":`...), mustJSON(chunk)...), '}')
	} else {
		c.reply = AppendAck(c.reply[:0], chunk)
	}
	c.in.Stats.Acks.Add(1)
	return c.write(c.reply)
}

// tag returns the message's tag as a string, interned per connection, with
// the tag parameter and add_tag_prefix applied.
func (c *conn) tag(raw []byte) string {
	if t, ok := c.tags[string(raw)]; ok {
		return t
	}
	if len(c.tags) >= maxTags {
		clear(c.tags)
	}
	t := string(raw)
	if c.in.Tag != "" {
		t = c.in.Tag
	}
	if c.in.AddTagPrefix != "" {
		t = c.in.AddTagPrefix + "." + t
	}
	c.tags[string(raw)] = t
	return t
}

// addSourceKeys rebuilds the entries with source_address_key and
// source_hostname_key added to every record.
func (c *conn) addSourceKeys(entries []byte) ([]byte, error) {
	var kv []string
	if c.in.SourceAddressKey != "" {
		addr := ""
		if c.ip != nil {
			addr = c.ip.String()
		}
		kv = append(kv, c.in.SourceAddressKey, addr)
	}
	if c.in.SourceHostnameKey != "" {
		kv = append(kv, c.in.SourceHostnameKey, c.hostname)
	}
	c.rebuild.Reset()
	r := event.NewReader(entries)
	for r.Next() {
		e := r.Entry()
		var err error
		if c.record, err = event.AppendRecordFields(c.record[:0], e.Record, kv...); err != nil {
			return nil, err
		}
		c.rebuild.AppendTimeRecord(e.TimePart(), c.record)
	}
	return c.rebuild.Bytes(), r.Err()
}
