package forward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Input is in_forward: a TCP server for the Forward protocol.
type Input struct {
	Port               int         `conf:"port"`
	Bind               string      `conf:"bind"`
	ChunkSizeLimit     config.Size `conf:"chunk_size_limit"`
	ChunkSizeWarnLimit config.Size `conf:"chunk_size_warn_limit"`
	SkipInvalidEvent   bool        `conf:"skip_invalid_event"`
	LingerTimeout      int         `conf:"linger_timeout"`

	log    *slog.Logger
	ln     net.Listener
	bound  atomic.Pointer[string] // the listener's address, once bound
	conns  sync.WaitGroup
	mu     sync.Mutex
	active map[net.Conn]struct{} // guarded by mu

	// Counters for this input.
	Events         atomic.Int64
	Messages       atomic.Int64
	ProtocolErrors atomic.Int64
	Refused        atomic.Int64 // messages not acknowledged because an output refused them
}

// defaultChunkSizeLimit bounds one message when chunk_size_limit is unset
// (Fluentd has no bound; Sluice keeps memory bounded).
const defaultChunkSizeLimit = 64 << 20

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "forward", Summary: "receive events over the Forward protocol",
		New: func() any { return &Input{Port: 24224, Bind: "0.0.0.0", ChunkSizeLimit: defaultChunkSizeLimit} }})
}

// Configure implements plugin.Configurer.
func (in *Input) Configure(c *plugin.Context) error {
	in.log = c.Logger
	if in.Port < 0 || in.Port > 65535 {
		return fmt.Errorf("port %d out of range", in.Port)
	}
	if in.ChunkSizeLimit <= 0 {
		return fmt.Errorf("chunk_size_limit must be positive")
	}
	return nil
}

// Init binds the listener, so a busy port fails the start.
func (in *Input) Init(context.Context) error {
	ln, err := net.Listen("tcp", net.JoinHostPort(in.Bind, strconv.Itoa(in.Port)))
	if err != nil {
		return err
	}
	in.ln = ln
	in.active = map[net.Conn]struct{}{}
	addr := ln.Addr().String()
	in.bound.Store(&addr)
	return nil
}

// Run implements plugin.Input. On cancel it stops accepting, lets each
// connection finish the message it is processing, then returns.
func (in *Input) Run(ctx context.Context, out plugin.Emitter) error {
	go func() {
		<-ctx.Done()
		in.ln.Close()
		in.mu.Lock()
		for c := range in.active {
			_ = c.SetReadDeadline(time.Now())
		}
		in.mu.Unlock()
	}()
	for {
		conn, err := in.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				in.conns.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			in.conns.Wait()
			return err
		}
		in.mu.Lock()
		in.active[conn] = struct{}{}
		in.mu.Unlock()
		in.conns.Add(1)
		go func() {
			defer in.conns.Done()
			in.serve(ctx, conn, out)
			in.mu.Lock()
			delete(in.active, conn)
			in.mu.Unlock()
			conn.Close()
		}()
	}
}

// Close implements plugin.Closer.
func (in *Input) Close(context.Context) error {
	if in.ln != nil {
		in.ln.Close()
	}
	return nil
}

const readSize = 64 << 10

func (in *Input) serve(ctx context.Context, conn net.Conn, out plugin.Emitter) {
	peer := conn.RemoteAddr().String()
	limit := int(in.ChunkSizeLimit) + 1024 // room for the envelope
	dec := Decoder{MaxDecompressed: limit}
	tags := map[string]string{}
	buf := make([]byte, 0, readSize)
	var ack []byte
	var m Message
	eof := false
	for {
		// Handle every complete message already buffered. Re-parsing after
		// each read is cheap: msgp.Skip jumps over bin payloads, so only the
		// envelope is walked. (Issue 3 brings an incremental decoder.)
		for len(buf) > 0 {
			rest, err := msgp.Skip(buf)
			if errors.Is(err, msgp.ErrShortBytes) {
				break
			}
			if err != nil {
				in.protocolError(peer, err)
				return
			}
			msg := buf[:len(buf)-len(rest)]
			if err := dec.Decode(msg, &m, event.Now()); err != nil {
				in.protocolError(peer, err)
				return
			}
			in.Messages.Add(1)
			tag, ok := tags[string(m.Tag)]
			if !ok {
				if len(tags) >= 256 {
					clear(tags)
				}
				tag = string(m.Tag)
				tags[tag] = tag
			}
			if err := out.Emit(ctx, event.Stream{Tag: tag, Data: m.Entries, Len: m.Count}); err != nil {
				in.Refused.Add(1)
				in.log.Warn("events not accepted; not acknowledging", "peer", peer, "tag", tag, "records", m.Count, "err", err)
			} else {
				in.Events.Add(int64(m.Count))
				if m.Chunk != nil {
					ack = AppendAck(ack[:0], m.Chunk)
					if _, err := conn.Write(ack); err != nil {
						return
					}
				}
			}
			buf = append(buf[:0], rest...)
		}
		if eof {
			return
		}
		if len(buf) >= limit {
			in.protocolError(peer, fmt.Errorf("%w: message larger than chunk_size_limit (%d bytes)", ErrProtocol, int64(in.ChunkSizeLimit)))
			return
		}
		if cap(buf)-len(buf) < readSize/4 {
			grown := make([]byte, len(buf), min(2*cap(buf)+readSize, limit+readSize))
			copy(grown, buf)
			buf = grown
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		// EOF, a reset or the shutdown deadline: handle what arrived, then stop.
		eof = err != nil
	}
}

func (in *Input) protocolError(peer string, err error) {
	in.ProtocolErrors.Add(1)
	in.log.Warn("closing connection after a protocol error", "peer", peer, "err", err)
}
