package forward

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// Output is out_forward: it sends each flushed chunk to one of its
// <server>s as a PackedForward message whose payload is the chunk's bytes,
// written with one vectored write and never re-encoded.
//
// With require_ack_response the chunk id (stable across retries) goes in
// the "chunk" option and a write counts only once the server acks it; a
// receiving Sluice uses the id to accept a resend without emitting it
// twice. A failed write marks its server unavailable for recover_wait and
// the runtime's retry picks another server: that is the failover.
type Output struct {
	Servers                 []ServerConfig    `section:"server" desc:"A destination; events are balanced over them by weight, standbys taking over when all others fail."`
	RequireAckResponse      bool              `conf:"require_ack_response" desc:"Wait for the server's ack of each chunk before committing it; without it a chunk counts as delivered once written to the socket."`
	AckResponseTimeout      time.Duration     `conf:"ack_response_timeout" desc:"How long to wait for an ack before the chunk is retried."`
	SendTimeout             time.Duration     `conf:"send_timeout" desc:"The deadline of writing one chunk to the socket."`
	ConnectTimeout          time.Duration     `conf:"connect_timeout" desc:"The deadline of connecting, and of the TLS and security handshakes (0: send_timeout)."`
	RecoverWait             time.Duration     `conf:"recover_wait" desc:"How long a failed server rests before it is tried again."`
	HeartbeatType           string            `conf:"heartbeat_type" enum:"transport,tcp,udp,none" desc:"How servers are checked: transport (the connection itself), tcp or udp probes, or none."`
	HeartbeatInterval       time.Duration     `conf:"heartbeat_interval" desc:"How often a server is probed."`
	PhiFailureDetector      bool              `conf:"phi_failure_detector" desc:"Mark a server failed when its heartbeats are late by the phi accrual detector, not only when hard_timeout passes."`
	PhiThreshold            int               `conf:"phi_threshold" desc:"The phi above which a server counts as failed."`
	HardTimeout             time.Duration     `conf:"hard_timeout" desc:"A server silent for this long counts as failed."`
	ExpireDNSCache          time.Duration     `conf:"expire_dns_cache" desc:"Accepted for Fluentd compatibility; host names are resolved at each connect." ignored:"host names are resolved at each connect"`
	DNSRoundRobin           bool              `conf:"dns_round_robin" desc:"Spread connections over every address a host name resolves to."`
	IgnoreNetworkErrors     bool              `conf:"ignore_network_errors_at_startup" desc:"Accepted for Fluentd compatibility; network errors at start never fail it." ignored:"network errors never fail the start"`
	VerifyConnectionAtStart bool              `conf:"verify_connection_at_startup" desc:"Connect to every server at start, and fail the start if one cannot be reached."`
	Compress                string            `conf:"compress" enum:"text,gzip" desc:"gzip compresses each chunk on the wire (CompressedPackedForward)."`
	Keepalive               bool              `conf:"keepalive" desc:"Reuse a connection for further chunks instead of one connection per chunk."`
	KeepaliveTimeout        time.Duration     `conf:"keepalive_timeout" desc:"Close a kept connection after this long (0: never)."`
	TimeAsInteger           bool              `conf:"time_as_integer" desc:"Send times as whole seconds, for Fluentd before v0.14; otherwise as EventTime with nanoseconds."`
	TransportName           string            `conf:"transport" enum:"tcp,tls" desc:"tcp or tls to every server."`
	TLSVersion              string            `conf:"tls_version" enum:"TLSv1_1,TLSv1_2,TLSv1_3" desc:"The lowest TLS version used."`
	TLSCiphers              string            `conf:"tls_ciphers" desc:"Accepted for Fluentd compatibility (OpenSSL cipher names); Go's cipher suites for the version are used." ignored:"Go's cipher suites for the TLS version are used"`
	TLSInsecureMode         bool              `conf:"tls_insecure_mode" desc:"Skip verification of the server's certificate (tests only)."`
	TLSAllowSelfSignedCert  bool              `conf:"tls_allow_self_signed_cert" desc:"Accepted for Fluentd compatibility; a self-signed server certificate is trusted by listing it in tls_cert_path." ignored:"trust a self-signed certificate by listing it in tls_cert_path"`
	TLSVerifyHostname       bool              `conf:"tls_verify_hostname" desc:"Check that the server's certificate names the host connected to."`
	TLSCertPath             []string          `conf:"tls_cert_path" desc:"PEM CA certificates to trust, instead of the system's (replaces tls_ca_cert_path when both are set, as in Fluentd)."`
	TLSCACertPath           []string          `conf:"tls_ca_cert_path" desc:"PEM CA certificates to trust, instead of the system's."`
	TLSCertThumbprint       string            `conf:"tls_cert_thumbprint" desc:"Windows certificate store only; refused elsewhere, as Fluentd refuses it."`
	TLSCertLogicalStore     string            `conf:"tls_cert_logical_store_name" desc:"Windows certificate store only; refused elsewhere, as Fluentd refuses it."`
	TLSCertEnterpriseStore  bool              `conf:"tls_cert_use_enterprise_store" desc:"Accepted for Fluentd compatibility (Windows certificate store)." ignored:"Windows certificate stores are not read"`
	ReadIntervalMsec        int               `conf:"read_interval_msec" desc:"Accepted for Fluentd compatibility (its ack polling interval)." ignored:"acks are read as they arrive"`
	ReadLength              config.Size       `conf:"read_length" desc:"Accepted for Fluentd compatibility (its ack read size)." ignored:"acks are read as they arrive"`
	ObsoleteHost            string            `conf:"host" desc:"Obsoleted in Fluentd: refused; use <server>."`
	ObsoletePort            int               `conf:"port" desc:"Obsoleted in Fluentd: refused; use <server>."`
	TLSClientCertPath       string            `conf:"tls_client_cert_path" desc:"The PEM client certificate to present, for servers that require one."`
	TLSClientKeyPath        string            `conf:"tls_client_private_key_path" desc:"The PEM private key of tls_client_cert_path."`
	TLSClientKeyPassphrase  string            `conf:"tls_client_private_key_passphrase" desc:"The passphrase of an encrypted client private key."`
	Security                *config.Element   `section:"security" desc:"Shared-key authentication with the servers, as Fluentd's <security>."`
	ServiceDiscovery        []*config.Element `section:"service_discovery" desc:"More servers: @type static (<service> sections), file (a YAML or JSON list, reread when it changes) or srv (DNS SRV records, asked again every interval)."`

	security    *Security
	tlsConf     *tls.Config
	discoveries []discovery
	fileCheck   time.Duration           // how often file sources are looked at
	nodes       atomic.Pointer[[]*node] // replaced whole when discovery changes the servers
	log         *slog.Logger
	stop        chan struct{}
	wg          sync.WaitGroup
	udp         net.PacketConn
}

