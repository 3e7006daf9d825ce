package forward

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice-log/sluice/internal/budget"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// Input is in_forward: the Forward protocol server, on TCP (or TLS) for
// events and on UDP, same port, for heartbeats.
//
// Parameters keep Fluentd's names and defaults. Sluice adds:
//
//	max_connections            refuse connections past this many (0: no cap)
//	idle_timeout               close connections silent this long (0: never)
//	max_connection_age         close a connection at a message boundary, after
//	max_connection_age_jitter  its acks, once it is this old (plus up to the
//	                           jitter), so that clients reconnect through the
//	                           load balancer and new instances get a share
//	ack_dedup_size, ack_dedup_ttl   remember acknowledged chunk ids to
//	                           accept a resent chunk without emitting it twice
//	max_decompressed_size      bound on a gzip/zstd payload once inflated
//	receive_buffer_limit       bound on the bytes all connections hold in
//	                           large messages; past it reading stops
type Input struct {
	Port                int             `conf:"port" desc:"The TCP port events arrive on; heartbeats use the same UDP port."`
	Bind                string          `conf:"bind" desc:"The address to listen on."`
	LingerTimeout       int             `conf:"linger_timeout" desc:"SO_LINGER seconds for closed connections (0: the kernel's default)."`
	ResolveHostname     bool            `conf:"resolve_hostname" desc:"Accepted for Fluentd compatibility; source_hostname_key always resolves." ignored:"source_hostname_key always resolves"`
	DenyKeepalive       bool            `conf:"deny_keepalive" desc:"Close each connection after its first message, as Fluentd does with this set."`
	SendKeepalivePacket bool            `conf:"send_keepalive_packet" desc:"Enable TCP keepalive probes on accepted connections, to find dead peers."`
	ChunkSizeLimit      config.Size     `conf:"chunk_size_limit" desc:"The largest message accepted; a larger one is refused, counted, and its connection closed."`
	ChunkSizeWarnLimit  config.Size     `conf:"chunk_size_warn_limit" desc:"Log a warning for messages larger than this (0: never)."`
	SkipInvalidEvent    bool            `conf:"skip_invalid_event" desc:"Drop, and count, entries with a bad time or a record that is not a map, keeping the rest of their message; otherwise the whole message is refused."`
	SourceAddressKey    string          `conf:"source_address_key" desc:"Add the client's IP address to each record under this key."`
	SourceHostnameKey   string          `conf:"source_hostname_key" desc:"Add the client's host name (reverse DNS) to each record under this key."`
	Tag                 string          `conf:"tag" desc:"Give every event this tag instead of the one it came with (add_tag_prefix still applies)."`
	AddTagPrefix        string          `conf:"add_tag_prefix" desc:"Prefix every tag with this and a dot."`
	Backlog             int             `conf:"backlog" desc:"Accepted for Fluentd compatibility." ignored:"Go listens with the kernel's maximum backlog (net.core.somaxconn)"`
	BlockingTimeout     time.Duration   `conf:"blocking_timeout" desc:"Accepted for Fluentd compatibility (Cool.io's loop timeout)." ignored:"Sluice has no event loop to time out; shutdown is bounded by shutdown_timeout"`
	MaxConnections      int             `conf:"max_connections" desc:"Refuse connections past this many at once (0: no cap)."`
	IdleTimeout         time.Duration   `conf:"idle_timeout" desc:"Close connections that send nothing for this long (0: never)."`
	MaxConnectionAge    time.Duration   `conf:"max_connection_age" desc:"Close a connection, at a message boundary and after its acks, once it is this old, so that clients reconnect through the load balancer and new instances get a share (0: never)."`
	MaxConnectionJitter time.Duration   `conf:"max_connection_age_jitter" desc:"Up to this much is added, at random, to each connection's max_connection_age, so that clients do not all reconnect at once."`
	AckDedupSize        int             `conf:"ack_dedup_size" desc:"How many acknowledged chunk IDs are remembered, so that a chunk a client resends after a lost ack is acknowledged without being emitted twice (0: off)."`
	AckDedupTTL         time.Duration   `conf:"ack_dedup_ttl" desc:"How long an acknowledged chunk ID is remembered."`
	MaxDecompressedSize config.Size     `conf:"max_decompressed_size" desc:"The largest a gzip or zstd payload may grow when inflated; past it the message is refused."`
	HandshakeTimeout    time.Duration   `conf:"handshake_timeout" desc:"How long a client has to complete the <security> handshake."`
	ReceiveBufferLimit  config.Size     `conf:"receive_buffer_limit" desc:"The most bytes all connections together hold in messages still arriving; past it they stop being read until memory frees, so that memory stays bounded."`
	Security            *config.Element `section:"security" desc:"Shared-key authentication (and user authentication) of clients, as Fluentd's <security>."`
	TransportSection    *config.Element `section:"transport" desc:"tcp or tls, and the server's certificate."`

	security  *Security
	transport transport.Transport
	tlsConfig *tls.Config
	dedup     *ackCache
	budget    *budget.Bytes
	log       *slog.Logger
	ln        net.Listener
	udp       net.PacketConn
	bound     atomic.Pointer[string] // the listener's address, once bound
	conns     sync.WaitGroup
	active    transport.ConnSet

	Stats InputStats
}

