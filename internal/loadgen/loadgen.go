// Package loadgen drives a Forward-protocol server with Docker-driver-shaped
// events, measures the rate at which the receiver takes them, and counts
// tracer events at a sink, so that loss and duplicates can be told apart.
//
// Rates are taken at the receiver: after the last message, every
// connection sends one more message with an ack request and waits for the
// ack; a server handles a connection's messages in order, so that ack
// means every earlier event was taken. The clock stops at the last ack.
package loadgen

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
)

// Modes of the Forward protocol.
const (
	ModeMessage    = "message"
	ModeForward    = "forward"
	ModePacked     = "packed"
	ModeCompressed = "compressed"
)

// SendConfig describes a run.
type SendConfig struct {
	Addr        string
	Mode        string
	Conns       int
	Batch       int   // events per message (1 in message mode)
	Events      int64 // in total, over all connections
	Ack         bool  // ask for an ack on every message (Docker's fluentd-request-ack)
	Tag         string
	TracerEvery int // one event in this many carries a unique "tracer" id (0: none)
	TracerRun   string
}

// Result is what a run measured.
type Result struct {
	Events   int64
	Bytes    int64 // event bytes (entries), not counting the envelope
	Elapsed  time.Duration
	Tracers  int64
	Messages int64
}

// EventsPerSec is the receiver's rate.
func (r Result) EventsPerSec() float64 { return float64(r.Events) / r.Elapsed.Seconds() }

// MBPerSec is the receiver's rate in MB/s of event bytes.
func (r Result) MBPerSec() float64 { return float64(r.Bytes) / 1e6 / r.Elapsed.Seconds() }

// DockerRecord is an event shaped like the fluentd log driver's output,
// about 200 bytes once packed with its time.
func DockerRecord(extra ...string) []byte {
	fields := []string{
		"container_id", "6d33ade920a96179205e01c3a17d6e7f3eb98f0d5bb2b494383250220e7f443c",
		"container_name", "/ecs-service-2-apache-d492a08f9480c2fcca01",
		"source", "stdout",
		"log", `122.116.50.70 - Corwin8644 264 [2018-10-31T21:31:59Z] "POST /activate" 200 19886`,
	}
	fields = append(fields, extra...)
	rec := msgp.AppendMapHeader(nil, uint32(len(fields)/2))
	for _, f := range fields {
		rec = msgp.AppendString(rec, f)
	}
	return rec
}

// Send runs cfg against a server and returns what the receiver took.
func Send(ctx context.Context, cfg SendConfig) (Result, error) {
	if cfg.Conns < 1 {
		cfg.Conns = 1
	}
	if cfg.Mode == ModeMessage || cfg.Batch < 1 {
		cfg.Batch = 1
	}
	switch cfg.Mode {
	case ModeMessage, ModeForward, ModePacked, ModeCompressed:
	default:
		return Result{}, fmt.Errorf("unknown mode %q", cfg.Mode)
	}
	if cfg.Tag == "" {
		cfg.Tag = "bench.docker"
	}
	perConn := cfg.Events / int64(cfg.Conns)
	var (
		wg    sync.WaitGroup
		total Result
		mu    sync.Mutex
		first error
	)
	conns := make([]net.Conn, cfg.Conns)
	for i := range conns {
		c, err := net.Dial("tcp", cfg.Addr)
		if err != nil {
			for _, o := range conns[:i] {
				o.Close()
			}
			return Result{}, err
		}
		conns[i] = c
	}
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func(i int, c net.Conn) {
			defer wg.Done()
			defer c.Close()
			r, err := sendConn(ctx, c, cfg, i, perConn)
			mu.Lock()
			defer mu.Unlock()
			total.Events += r.Events
			total.Bytes += r.Bytes
			total.Tracers += r.Tracers
			total.Messages += r.Messages
			if err != nil && first == nil {
				first = fmt.Errorf("connection %d: %w", i, err)
			}
		}(i, c)
	}
	wg.Wait()
	total.Elapsed = time.Since(start)
	return total, first
}