// ServerConfig is a <server>.
type ServerConfig struct {
	Name      string `conf:"name" desc:"The server's name in logs and metrics; defaults to host:port."`
	Host      string `conf:"host,required" desc:"The server's host name or address."`
	Port      int    `conf:"port" desc:"The server's port."`
	SharedKey string `conf:"shared_key" desc:"The shared key of the <security> handshake with this server (overrides <security>'s)."`
	Username  string `conf:"username" desc:"The user of user authentication with this server."`
	Password  string `conf:"password" desc:"The password of username."`
	Standby   bool   `conf:"standby" desc:"Use this server only when every other one has failed."`
	Weight    int    `conf:"weight" desc:"The server's share of the chunks against the others' weights (0 means the default, 60)."`
}

var _ plugin.BufferedOutput = (*Output)(nil)

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "forward", Summary: "send events to Fluentd or Sluice over the Forward protocol",
		// Chunks by tag: each chunk is one PackedForward message.
		BufferDefaults: map[string]string{"": "tag"},
		// A chunk is sent, and its ack awaited, within Write.
		DoneWithDataOnReturn: true,
		Inject:               true,
		Sections: map[string]plugin.Section{"security": {New: func() any { return &Security{} }},
			"service_discovery": {New: newDiscoveryReference}},
		New: func() any {
			return &Output{AckResponseTimeout: 190 * time.Second, SendTimeout: 60 * time.Second, RecoverWait: 10 * time.Second,
				HeartbeatType: "transport", HeartbeatInterval: time.Second, PhiFailureDetector: true, PhiThreshold: 16,
				HardTimeout: 60 * time.Second, Compress: "text", TransportName: "tcp", TLSVersion: "TLSv1_2", TLSVerifyHostname: true,
				TLSCertEnterpriseStore: true, ReadIntervalMsec: 50, ReadLength: 512}
		}})
}