// InputStats are in_forward's counters.
type InputStats struct {
	Connections          atomic.Int64 // open now
	ConnectionsTotal     atomic.Int64
	ConnectionsRefused   atomic.Int64 // over max_connections
	Events               atomic.Int64
	Bytes                atomic.Int64 // event bytes accepted
	Messages             atomic.Int64
	ProtocolErrors       atomic.Int64 // connections closed for a bad or oversized message
	InvalidEvents        atomic.Int64 // skipped by skip_invalid_event
	AuthFailures         atomic.Int64
	Acks                 atomic.Int64
	DuplicatesSuppressed atomic.Int64 // resent chunks acknowledged without a second emit
	Refused              atomic.Int64 // messages not acknowledged: an output refused them
	AgedOut              atomic.Int64 // connections closed by max_connection_age
	IdleClosed           atomic.Int64
	SlowClosed           atomic.Int64 // closed: a message arrived too slowly (slowloris)
	BufferFull           atomic.Int64 // closed: receive_buffer_limit stayed held by other connections
	IgnoredValues        atomic.Int64 // values that are not event messages (nil keep-alives aside), skipped
	TruncatedMessages    atomic.Int64 // messages cut short by the end of their connection
	Heartbeats           atomic.Int64
}

// Measure implements plugin.Measured.
func (in *Input) Measure(report plugin.Report) {
	s := &in.Stats
	report("connections", "Connections open now.", s.Connections.Load(), true)
	report("connections_total", "Connections accepted.", s.ConnectionsTotal.Load(), false)
	report("connections_refused_total", "Connections refused over max_connections.", s.ConnectionsRefused.Load(), false)
	report("connections_aged_out_total", "Connections closed by max_connection_age.", s.AgedOut.Load(), false)
	report("connections_idle_closed_total", "Connections closed for idleness.", s.IdleClosed.Load(), false)
	report("connections_slow_closed_total", "Connections closed because a message arrived too slowly.", s.SlowClosed.Load(), false)
	report("connections_buffer_full_total", "Connections closed after waiting too long for receive_buffer_limit space other connections held.", s.BufferFull.Load(), false)
	report("events_total", "Events accepted.", s.Events.Load(), false)
	report("bytes_total", "Event bytes accepted.", s.Bytes.Load(), false)
	report("messages_total", "Forward protocol messages accepted.", s.Messages.Load(), false)
	report("decode_errors_total", "Connections closed for a malformed or oversized message.", s.ProtocolErrors.Load(), false)
	report("invalid_events_total", "Events skipped by skip_invalid_event.", s.InvalidEvents.Load(), false)
	report("auth_failures_total", "Handshakes refused.", s.AuthFailures.Load(), false)
	report("acks_total", "Chunks acknowledged.", s.Acks.Load(), false)
	report("duplicates_suppressed_total", "Resent chunks acknowledged without a second emit.", s.DuplicatesSuppressed.Load(), false)
	report("refused_total", "Messages not acknowledged because an output refused them.", s.Refused.Load(), false)
	report("ignored_values_total", "Values skipped because they are not event messages (nil keep-alives aside).", s.IgnoredValues.Load(), false)
	report("truncated_messages_total", "Messages cut short by the end of their connection; their events were never acknowledged.", s.TruncatedMessages.Load(), false)
	report("heartbeats_total", "UDP heartbeats answered.", s.Heartbeats.Load(), false)
}

