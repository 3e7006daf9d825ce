package netin

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/sluice-log/sluice/internal/budget"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// TCP is in_tcp: lines (or messages ended by delimiter) over TCP, each
// parsed by <parse>.
type TCP struct {
	Tag                 string          `conf:"tag,required" desc:"The tag of the events."`
	Port                int             `conf:"port" desc:"The TCP port to listen on."`
	Bind                string          `conf:"bind" desc:"The address to listen on."`
	Delimiter           string          `conf:"delimiter" desc:"What ends each message."`
	MessageLengthLimit  config.Size     `conf:"message_length_limit" desc:"The longest message taken; a longer one is dropped, counted and logged, and the connection goes on after it. Unset, 1 MiB (Fluentd has no bound)."`
	SourceAddressKey    string          `conf:"source_address_key" desc:"Add the client's IP address to each record under this key."`
	SourceHostnameKey   string          `conf:"source_hostname_key" desc:"Add the client's host name (reverse DNS, once per connection) to each record under this key."`
	SourceHostKey       string          `conf:"source_host_key" desc:"Deprecated in Fluentd: source_hostname_key."`
	SendKeepalivePacket bool            `conf:"send_keepalive_packet" desc:"Enable TCP keepalive probes on accepted connections, to find dead peers."`
	ReceiveBufferLimit  config.Size     `conf:"receive_buffer_limit" desc:"The most bytes all connections together hold in messages still arriving (each holds 16 KiB, more while a long message arrives); past it they stop being read, and one that waits 10 s is closed."`
	BlockingTimeout     time.Duration   `conf:"blocking_timeout" desc:"Accepted for Fluentd compatibility (its event loop's timeout)." ignored:"Sluice has no event loop to time out"`
	Parse               *config.Element `section:"parse" desc:"The parser of each message (required)."`
	TransportSection    *config.Element `section:"transport" desc:"tcp or tls, and the server's certificate."`

	srv server
}

// defaultTCPMessageLimit bounds a message over TCP when the configuration
// does not.
const defaultTCPMessageLimit = 1 << 20

// defaultReceiveBufferLimit is receive_buffer_limit's default.
const defaultReceiveBufferLimit = 64 << 20

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "tcp", Summary: "receive delimited text over TCP (or TLS), parsed by <parse>",
		Sections: map[string]plugin.Section{
			"parse":     {Kind: plugin.KindParser},
			"transport": {New: func() any { t := transport.Default(); return &t }},
		},
		New: func() any {
			return &TCP{Port: 5170, Bind: "0.0.0.0", Delimiter: "\n", ReceiveBufferLimit: defaultReceiveBufferLimit}
		}})
}

// Configure implements plugin.Configurer.
func (in *TCP) Configure(c *plugin.Context) error {
	if in.Parse == nil {
		return fmt.Errorf("in_tcp needs a <parse> section")
	}
	if in.SourceHostnameKey == "" {
		in.SourceHostnameKey = in.SourceHostKey
	}
	limit := int(in.MessageLengthLimit)
	if limit <= 0 {
		limit = defaultTCPMessageLimit
	}
	t, err := decodeTransport(c, in.TransportSection, "tcp")
	if err != nil {
		return err
	}
	s := &in.srv
	if err := s.configureTCP(c, in.Port, in.Bind, t, in.ReceiveBufferLimit); err != nil {
		return err
	}
	if in.Delimiter == "" {
		return fmt.Errorf("delimiter is empty")
	}
	s.frame = framer{delim: []byte(in.Delimiter), limit: limit}
	s.addressKey, s.hostnameKey, s.keepalive = in.SourceAddressKey, in.SourceHostnameKey, in.SendKeepalivePacket
	s.receive = parsedAs(in.Tag)
	return s.newWorkers(poolSize, func() (plugin.Parser, error) { return c.Build.Parser(in.Parse, "") })
}

// decodeTransport reads a <transport> section over protocol's defaults.
func decodeTransport(c *plugin.Context, sec *config.Element, protocol string) (transport.Transport, error) {
	t := transport.Default()
	t.Protocol = protocol
	if sec != nil {
		if err := config.Decode(sec, &t); err != nil {
			return t, err
		}
	}
	t.Hostname = c.Hostname // for a certificate made from ca_cert_path
	return t, nil
}

// configureTCP sets what every TCP-side input shares: the address, the
// transport and the connections' budget.
func (s *server) configureTCP(c *plugin.Context, port int, bind string, t transport.Transport, bufferLimit config.Size) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("port %d out of range", port)
	}
	if err := t.Validate(true); err != nil {
		return err
	}
	if bufferLimit < startBuffer {
		return fmt.Errorf("receive_buffer_limit must be at least %d bytes", startBuffer)
	}
	s.network, s.port, s.bind, s.log, s.transport = "tcp", port, bind, c.Logger, t
	s.bufferLimit = int64(bufferLimit)
	s.budget = budget.New(s.bufferLimit)
	return nil
}

// parsedAs is the receiver of in_tcp and in_udp: the message through the
// parser, every record under tag.
func parsedAs(tag string) receiver {
	return func(w *worker, msg []byte) {
		if err := w.parser.Parse(msg, func(t event.Time, rec []byte) error {
			w.add(tag, t, rec)
			return nil
		}); err != nil {
			w.unmatched(msg, err)
		}
	}
}

// MemoryBound implements plugin.MemoryBounded: the connections' shared
// budget and each parsing worker's batch.
func (in *TCP) MemoryBound() int64 { return in.srv.memoryBound() }

func (s *server) memoryBound() int64 {
	return s.bufferLimit + int64(s.limit) + int64(cap(s.workers))*2*maxBatchBytes
}

// Init implements plugin.Initer: binding at start makes a taken port fail it.
func (in *TCP) Init(context.Context) error { return in.srv.listen() }

// Run implements plugin.Input.
func (in *TCP) Run(ctx context.Context, out plugin.Emitter) error { return in.srv.run(ctx, out) }

// Close implements plugin.Closer.
func (in *TCP) Close(context.Context) error { in.srv.close(); return nil }

// Measure implements plugin.Measured.
func (in *TCP) Measure(report plugin.Report) { in.srv.Stats.measure(report) }

// BoundAddr returns the listener's address once bound.
func (in *TCP) BoundAddr() string { return in.srv.boundAddr() }

// Listens implements plugin.Listener.
func (in *TCP) Listens() []string { return []string{net.JoinHostPort(in.Bind, strconv.Itoa(in.Port))} }