// Configure implements plugin.Configurer.
func (o *Output) Configure(c *plugin.Context) error {
	o.log = c.Logger
	if o.ObsoleteHost != "" || o.ObsoletePort != 0 {
		return fmt.Errorf("host and port are obsoleted parameters of the forward output (Fluentd refuses them too): use <server> host ... port ... </server>")
	}
	if o.TLSCertThumbprint != "" || o.TLSCertLogicalStore != "" {
		return fmt.Errorf("tls_cert_thumbprint and tls_cert_logical_store_name are for Windows only (Fluentd refuses them elsewhere too): use tls_ca_cert_path")
	}
	if len(o.TLSCertPath) > 0 {
		o.TLSCACertPath = o.TLSCertPath
	}
	if len(o.Servers) == 0 && len(o.ServiceDiscovery) == 0 {
		return fmt.Errorf("forward output needs at least one <server> or <service_discovery>")
	}
	if !c.ChunkKeys.Tag {
		return fmt.Errorf("forward output needs tag in the <buffer> chunk keys")
	}
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = o.SendTimeout
	}
	if o.DNSRoundRobin && o.HeartbeatType == "udp" {
		return fmt.Errorf("heartbeat_type udp is not available with dns_round_robin")
	}
	if o.Security != nil {
		o.security = &Security{}
		if err := config.Decode(o.Security, o.security); err != nil {
			return err
		}
		if err := o.security.validate(false); err != nil {
			return err
		}
	}
	o.fileCheck = fileCheckInterval
	for _, el := range o.ServiceDiscovery {
		d, err := decodeDiscovery(el)
		if err != nil {
			return err
		}
		o.discoveries = append(o.discoveries, d)
	}
	var known []ServerConfig
	known = append(known, o.Servers...)
	for _, d := range o.discoveries {
		known = append(known, d.static...)
	}
	for _, s := range known {
		if _, err := o.normalise(s); err != nil {
			return err
		}
	}
	if err := o.setServers(known); err != nil {
		return err
	}
	if o.TLSClientCertPath != "" && o.TLSClientKeyPath == "" {
		return fmt.Errorf("tls_client_cert_path needs tls_client_private_key_path")
	}
	return nil
}

// Init reads TLS material, optionally checks every server, and starts the
// heartbeat.
func (o *Output) Init(ctx context.Context) error {
	if o.TransportName == "tls" {
		cfg, err := transport.Client{MinVersion: o.TLSVersion, CAPaths: o.TLSCACertPath, CertPath: o.TLSClientCertPath,
			KeyPath: o.TLSClientKeyPath, KeyPassphrase: o.TLSClientKeyPassphrase, Insecure: o.TLSInsecureMode,
			SkipHostname: !o.TLSVerifyHostname}.Config()
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		o.tlsConf = cfg
	}
	if o.dynamicDiscovery() {
		servers, err := o.discover(ctx)
		if err != nil {
			o.log.Warn("service discovery failed at start", "err", err)
		}
		if len(servers) == 0 {
			return fmt.Errorf("forward output: service discovery found no server (%v)", err)
		}
		if err := o.setServers(servers); err != nil {
			return err
		}
	}
	if o.VerifyConnectionAtStart {
		for _, n := range o.nodeList() {
			fc, err := o.dial(ctx, n)
			if err != nil {
				return fmt.Errorf("verify_connection_at_startup: %s: %w", n.cfg.Name, err)
			}
			fc.nc.Close()
		}
	}
	o.stop = make(chan struct{})
	switch o.HeartbeatType {
	case "tcp", "udp":
		if o.HeartbeatType == "udp" {
			udp, err := net.ListenPacket("udp", ":0")
			if err != nil {
				return fmt.Errorf("heartbeat socket: %w", err)
			}
			o.udp = udp
			o.wg.Add(1)
			go o.udpReplies()
		}
		o.wg.Add(1)
		go o.heartbeat()
	}
	if o.dynamicDiscovery() {
		o.wg.Add(1)
		go o.watchDiscovery()
	}
	return nil
}