// defaultChunkSizeLimit bounds one message when chunk_size_limit is unset
// (Fluentd has no bound; Sluice keeps memory bounded).
const defaultChunkSizeLimit = 64 << 20

// in_forward's defaults that in_unix shares.
const (
	defaultAckDedupTTL        = 10 * time.Minute
	defaultHandshakeTimeout   = 10 * time.Second
	defaultReceiveBufferLimit = 128 << 20
)

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "forward", Summary: "receive events over the Forward protocol",
		Sections: map[string]plugin.Section{
			"security":  {New: func() any { return &Security{AllowAnonymousSource: true} }},
			"transport": {New: func() any { t := transport.Default(); return &t }},
		},
		New: func() any {
			return &Input{Port: 24224, Bind: "0.0.0.0", ChunkSizeLimit: defaultChunkSizeLimit,
				AckDedupSize: 65536, AckDedupTTL: defaultAckDedupTTL, MaxDecompressedSize: defaultChunkSizeLimit,
				HandshakeTimeout: defaultHandshakeTimeout, ReceiveBufferLimit: defaultReceiveBufferLimit}
		}})
}

// Configure implements plugin.Configurer.
func (in *Input) Configure(c *plugin.Context) error {
	in.log = c.Logger
	if in.Port < 0 || in.Port > 65535 {
		return fmt.Errorf("port %d out of range", in.Port)
	}
	if in.ChunkSizeLimit <= 0 || in.MaxDecompressedSize <= 0 {
		return fmt.Errorf("chunk_size_limit and max_decompressed_size must be positive")
	}
	if in.MaxConnectionJitter > 0 && in.MaxConnectionAge <= 0 {
		return fmt.Errorf("max_connection_age_jitter needs max_connection_age")
	}
	if in.Security != nil {
		in.security = &Security{AllowAnonymousSource: true}
		if err := config.Decode(in.Security, in.security); err != nil {
			return err
		}
		if err := in.security.validate(true); err != nil {
			return err
		}
	}
	in.transport = transport.Default()
	if in.TransportSection != nil {
		if err := config.Decode(in.TransportSection, &in.transport); err != nil {
			return err
		}
	}
	in.transport.Hostname = c.Hostname // for a certificate made from ca_cert_path
	if err := in.transport.Validate(true); err != nil {
		return err
	}
	in.dedup = newAckCache(in.AckDedupSize, in.AckDedupTTL)
	if in.ReceiveBufferLimit <= 0 {
		return fmt.Errorf("receive_buffer_limit must be positive")
	}
	in.budget = budget.New(int64(in.ReceiveBufferLimit))
	return nil
}

// MemoryBound implements plugin.MemoryBounded: messages still arriving
// share receive_buffer_limit, and one message may take up to its size and
// its inflated size.
func (in *Input) MemoryBound() int64 {
	return max(int64(in.ReceiveBufferLimit), int64(in.ChunkSizeLimit)+int64(in.MaxDecompressedSize))
}

