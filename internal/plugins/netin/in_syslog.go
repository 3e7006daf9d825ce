package netin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/parser"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
	"github.com/tinylib/msgp/msgp"
)

// Syslog is in_syslog: syslog messages over UDP, TCP or TLS, tagged
// TAG.FACILITY.SEVERITY from each message's <PRI>.
type Syslog struct {
	Tag                 string          `conf:"tag,required" desc:"The tag prefix: each event is tagged TAG.FACILITY.SEVERITY (system.daemon.info)."`
	Port                int             `conf:"port" desc:"The port to listen on."`
	Bind                string          `conf:"bind" desc:"The address to listen on."`
	ProtocolType        string          `conf:"protocol_type" enum:"udp,tcp" desc:"Deprecated in Fluentd: <transport udp> or <transport tcp>; a <transport> section wins."`
	FrameType           string          `conf:"frame_type" enum:"traditional,octet_count" desc:"How messages are framed over TCP: traditional (each ends with delimiter) or octet_count (LEN SP MSG, RFC 6587)."`
	Delimiter           string          `conf:"delimiter" desc:"What ends each message with frame_type traditional."`
	MessageLengthLimit  config.Size     `conf:"message_length_limit" desc:"The most bytes read of one UDP datagram (a longer one is cut there, counted and kept). Over TCP a message may be up to this or 1 MiB, whichever is larger (Fluentd has no bound there); a longer one is dropped and counted."`
	SourceAddressKey    string          `conf:"source_address_key" desc:"Add the sender's IP address to each record under this key."`
	SourceHostnameKey   string          `conf:"source_hostname_key" desc:"Add the sender's host name (reverse DNS) to each record under this key."`
	ResolveHostname     bool            `conf:"resolve_hostname" desc:"Accepted for Fluentd compatibility; source_hostname_key always resolves." ignored:"source_hostname_key always resolves"`
	IncludeSourceHost   bool            `conf:"include_source_host" desc:"Deprecated in Fluentd: source_address_key. Adds the sender's address under source_host_key."`
	SourceHostKey       string          `conf:"source_host_key" desc:"Deprecated in Fluentd: the key include_source_host adds."`
	SeverityKey         string          `conf:"severity_key" alias:"priority_key" desc:"Add the severity's name (err, info, ...) to each record under this key."`
	FacilityKey         string          `conf:"facility_key" desc:"Add the facility's name (daemon, local0, ...) to each record under this key."`
	EmitUnmatchedLines  bool            `conf:"emit_unmatched_lines" desc:"Emit messages the parser does not match as {\"unmatched_line\": MESSAGE} under TAG.unmatched, instead of dropping them (they are counted either way)."`
	SendKeepalivePacket bool            `conf:"send_keepalive_packet" desc:"Enable TCP keepalive probes on accepted connections, to find dead peers."`
	ReceiveBufferLimit  config.Size     `conf:"receive_buffer_limit" desc:"Over TCP: the most bytes all connections together hold in messages still arriving; past it they stop being read, and one that waits 10 s is closed."`
	BlockingTimeout     time.Duration   `conf:"blocking_timeout" desc:"Accepted for Fluentd compatibility (its event loop's timeout)." ignored:"Sluice has no event loop to time out"`
	Parse               *config.Element `section:"parse" desc:"The parser of each message: syslog (with_priority true) unless it names another; with another, the <PRI> is taken off before it parses."`
	TransportSection    *config.Element `section:"transport" desc:"udp (the default), tcp or tls, and the server's certificate for tls; receive_buffer_size here is also the UDP socket's."`

	srv        server
	readsPri   bool          // the parser reads <PRI> itself
	tags       [192]string   // by priority
	fields     [192][]string // severity_key and facility_key by priority
	unmatched  string        // TAG.unmatched
	unmatchedK []byte        // the record key of an unmatched line
}

// Fluentd's names of the syslog facilities and severities (RFC 5424 6.2.1).
var (
	facilities = [24]string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news", "uucp", "cron", "authpriv", "ftp",
		"ntp", "audit", "alert", "at", "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}
	severities = [8]string{"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"}
)

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "syslog", Summary: "receive syslog over UDP, TCP or TLS, tagged by facility and severity",
		Sections: map[string]plugin.Section{
			"parse":     {Kind: plugin.KindParser, Default: "syslog"},
			"transport": {New: func() any { t := transport.Default(); t.Protocol = "udp"; return &t }},
		},
		New: func() any {
			return &Syslog{Port: 5140, Bind: "0.0.0.0", FrameType: "traditional", Delimiter: "\n", MessageLengthLimit: 2048,
				SourceHostKey: "source_host", ReceiveBufferLimit: defaultReceiveBufferLimit}
		}})
}