// Close implements plugin.Closer.
func (o *Output) Close(context.Context) error {
	if o.stop != nil {
		select {
		case <-o.stop:
		default:
			close(o.stop)
		}
	}
	if o.udp != nil {
		o.udp.Close()
	}
	o.wg.Wait()
	for _, n := range o.nodeList() {
		n.closeIdle()
	}
	return nil
}

// Write implements plugin.BufferedOutput.
func (o *Output) Write(ctx context.Context, c *plugin.Chunk) error {
	n, err := o.pick()
	if err != nil {
		return err
	}
	fc := n.take(o.KeepaliveTimeout)
	if fc == nil {
		if fc, err = o.dial(ctx, n); err != nil {
			o.failed(n, err)
			return fmt.Errorf("%s: %w", n.cfg.Name, err)
		}
	}
	stop := transport.CancelIO(ctx, fc.nc)
	err = o.send(fc, c)
	// spent: the runtime gave up on this write (its deadline, or the
	// shutdown's) and the connection's deadlines are gone.
	spent := !stop()
	if err != nil {
		fc.nc.Close()
		if spent {
			return fmt.Errorf("%s: %w (%v)", n.cfg.Name, ctx.Err(), err)
		}
		o.failed(n, err)
		return fmt.Errorf("%s: %w", n.cfg.Name, err)
	}
	n.succeeded(time.Now())
	if o.Keepalive && !spent {
		n.put(fc)
	} else {
		fc.nc.Close()
	}
	return nil
}

// pick chooses a server by weight among the available active ones, or
// among the available standbys when no active one is.
func (o *Output) pick() (*node, error) {
	now := time.Now()
	nodes := o.nodeList()
	for _, standby := range []bool{false, true} {
		total := 0
		for _, n := range nodes {
			if n.cfg.Standby == standby && o.usable(n, now) {
				total += n.cfg.Weight
			}
		}
		if total == 0 {
			continue
		}
		r := rand.IntN(total)
		for _, n := range nodes {
			if n.cfg.Standby == standby && o.usable(n, now) {
				if r < n.cfg.Weight {
					return n, nil
				}
				r -= n.cfg.Weight
			}
		}
	}
	return nil, errors.New("no nodes are available")
}

// usable reports whether n may take a chunk now. With tcp or udp
// heartbeats, a node whose heartbeats stopped (phi above phi_threshold, or
// silence past hard_timeout) is down; a node that is down comes back
// recover_wait after its heartbeats resume (tcp, udp) or after the failure
// (transport, none).
func (o *Output) usable(n *node, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if (o.HeartbeatType == "tcp" || o.HeartbeatType == "udp") && !n.phi.last.IsZero() {
		silent := now.Sub(n.phi.last) > o.HardTimeout
		if silent || (o.PhiFailureDetector && n.phi.phi(now) > float64(o.PhiThreshold)) {
			n.available = false
			return false
		}
	}
	if !n.available {
		if now.Before(n.recoverAt) {
			return false
		}
		n.available = true
	}
	return true
}

func (o *Output) failed(n *node, err error) {
	n.mu.Lock()
	wasUp := n.available
	n.available = false
	n.recoverAt = time.Now().Add(o.RecoverWait)
	n.mu.Unlock()
	n.closeIdle()
	if wasUp {
		o.log.Warn("detached forwarding server", "server", n.cfg.Name, "recover_wait", o.RecoverWait.String(), "err", err)
	}
}