// generator builds messages; only the tracer entry changes between them.
type generator struct {
	cfg     SendConfig
	conn    int
	plain   []byte // one entry without a tracer
	msg     []byte
	entries event.Builder
	zbuf    bytes.Buffer
	seq     int64 // events generated on this connection
	tracers int64
}

func (g *generator) entry(b *event.Builder, now event.Time) {
	if g.cfg.TracerEvery > 0 && g.seq%int64(g.cfg.TracerEvery) == 0 {
		id := g.cfg.TracerRun + "-" + strconv.Itoa(g.conn) + "-" + strconv.FormatInt(g.seq, 10)
		b.Append(now, DockerRecord("tracer", id))
		g.tracers++
	} else {
		var t [10]byte
		b.AppendTimeRecord(event.AppendEventTime(t[:0], now), g.plain)
	}
	g.seq++
}

// next builds the next message of n events; chunk asks for an ack. The
// message is the buffers' bytes in order: written with writev, the
// entries of a batch are not copied once more into one buffer.
func (g *generator) next(n int, chunk string) (net.Buffers, int) {
	// One clock read a message, each entry a nanosecond later than the
	// one before: in a VM a clock read costs about as much as building
	// the entry, and the generator shares the receiver's cores.
	now := event.Now()
	g.entries.Reset()
	for i := 0; i < n; i++ {
		g.entry(&g.entries, now+event.Time(i))
	}
	data := g.entries.Bytes()
	size := len(data)
	nopt := uint32(0)
	if chunk != "" {
		nopt++
	}
	if g.cfg.Mode == ModeCompressed {
		nopt++
	}
	m := g.msg[:0]
	var body []byte
	switch g.cfg.Mode {
	case ModeMessage:
		r := event.NewReader(data)
		r.Next()
		e := r.Entry()
		m = msgp.AppendArrayHeader(m, 3+min(nopt, 1))
		m = msgp.AppendString(m, g.cfg.Tag)
		m = append(m, e.TimePart()...)
		m = append(m, e.Record...)
	case ModeForward:
		m = msgp.AppendArrayHeader(m, 2+min(nopt, 1))
		m = msgp.AppendString(m, g.cfg.Tag)
		m = msgp.AppendArrayHeader(m, uint32(n))
		body = data
	case ModePacked, ModeCompressed:
		if g.cfg.Mode == ModeCompressed {
			g.zbuf.Reset()
			zw := gzip.NewWriter(&g.zbuf)
			_, _ = zw.Write(data) // into a bytes.Buffer: cannot fail
			_ = zw.Close()
			data = g.zbuf.Bytes()
		}
		m = msgp.AppendArrayHeader(m, 2+min(nopt, 1))
		m = msgp.AppendString(m, g.cfg.Tag)
		m = msgp.AppendBytesHeader(m, uint32(len(data)))
		body = data
	}
	head := len(m)
	if nopt > 0 {
		m = msgp.AppendMapHeader(m, nopt)
		if chunk != "" {
			m = msgp.AppendString(msgp.AppendString(m, "chunk"), chunk)
		}
		if g.cfg.Mode == ModeCompressed {
			m = msgp.AppendString(msgp.AppendString(m, "compressed"), "gzip")
		}
	}
	g.msg = m
	if body == nil {
		return net.Buffers{m}, size
	}
	return net.Buffers{m[:head], body, m[head:]}, size
}

// write sends a message from next: one buffer (message mode) with write,
// as before, more with writev. How messages arrive changes the receiver's
// reads: message-mode figures stay comparable with earlier runs this way.
func write(c net.Conn, msg net.Buffers) error {
	if len(msg) == 1 {
		_, err := c.Write(msg[0])
		return err
	}
	_, err := msg.WriteTo(c)
	return err
}

