package netin

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/plugin"
)

// UDP is in_udp: each datagram is one message, parsed by <parse>.
type UDP struct {
	Tag                string          `conf:"tag,required" desc:"The tag of the events."`
	Port               int             `conf:"port" desc:"The UDP port to listen on."`
	Bind               string          `conf:"bind" desc:"The address to listen on."`
	MessageLengthLimit config.Size     `conf:"message_length_limit" alias:"body_size_limit" desc:"The most bytes read of one datagram; a longer one is cut there, counted and kept."`
	RemoveNewline      bool            `conf:"remove_newline" desc:"Remove one trailing newline (\\n or \\r\\n) from each datagram."`
	ReceiveBufferSize  config.Size     `conf:"receive_buffer_size" desc:"SO_RCVBUF of the socket: how much the kernel holds for Sluice between reads (0: the system's default; Linux caps it at net.core.rmem_max)."`
	SourceAddressKey   string          `conf:"source_address_key" desc:"Add the sender's IP address to each record under this key."`
	SourceHostnameKey  string          `conf:"source_hostname_key" desc:"Add the sender's host name (reverse DNS, remembered per address) to each record under this key."`
	SourceHostKey      string          `conf:"source_host_key" desc:"Deprecated in Fluentd: source_hostname_key."`
	BlockingTimeout    time.Duration   `conf:"blocking_timeout" desc:"Accepted for Fluentd compatibility (its event loop's timeout)." ignored:"Sluice has no event loop to time out"`
	Parse              *config.Element `section:"parse" desc:"The parser of each datagram (required)."`

	srv server
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "udp", Summary: "receive datagrams over UDP, parsed by <parse>",
		Sections: map[string]plugin.Section{"parse": {Kind: plugin.KindParser}},
		New: func() any {
			return &UDP{Port: 5160, Bind: "0.0.0.0", MessageLengthLimit: 4096, RemoveNewline: true}
		}})
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// Configure implements plugin.Configurer.
func (in *UDP) Configure(c *plugin.Context) error {
	if in.Parse == nil {
		return fmt.Errorf("in_udp needs a <parse> section")
	}
	if in.SourceHostnameKey == "" {
		in.SourceHostnameKey = in.SourceHostKey
	}
	s := &in.srv
	if err := s.configureUDP(c, in.Port, in.Bind, in.MessageLengthLimit, in.ReceiveBufferSize); err != nil {
		return err
	}
	s.addressKey, s.hostnameKey = in.SourceAddressKey, in.SourceHostnameKey
	parse := parsedAs(in.Tag)
	s.receive = parse
	if in.RemoveNewline {
		s.receive = func(w *worker, msg []byte) { parse(w, chomp(msg)) }
	}
	return s.newWorkers(1, func() (plugin.Parser, error) { return c.Build.Parser(in.Parse, "") })
}

func (s *server) configureUDP(c *plugin.Context, port int, bind string, limit, rcvBuf config.Size) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("port %d out of range", port)
	}
	if limit <= 0 || limit > maxDatagram {
		return fmt.Errorf("message_length_limit must be between 1 and %d bytes", maxDatagram)
	}
	s.network, s.port, s.bind, s.log = "udp", port, bind, c.Logger
	s.limit, s.rcvBuf = int(limit), int(rcvBuf)
	return nil
}

// chomp removes one trailing line ending, as Ruby's String#chomp.
func chomp(b []byte) []byte {
	if bytes.HasSuffix(b, []byte("\r\n")) {
		return b[:len(b)-2]
	}
	if n := len(b); n > 0 && (b[n-1] == '\n' || b[n-1] == '\r') {
		return b[:n-1]
	}
	return b
}

// MemoryBound implements plugin.MemoryBounded.
func (in *UDP) MemoryBound() int64 { return in.srv.memoryBound() }

// Init implements plugin.Initer.
func (in *UDP) Init(context.Context) error { return in.srv.listen() }

// Run implements plugin.Input.
func (in *UDP) Run(ctx context.Context, out plugin.Emitter) error { return in.srv.run(ctx, out) }

// Close implements plugin.Closer.
func (in *UDP) Close(context.Context) error { in.srv.close(); return nil }

// Measure implements plugin.Measured.
func (in *UDP) Measure(report plugin.Report) { in.srv.Stats.measure(report) }

// BoundAddr returns the socket's address once bound.
func (in *UDP) BoundAddr() string { return in.srv.boundAddr() }