// Init binds the TCP listener and the UDP heartbeat socket, so a busy port
// fails the start, and reads the TLS certificates.
func (in *Input) Init(context.Context) error {
	cfg, err := in.transport.ServerConfig()
	if err != nil {
		return err
	}
	in.tlsConfig = cfg
	if in.security != nil {
		if err := in.security.resolve(); err != nil {
			return err
		}
	}
	addr := net.JoinHostPort(in.Bind, strconv.Itoa(in.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// The heartbeat socket shares the port the TCP listener got (port 0
	// in tests picks one).
	udpAddr := net.JoinHostPort(in.Bind, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
	udp, err := net.ListenPacket("udp", udpAddr)
	if err != nil {
		ln.Close()
		return fmt.Errorf("heartbeat socket: %w", err)
	}
	in.ln, in.udp = ln, udp
	bound := ln.Addr().String()
	in.bound.Store(&bound)
	return nil
}

// Run implements plugin.Input. On cancel it stops accepting, lets each
// connection finish (and acknowledge) the messages it has received, then
// returns.
func (in *Input) Run(ctx context.Context, out plugin.Emitter) error {
	stopped := make(chan struct{})
	go func() {
		<-ctx.Done()
		in.ln.Close()
		if in.udp != nil {
			in.udp.Close()
		}
		in.active.WakeAll()
		close(stopped)
	}()
	var hb sync.WaitGroup
	if in.udp != nil { // in_unix has no heartbeats
		hb.Add(1)
		go func() { defer hb.Done(); in.heartbeats() }()
	}
	defer func() {
		in.conns.Wait()
		hb.Wait()
		<-stopped
	}()
	for {
		nc, err := in.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		if in.MaxConnections > 0 && in.Stats.Connections.Load() >= int64(in.MaxConnections) {
			in.Stats.ConnectionsRefused.Add(1)
			in.log.Warn("refusing connection: max_connections reached", "peer", nc.RemoteAddr().String(), "max_connections", in.MaxConnections)
			nc.Close()
			continue
		}
		in.track(nc, true)
		in.conns.Add(1)
		go func() {
			defer in.conns.Done()
			defer in.track(nc, false)
			in.serve(ctx, nc, out)
		}()
	}
}

func (in *Input) track(nc net.Conn, open bool) {
	if open {
		in.active.Add(nc)
		in.Stats.Connections.Add(1)
		in.Stats.ConnectionsTotal.Add(1)
		return
	}
	in.active.Remove(nc)
	in.Stats.Connections.Add(-1)
}

// heartbeats answers each UDP heartbeat (one 0x00 byte) with 0x00.
func (in *Input) heartbeats() {
	readDatagrams(in.udp, func(n int, from net.Addr) {
		if n >= 1 {
			in.Stats.Heartbeats.Add(1)
			_, _ = in.udp.WriteTo([]byte{0}, from)
		}
	})
}

// readDatagrams calls fn for each datagram until pc is closed.
func readDatagrams(pc net.PacketConn, fn func(n int, from net.Addr)) {
	buf := make([]byte, 64)
	for {
		n, from, err := pc.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err == nil {
			fn(n, from)
		}
	}
}

// Close implements plugin.Closer.
func (in *Input) Close(context.Context) error {
	if in.ln != nil {
		in.ln.Close()
	}
	if in.udp != nil {
		in.udp.Close()
	}
	return nil
}

// connectionDeadline is when a connection opened now reaches
// max_connection_age (zero when the age is unlimited).
func (in *Input) connectionDeadline(now time.Time) time.Time {
	if in.MaxConnectionAge <= 0 {
		return time.Time{}
	}
	age := in.MaxConnectionAge
	if in.MaxConnectionJitter > 0 {
		age += time.Duration(rand.Int64N(int64(in.MaxConnectionJitter)))
	}
	return now.Add(age)
}

// BoundAddr returns the listener's address once bound, "" before. Tests
// use it with port 0.
func (in *Input) BoundAddr() string {
	if a := in.bound.Load(); a != nil {
		return *a
	}
	return ""
}

// Listens implements plugin.Listener.
func (in *Input) Listens() []string {
	return []string{net.JoinHostPort(in.Bind, strconv.Itoa(in.Port))}
}