func sendConn(ctx context.Context, c net.Conn, cfg SendConfig, id int, events int64) (Result, error) {
	g := &generator{cfg: cfg, conn: id, plain: DockerRecord()}
	var r Result
	reply := make([]byte, 256)
	ackN := 0
	// Chunk ids unique to the run, as a client library's random ones are:
	// two runs at once must not look like one resending the other's chunks.
	var run [6]byte
	_, _ = crand.Read(run[:]) // crypto/rand.Read does not fail
	idPrefix := hex.EncodeToString(run[:]) + "-" + strconv.Itoa(id)
	waitAck := func(chunk string) error {
		_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
		got := 0
		for {
			n, err := c.Read(reply[got:])
			got += n
			if v, _, derr := msgp.ReadIntfBytes(reply[:got]); derr == nil {
				m, _ := v.(map[string]any)
				if m["ack"] != chunk {
					return fmt.Errorf("ack %v, want %s", m["ack"], chunk)
				}
				return nil
			}
			if err != nil {
				return err
			}
			if got == len(reply) {
				return errors.New("reply too long")
			}
		}
	}
	for sent := int64(0); sent < events; {
		if ctx.Err() != nil {
			return r, ctx.Err()
		}
		n := int(min(int64(cfg.Batch), events-sent))
		chunk := ""
		if cfg.Ack {
			ackN++
			chunk = idPrefix + "-" + strconv.Itoa(ackN)
		}
		msg, size := g.next(n, chunk)
		if err := write(c, msg); err != nil {
			return r, err
		}
		if chunk != "" {
			if err := waitAck(chunk); err != nil {
				return r, err
			}
		}
		sent += int64(n)
		r.Events += int64(n)
		r.Bytes += int64(size)
		r.Messages++
	}
	// Barrier: an acked message after everything else.
	saved := cfg.TracerEvery
	g.cfg.TracerEvery = 0
	msg, _ := g.next(1, idPrefix+"-final")
	g.cfg.TracerEvery = saved
	if err := write(c, msg); err != nil {
		return r, err
	}
	r.Tracers = g.tracers
	return r, waitAck(idPrefix + "-final")
}

// Sink is a minimal Forward server that decodes every record (as a
// typical Go receiver would), acknowledges chunks and counts events.
type Sink struct {
	Events atomic.Int64
	ln     net.Listener
	wg     sync.WaitGroup
}

// Listen starts a sink on addr.
func Listen(addr string) (*Sink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Sink{ln: ln}
	s.wg.Add(1)
	go s.accept()
	return s, nil
}

// Addr is where the sink listens.
func (s *Sink) Addr() string { return s.ln.Addr().String() }

// Close stops the sink.
func (s *Sink) Close() error {
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Sink) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			s.serve(c)
		}()
	}
}

func (s *Sink) serve(c net.Conn) {
	buf := make([]byte, 0, 1<<20)
	tmp := make([]byte, 256<<10)
	for {
		n, err := c.Read(tmp)
		buf = append(buf, tmp[:n]...)
		for {
			v, rest, derr := msgp.ReadIntfBytes(buf)
			if derr != nil {
				break
			}
			count, chunk := s.count(v)
			s.Events.Add(count)
			if chunk != "" {
				ack := msgp.AppendMapHeader(nil, 1)
				ack = msgp.AppendString(msgp.AppendString(ack, "ack"), chunk)
				_, _ = c.Write(ack) // a sink: a client that went away is not its problem
			}
			buf = append(buf[:0], rest...)
		}
		if err != nil {
			return
		}
	}
}

// count decodes a message fully and returns its events and chunk id.
func (s *Sink) count(v any) (int64, string) {
	arr, ok := v.([]any)
	if !ok || len(arr) < 2 {
		return 0, ""
	}
	var n int64
	var opt map[string]any
	switch x, isArray := arr[1].([]any); {
	case isArray:
		n = int64(len(x))
		if len(arr) > 2 {
			opt, _ = arr[2].(map[string]any)
		}
	default:
		if b, isBin := arr[1].([]byte); isBin {
			for rest := b; len(rest) > 0; n++ {
				var err error
				if _, rest, err = msgp.ReadIntfBytes(rest); err != nil {
					break
				}
			}
			if len(arr) > 2 {
				opt, _ = arr[2].(map[string]any)
			}
		} else {
			n = 1
			if len(arr) > 3 {
				opt, _ = arr[3].(map[string]any)
			}
		}
	}
	chunk, _ := opt["chunk"].(string)
	return n, chunk
}
