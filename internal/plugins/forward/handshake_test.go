package forward

import (
	"net"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func handshake(t *testing.T, sec *Security, client clientAuth, peer string) (serverOK bool, clientErr error) {
	t.Helper()
	if err := sec.validate(true); err != nil {
		t.Fatal(err)
	}
	if err := sec.resolve(); err != nil {
		t.Fatal(err)
	}
	srv := newServerAuth(sec, true)
	h, err := parseHelo(srv.appendHelo(nil))
	if err != nil {
		t.Fatal(err)
	}
	pong, ok, _ := srv.check(client.appendPing(h), net.ParseIP(peer))
	return ok, client.checkPong(pong)
}

func TestHandshake(t *testing.T) {
	base := func() *Security {
		return &Security{SelfHostname: "server", SharedKey: "secret", AllowAnonymousSource: true}
	}
	cases := []struct {
		name     string
		sec      func() *Security
		client   clientAuth
		peer     string
		accepted bool
	}{
		{"shared key", base, clientAuth{hostname: "c", sharedKey: "secret"}, "10.0.0.1", true},
		{"wrong key", base, clientAuth{hostname: "c", sharedKey: "guess"}, "10.0.0.1", false},
		{"user auth", func() *Security {
			s := base()
			s.UserAuth = true
			s.Users = []User{{Username: "alice", Password: "pw"}}
			return s
		}, clientAuth{hostname: "c", sharedKey: "secret", username: "alice", password: "pw"}, "10.0.0.1", true},
		{"bad password", func() *Security {
			s := base()
			s.UserAuth = true
			s.Users = []User{{Username: "alice", Password: "pw"}}
			return s
		}, clientAuth{hostname: "c", sharedKey: "secret", username: "alice", password: "nope"}, "10.0.0.1", false},
		{"per-client key", func() *Security {
			s := base()
			s.Clients = []ClientRule{{Network: "192.168.0.0/16", SharedKey: "lan-key"}}
			return s
		}, clientAuth{hostname: "c", sharedKey: "lan-key"}, "192.168.3.4", true},
		{"anonymous denied", func() *Security {
			s := base()
			s.AllowAnonymousSource = false
			s.Clients = []ClientRule{{Network: "192.168.0.0/16"}}
			return s
		}, clientAuth{hostname: "c", sharedKey: "secret"}, "10.0.0.1", false},
		{"user not allowed for this client", func() *Security {
			s := base()
			s.UserAuth = true
			s.Users = []User{{Username: "alice", Password: "pw"}, {Username: "bob", Password: "pw"}}
			s.Clients = []ClientRule{{Host: "127.0.0.1", Users: []string{"bob"}}}
			return s
		}, clientAuth{hostname: "c", sharedKey: "secret", username: "alice", password: "pw"}, "127.0.0.1", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ok, clientErr := handshake(t, tc.sec(), tc.client, tc.peer)
			if ok != tc.accepted || (clientErr == nil) != tc.accepted {
				t.Errorf("server accepted %v, client error %v; want accepted %v", ok, clientErr, tc.accepted)
			}
		})
	}
}

func TestClientRejectsServerWithoutKey(t *testing.T) {
	srv := newServerAuth(&Security{SelfHostname: "evil", SharedKey: "other"}, true)
	client := clientAuth{hostname: "c", sharedKey: "secret"}
	h, _ := parseHelo(srv.appendHelo(nil))
	ping := client.appendPing(h)
	p, _ := parsePing(ping)
	// A server that does not know the key cannot produce a valid PONG.
	forged := srv.appendPong(p.salt, []byte("other"), true, "")
	if err := client.checkPong(forged); err == nil {
		t.Fatal("client accepted a server that does not know the shared key")
	}
}

func FuzzHandshakeMessages(f *testing.F) {
	sec := &Security{SelfHostname: "s", SharedKey: "k", UserAuth: true, Users: []User{{Username: "u", Password: "p"}}}
	srv := newServerAuth(sec, true)
	client := clientAuth{hostname: "c", sharedKey: "k", username: "u", password: "p"}
	helo := srv.appendHelo(nil)
	h, _ := parseHelo(helo)
	ping := client.appendPing(h)
	pong, _, _ := srv.check(ping, nil)
	f.Add(helo)
	f.Add(ping)
	f.Add(pong)
	f.Add(msgp.AppendArrayHeader(nil, 6))
	f.Fuzz(func(t *testing.T, msg []byte) {
		_, _, _ = srv.check(msg, net.ParseIP("127.0.0.1"))
		_, _ = parseHelo(msg)
		_ = client.checkPong(msg)
	})
}
