package forward

import (
	"crypto/rand"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net"
	"slices"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
)

// The handshake of the Forward protocol v1, when <security> is set:
//
//	server → client  ["HELO", {"nonce": N, "auth": A, "keepalive": bool}]
//	client → server  ["PING", client_hostname, salt, sha512_hex(salt+client_hostname+N+shared_key),
//	                  username, sha512_hex(A+username+password)]    (the last two "" without user auth)
//	server → client  ["PONG", ok, reason, server_hostname, sha512_hex(salt+server_hostname+N+shared_key)]
//
// Both sides prove they know shared_key; the server may also check a user.
// On failure the server sends PONG with ok false and a reason, then closes.

// Security is the <security> section of in_forward and out_forward.
type Security struct {
	SelfHostname         string        `conf:"self_hostname,required" desc:"The host name this side gives in the handshake (may be empty, as in Fluentd)."`
	SharedKey            string        `conf:"shared_key" desc:"The key both sides must share."`
	UserAuth             bool          `conf:"user_auth" desc:"Also require a user name and password from clients (in_forward)."`
	AllowAnonymousSource bool          `conf:"allow_anonymous_source" desc:"Accept clients that no <client> section names (in_forward)."`
	Users                []User        `section:"user" desc:"A user that may connect, with user_auth."`
	Clients              []ClientRule  `section:"client" desc:"A client that may connect, by host or network, with its own shared key and users."`
	clients              []clientMatch // resolved at Init
}

// User is a <user> of in_forward's <security>.
type User struct {
	Username string `conf:"username,required" desc:"The user's name."`
	Password string `conf:"password,required" desc:"The user's password."`
}

// ClientRule is a <client> of in_forward's <security>: which peers may
// connect and with which shared key and users.
type ClientRule struct {
	Host      string   `conf:"host" desc:"The client's host name."`
	Network   string   `conf:"network" desc:"The client's network, as an address or CIDR range."`
	SharedKey string   `conf:"shared_key" desc:"The key both sides must share."`
	Users     []string `conf:"users" desc:"The users this client may authenticate as (all when empty)."`
}

type clientMatch struct {
	nets      []*net.IPNet
	sharedKey string
	users     []string
}

func (s *Security) validate(server bool) error {
	if s.SharedKey == "" {
		return fmt.Errorf("<security> needs shared_key")
	}
	if !server && (len(s.Users) > 0 || len(s.Clients) > 0) {
		return fmt.Errorf("<user> and <client> belong to in_forward's <security>")
	}
	if s.UserAuth && len(s.Users) == 0 {
		return fmt.Errorf("user_auth is on but there is no <user>")
	}
	for _, c := range s.Clients {
		if (c.Host == "") == (c.Network == "") {
			return fmt.Errorf("<client> needs exactly one of host and network")
		}
		if c.Network != "" {
			if _, _, err := net.ParseCIDR(c.Network); err != nil {
				if net.ParseIP(c.Network) == nil {
					return fmt.Errorf("<client> network %q: %v", c.Network, err)
				}
			}
		}
	}
	return nil
}

// resolve turns <client> rules into address sets; host names are looked up
// once, at start.
func (s *Security) resolve() error {
	s.clients = nil
	for _, c := range s.Clients {
		m := clientMatch{sharedKey: c.SharedKey, users: c.Users}
		switch {
		case c.Network != "":
			if _, n, err := net.ParseCIDR(c.Network); err == nil {
				m.nets = append(m.nets, n)
			} else {
				m.nets = append(m.nets, hostNet(net.ParseIP(c.Network)))
			}
		default:
			ips := []net.IP{net.ParseIP(c.Host)}
			if ips[0] == nil {
				addrs, err := net.LookupIP(c.Host)
				if err != nil {
					return fmt.Errorf("<client> host %q: %w", c.Host, err)
				}
				ips = addrs
			}
			for _, ip := range ips {
				m.nets = append(m.nets, hostNet(ip))
			}
		}
		s.clients = append(s.clients, m)
	}
	return nil
}