// Configure implements plugin.Configurer.
func (in *Syslog) Configure(c *plugin.Context) error {
	protocol := "udp"
	if in.ProtocolType != "" {
		protocol = in.ProtocolType
	}
	t, err := decodeTransport(c, in.TransportSection, protocol)
	if err != nil {
		return err
	}
	if in.IncludeSourceHost && in.SourceAddressKey == "" {
		in.SourceAddressKey = in.SourceHostKey
	}
	s := &in.srv
	if t.Protocol == "udp" {
		if err := s.configureUDP(c, in.Port, in.Bind, in.MessageLengthLimit, t.ReceiveBufferSize); err != nil {
			return err
		}
	} else {
		if err := s.configureTCP(c, in.Port, in.Bind, t, in.ReceiveBufferLimit); err != nil {
			return err
		}
		if in.Delimiter == "" {
			return fmt.Errorf("delimiter is empty")
		}
		s.frame = framer{octetCount: in.FrameType == "octet_count", delim: []byte(in.Delimiter),
			limit: max(int(in.MessageLengthLimit), defaultTCPMessageLimit)}
	}
	s.addressKey, s.hostnameKey, s.keepalive = in.SourceAddressKey, in.SourceHostnameKey, in.SendKeepalivePacket
	for pri := range in.tags {
		fac, sev := facilities[pri>>3], severities[pri&7]
		in.tags[pri] = in.Tag + "." + fac + "." + sev
		if in.SeverityKey != "" {
			in.fields[pri] = append(in.fields[pri], in.SeverityKey, sev)
		}
		if in.FacilityKey != "" {
			in.fields[pri] = append(in.fields[pri], in.FacilityKey, fac)
		}
	}
	in.unmatched = in.Tag + ".unmatched"
	in.unmatchedK = msgp.AppendString(msgp.AppendMapHeader(nil, 1), "unmatched_line")
	// Fluentd's default parser here reads the priority: with_priority
	// is true unless the <parse> section says otherwise.
	setPriority := in.Parse == nil
	if in.Parse != nil {
		_, set := in.Parse.Get("with_priority")
		setPriority = !set
	}
	s.receive = in.receive
	workers := poolSize
	if t.Protocol == "udp" {
		workers = 1
	}
	return s.newWorkers(workers, func() (plugin.Parser, error) {
		p, err := c.Build.Parser(in.Parse, "syslog")
		if err != nil {
			return nil, err
		}
		if sp, ok := p.(*parser.Syslog); ok {
			if setPriority {
				sp.WithPriority = true
			}
			// The syslog parser takes the whole message (its RFC 3164
			// form reads an optional <PRI>, its RFC 5424 form needs one);
			// the priority is read here for the tag, and left out of the
			// record, which Fluentd's in_syslog deletes it from.
			in.readsPri = true
			sp.OmitPriority = true
		}
		return p, nil
	})
}

var errNoPriority = errors.New("no <PRI> (0 to 191) at the start")

// receive implements receiver: the <PRI> for the tag, the rest through the
// parser (the whole message when the parser reads <PRI> itself).
func (in *Syslog) receive(w *worker, msg []byte) {
	pri, rest, ok := priority(msg)
	if !ok {
		in.notMatched(w, msg, errNoPriority)
		return
	}
	text := rest
	if in.readsPri {
		text = msg
	}
	if err := w.parser.Parse(text, func(t event.Time, rec []byte) error {
		w.add(in.tags[pri], t, rec, in.fields[pri]...)
		return nil
	}); err != nil {
		in.notMatched(w, msg, err)
	}
}

func (in *Syslog) notMatched(w *worker, msg []byte, err error) {
	w.unmatched(msg, err)
	if in.EmitUnmatchedLines {
		w.line = msgp.AppendStringFromBytes(append(w.line[:0], in.unmatchedK...), msg)
		w.add(in.unmatched, 0, w.line)
	}
}

// priority reads "<PRI>" at the start of msg: 1 to 3 digits, at most 191
// (facility 23, severity 7).
func priority(msg []byte) (pri int, rest []byte, ok bool) {
	if len(msg) < 3 || msg[0] != '<' {
		return 0, nil, false
	}
	for i := 1; i < len(msg) && i <= 4; i++ {
		c := msg[i]
		if c == '>' {
			if i == 1 || pri > 191 {
				return 0, nil, false
			}
			return pri, msg[i+1:], true
		}
		if c < '0' || c > '9' {
			return 0, nil, false
		}
		pri = pri*10 + int(c-'0')
	}
	return 0, nil, false
}

// MemoryBound implements plugin.MemoryBounded.
func (in *Syslog) MemoryBound() int64 { return in.srv.memoryBound() }

// Init implements plugin.Initer.
func (in *Syslog) Init(context.Context) error { return in.srv.listen() }

// Run implements plugin.Input.
func (in *Syslog) Run(ctx context.Context, out plugin.Emitter) error { return in.srv.run(ctx, out) }

// Close implements plugin.Closer.
func (in *Syslog) Close(context.Context) error { in.srv.close(); return nil }

// Measure implements plugin.Measured.
func (in *Syslog) Measure(report plugin.Report) { in.srv.Stats.measure(report) }

// BoundAddr returns the listener's address once bound.
func (in *Syslog) BoundAddr() string { return in.srv.boundAddr() }

// Listens implements plugin.Listener: the TCP port, when over TCP.
func (in *Syslog) Listens() []string {
	if in.srv.network != "tcp" {
		return nil
	}
	return []string{net.JoinHostPort(in.Bind, strconv.Itoa(in.Port))}
}