// dial connects, upgrades to TLS and runs the handshake when configured.
func (o *Output) dial(ctx context.Context, n *node) (*fconn, error) {
	addr := n.addr
	if o.DNSRoundRobin {
		if ips, err := net.DefaultResolver.LookupHost(ctx, n.cfg.Host); err == nil && len(ips) > 0 {
			addr = net.JoinHostPort(ips[rand.IntN(len(ips))], strconv.Itoa(n.cfg.Port))
		}
	}
	d := net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if o.tlsConf != nil {
		cfg := o.tlsConf.Clone()
		cfg.ServerName = n.cfg.Host
		tc := tls.Client(nc, cfg)
		_ = tc.SetDeadline(time.Now().Add(o.ConnectTimeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		_ = tc.SetDeadline(time.Time{})
		nc = tc
	}
	fc := &fconn{nc: nc, created: time.Now()}
	if o.security != nil {
		if err := o.handshake(fc, n); err != nil {
			nc.Close()
			return nil, err
		}
	}
	return fc, nil
}

func (o *Output) handshake(fc *fconn, n *node) error {
	_ = fc.nc.SetDeadline(time.Now().Add(o.ConnectTimeout))
	defer func() { _ = fc.nc.SetDeadline(time.Time{}) }()
	msg, err := fc.readObject()
	if err != nil {
		return fmt.Errorf("waiting for HELO: %w", err)
	}
	h, err := parseHelo(msg)
	if err != nil {
		return err
	}
	key := o.security.SharedKey
	if n.cfg.SharedKey != "" {
		key = n.cfg.SharedKey
	}
	ca := clientAuth{hostname: o.security.SelfHostname, sharedKey: key, username: n.cfg.Username, password: n.cfg.Password}
	if _, err := fc.nc.Write(ca.appendPing(h)); err != nil {
		return err
	}
	if msg, err = fc.readObject(); err != nil {
		return fmt.Errorf("waiting for PONG: %w", err)
	}
	return ca.checkPong(msg)
}

// send writes one chunk as [tag, bin entries, option] and, with acks,
// waits for the server to confirm it.
func (o *Output) send(fc *fconn, c *plugin.Chunk) error {
	payload := c.Data
	if o.TimeAsInteger {
		payload = integerTimes(payload)
	}
	compressed := false
	if o.Compress == "gzip" {
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		if _, err := zw.Write(payload); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		payload, compressed = zb.Bytes(), true
	}
	head := msgp.AppendArrayHeader(fc.head[:0], 3)
	head = msgp.AppendString(head, c.Key.Tag)
	head = msgp.AppendBytesHeader(head, uint32(len(payload)))
	fc.head = head
	nopt := uint32(1)
	if o.RequireAckResponse {
		nopt++
	}
	if compressed {
		nopt++
	}
	opt := msgp.AppendMapHeader(fc.opt[:0], nopt)
	opt = msgp.AppendInt(msgp.AppendString(opt, "size"), c.Records)
	var chunkID string
	if o.RequireAckResponse {
		chunkID = base64.StdEncoding.EncodeToString(c.ID[:])
		opt = msgp.AppendString(msgp.AppendString(opt, "chunk"), chunkID)
	}
	if compressed {
		opt = msgp.AppendString(msgp.AppendString(opt, "compressed"), "gzip")
	}
	fc.opt = opt
	_ = fc.nc.SetWriteDeadline(time.Now().Add(o.SendTimeout))
	bufs := net.Buffers{head, payload, opt}
	if _, err := bufs.WriteTo(fc.nc); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if !o.RequireAckResponse || o.AckResponseTimeout == 0 {
		return nil
	}
	_ = fc.nc.SetReadDeadline(time.Now().Add(o.AckResponseTimeout))
	reply, err := fc.readObject()
	if err != nil {
		return fmt.Errorf("waiting for ack: %w", err)
	}
	v, ok := event.Record(reply).Get("ack")
	if b, isStr := v.Bytes(); !ok || !isStr || string(b) != chunkID {
		return fmt.Errorf("ack mismatch: sent chunk %s", chunkID)
	}
	return nil
}

// integerTimes rewrites entries with integer seconds for receivers that
// predate EventTime (time_as_integer).
func integerTimes(data []byte) []byte {
	var b event.Builder
	r := event.NewReader(data)
	for r.Next() {
		e := r.Entry()
		b.AppendTimeRecord(msgp.AppendInt64(nil, e.Time.Unix()), e.Record)
	}
	return b.Bytes()
}

// fconn is a connection to a server.
type fconn struct {
	nc       net.Conn
	created  time.Time
	lastUsed time.Time
	rbuf     []byte
	head     []byte
	opt      []byte
}

// readObject reads one msgpack value (a HELO, PONG or ack).
func (fc *fconn) readObject() ([]byte, error) {
	const maxReply = 64 << 10
	tmp := make([]byte, 512)
	for {
		if len(fc.rbuf) > 0 {
			rest, err := msgp.Skip(fc.rbuf)
			if err == nil {
				n := len(fc.rbuf) - len(rest)
				obj := append([]byte(nil), fc.rbuf[:n]...)
				fc.rbuf = append(fc.rbuf[:0], rest...)
				return obj, nil
			}
			if !errors.Is(err, msgp.ErrShortBytes) {
				return nil, protoErr("bad reply: %v", err)
			}
			if len(fc.rbuf) > maxReply {
				return nil, protoErr("reply larger than %d bytes", maxReply)
			}
		}
		n, err := fc.nc.Read(tmp)
		fc.rbuf = append(fc.rbuf, tmp[:n]...)
		if err != nil && n == 0 {
			return nil, err
		}
	}
}

// node is one <server> and its health.
// nodeList is the servers now.
func (o *Output) nodeList() []*node {
	if p := o.nodes.Load(); p != nil {
		return *p
	}
	return nil
}

// dynamicDiscovery reports whether a source's servers can change.
func (o *Output) dynamicDiscovery() bool {
	for _, d := range o.discoveries {
		if d.file != nil || d.srv != nil {
			return true
		}
	}
	return false
}

// normalise fills a server's defaults (port 24224, weight 60, its name)
// and checks it.
func (o *Output) normalise(s ServerConfig) (ServerConfig, error) {
	if s.Port == 0 {
		s.Port = 24224
	}
	if s.Weight == 0 {
		s.Weight = 60
	}
	if s.Weight < 0 || s.Port < 0 || s.Port > 65535 {
		return s, fmt.Errorf("server %s: bad port or weight", s.Host)
	}
	if s.Name == "" {
		s.Name = net.JoinHostPort(s.Host, strconv.Itoa(s.Port))
	}
	if (s.SharedKey != "" || s.Username != "") && o.security == nil {
		return s, fmt.Errorf("server %s: shared_key and username need a <security> section", s.Name)
	}
	return s, nil
}

// key identifies a server across discovery updates.
func (n *node) key() string { return n.addr + "|" + n.cfg.Name }

type node struct {
	cfg  ServerConfig
	addr string

	mu        sync.Mutex
	available bool      // guarded by mu
	recoverAt time.Time // guarded by mu
	phi       *phiDetector
	idle      []*fconn // guarded by mu; keepalive connections
}

func (n *node) succeeded(now time.Time) {
	n.mu.Lock()
	n.available = true
	n.mu.Unlock()
}

// maxIdle bounds the keepalive connections kept per server.
const maxIdle = 16

func (n *node) take(timeout time.Duration) *fconn {
	n.mu.Lock()
	defer n.mu.Unlock()
	for len(n.idle) > 0 {
		fc := n.idle[len(n.idle)-1]
		n.idle = n.idle[:len(n.idle)-1]
		if timeout > 0 && time.Since(fc.lastUsed) > timeout {
			fc.nc.Close()
			continue
		}
		return fc
	}
	return nil
}

func (n *node) put(fc *fconn) {
	fc.lastUsed = time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	if len(n.idle) >= maxIdle {
		fc.nc.Close()
		return
	}
	n.idle = append(n.idle, fc)
}

func (n *node) closeIdle() {
	n.mu.Lock()
	idle := n.idle
	n.idle = nil
	n.mu.Unlock()
	for _, fc := range idle {
		fc.nc.Close()
	}
}

// heartbeat probes every server each heartbeat_interval: a TCP connect
// (heartbeat_type tcp) or a 0x00 datagram answered by 0x00 (udp).
func (o *Output) heartbeat() {
	defer o.wg.Done()
	t := time.NewTicker(o.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
		for _, n := range o.nodeList() {
			switch o.HeartbeatType {
			case "tcp":
				c, err := net.DialTimeout("tcp", n.addr, o.HeartbeatInterval)
				if err == nil {
					c.Close()
					o.beat(n)
				}
			case "udp":
				if addr, err := net.ResolveUDPAddr("udp", n.addr); err == nil {
					_, _ = o.udp.WriteTo([]byte{0}, addr)
				}
			}
		}
	}
}

func (o *Output) udpReplies() {
	defer o.wg.Done()
	readDatagrams(o.udp, func(_ int, from net.Addr) {
		for _, n := range o.nodeList() {
			if addr, err := net.ResolveUDPAddr("udp", n.addr); err == nil && addr.String() == from.String() {
				o.beat(n)
			}
		}
	})
}

func (o *Output) beat(n *node) {
	now := time.Now()
	n.mu.Lock()
	n.phi.add(now)
	if !n.available && !n.recoverAt.After(now) {
		// The first heartbeat after a failure starts the recovery wait.
		n.recoverAt = now.Add(o.RecoverWait)
	}
	n.mu.Unlock()
}