func hostNet(ip net.IP) *net.IPNet {
	if ip4 := ip.To4(); ip4 != nil {
		return &net.IPNet{IP: ip4, Mask: net.CIDRMask(32, 32)}
	}
	return &net.IPNet{IP: ip, Mask: net.CIDRMask(128, 128)}
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func sha512Hex(parts ...[]byte) string {
	h := sha512.New()
	for _, p := range parts {
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func equalDigest(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// serverAuth is one connection's server side of the handshake.
type serverAuth struct {
	sec       *Security
	nonce     []byte
	authSalt  []byte // empty without user auth
	keepalive bool
}

func newServerAuth(sec *Security, keepalive bool) *serverAuth {
	a := &serverAuth{sec: sec, nonce: randomBytes(16), keepalive: keepalive}
	if sec.UserAuth {
		a.authSalt = randomBytes(16)
	}
	return a
}

// appendHelo appends the HELO message.
func (a *serverAuth) appendHelo(dst []byte) []byte {
	dst = msgp.AppendArrayHeader(dst, 2)
	dst = msgp.AppendString(dst, "HELO")
	dst = msgp.AppendMapHeader(dst, 3)
	dst = msgp.AppendString(dst, "nonce")
	dst = msgp.AppendBytes(dst, a.nonce)
	dst = msgp.AppendString(dst, "auth")
	dst = msgp.AppendBytes(dst, a.authSalt)
	dst = msgp.AppendString(dst, "keepalive")
	return msgp.AppendBool(dst, a.keepalive)
}

// ping is a decoded PING.
type ping struct {
	hostname, salt, digest, username, password []byte
}

func parsePing(msg []byte) (ping, error) {
	var p ping
	n, b, err := msgp.ReadArrayHeaderBytes(msg)
	if err != nil || n != 6 {
		return p, protoErr("expected PING, an array of 6")
	}
	var typ []byte
	if typ, b, err = readStrOrBin(b); err != nil || string(typ) != "PING" {
		return p, protoErr("expected PING")
	}
	for _, dst := range []*[]byte{&p.hostname, &p.salt, &p.digest, &p.username, &p.password} {
		if *dst, b, err = readStrOrBin(b); err != nil {
			return p, protoErr("malformed PING")
		}
	}
	return p, nil
}

func readStrOrBin(b []byte) ([]byte, []byte, error) {
	if msgp.NextType(b) == msgp.BinType {
		return msgp.ReadBytesZC(b)
	}
	return msgp.ReadStringZC(b)
}

// check verifies a PING from peer and returns the PONG to send and whether
// the client is accepted.
func (a *serverAuth) check(msg []byte, peer net.IP) (pong []byte, ok bool, reason string) {
	p, err := parsePing(msg)
	if err != nil {
		return a.appendPong(nil, nil, false, err.Error()), false, err.Error()
	}
	sharedKey := a.sec.SharedKey
	var allowedUsers []string
	matched := false
	for _, c := range a.sec.clients {
		for _, n := range c.nets {
			if peer != nil && n.Contains(peer) {
				matched = true
				break
			}
		}
		if matched {
			if c.sharedKey != "" {
				sharedKey = c.sharedKey
			}
			allowedUsers = c.users
			break
		}
	}
	fail := func(reason string) ([]byte, bool, string) {
		return a.appendPong(nil, nil, false, reason), false, reason
	}
	if !matched && len(a.sec.clients) > 0 && !a.sec.AllowAnonymousSource {
		return fail(fmt.Sprintf("anonymous source host '%s' denied", peer))
	}
	want := sha512Hex(p.salt, p.hostname, a.nonce, []byte(sharedKey))
	if !equalDigest(string(p.digest), want) {
		return fail("shared_key mismatch")
	}
	if a.sec.UserAuth {
		found := false
		for _, u := range a.sec.Users {
			if len(allowedUsers) > 0 && !slices.Contains(allowedUsers, u.Username) {
				continue
			}
			if u.Username == string(p.username) &&
				equalDigest(string(p.password), sha512Hex(a.authSalt, p.username, []byte(u.Password))) {
				found = true
				break
			}
		}
		if !found {
			return fail("username/password mismatch")
		}
	}
	key := []byte(sharedKey)
	return a.appendPong(p.salt, key, true, ""), true, ""
}

func (a *serverAuth) appendPong(salt, sharedKey []byte, ok bool, reason string) []byte {
	dst := msgp.AppendArrayHeader(nil, 5)
	dst = msgp.AppendString(dst, "PONG")
	dst = msgp.AppendBool(dst, ok)
	dst = msgp.AppendString(dst, reason)
	dst = msgp.AppendString(dst, a.sec.SelfHostname)
	digest := ""
	if ok {
		digest = sha512Hex(salt, []byte(a.sec.SelfHostname), a.nonce, sharedKey)
	}
	return msgp.AppendString(dst, digest)
}

// helo is a decoded HELO, for the client side.
type helo struct {
	nonce, auth []byte
	keepalive   bool
}

func parseHelo(msg []byte) (helo, error) {
	h := helo{keepalive: true}
	n, b, err := msgp.ReadArrayHeaderBytes(msg)
	if err != nil || n != 2 {
		return h, protoErr("expected HELO, an array of 2")
	}
	var typ []byte
	if typ, b, err = readStrOrBin(b); err != nil || string(typ) != "HELO" {
		return h, protoErr("expected HELO")
	}
	opts := b
	if msgp.NextType(opts) != msgp.MapType {
		return h, protoErr("HELO options are not a map")
	}
	if _, err := msgp.Skip(opts); err != nil {
		return h, protoErr("malformed HELO options")
	}
	rec := event.Record(opts)
	if v, ok := rec.Get("nonce"); ok {
		h.nonce, _ = v.Bytes()
	}
	if v, ok := rec.Get("auth"); ok {
		h.auth, _ = v.Bytes()
	}
	if v, ok := rec.Get("keepalive"); ok {
		if kb, _, err := msgp.ReadBoolBytes(v); err == nil {
			h.keepalive = kb
		}
	}
	return h, nil
}

// clientAuth is a connection's client side of the handshake.
type clientAuth struct {
	hostname, sharedKey, username, password string
	salt                                    []byte
	nonce                                   []byte
}

func (c *clientAuth) appendPing(h helo) []byte {
	c.salt = randomBytes(16)
	c.nonce = h.nonce
	dst := msgp.AppendArrayHeader(nil, 6)
	dst = msgp.AppendString(dst, "PING")
	dst = msgp.AppendString(dst, c.hostname)
	dst = msgp.AppendBytes(dst, c.salt)
	dst = msgp.AppendString(dst, sha512Hex(c.salt, []byte(c.hostname), h.nonce, []byte(c.sharedKey)))
	if len(h.auth) == 0 {
		dst = msgp.AppendString(dst, "")
		return msgp.AppendString(dst, "")
	}
	dst = msgp.AppendString(dst, c.username)
	return msgp.AppendString(dst, sha512Hex(h.auth, []byte(c.username), []byte(c.password)))
}

// checkPong verifies the server's PONG, including its proof of the key.
func (c *clientAuth) checkPong(msg []byte) error {
	n, b, err := msgp.ReadArrayHeaderBytes(msg)
	if err != nil || n != 5 {
		return protoErr("expected PONG, an array of 5")
	}
	var typ, reason, host, digest []byte
	var ok bool
	if typ, b, err = readStrOrBin(b); err != nil || string(typ) != "PONG" {
		return protoErr("expected PONG")
	}
	if ok, b, err = msgp.ReadBoolBytes(b); err != nil {
		return protoErr("malformed PONG")
	}
	if reason, b, err = readStrOrBin(b); err != nil {
		return protoErr("malformed PONG")
	}
	if host, b, err = readStrOrBin(b); err != nil {
		return protoErr("malformed PONG")
	}
	if digest, _, err = readStrOrBin(b); err != nil {
		return protoErr("malformed PONG")
	}
	if !ok {
		return fmt.Errorf("%w: authentication refused by server: %s", ErrProtocol, reason)
	}
	if !equalDigest(string(digest), sha512Hex(c.salt, host, c.nonce, []byte(c.sharedKey))) {
		return fmt.Errorf("%w: server %q does not know the shared key", ErrProtocol, host)
	}
	return nil
}
