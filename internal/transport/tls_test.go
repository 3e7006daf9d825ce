package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeCA writes a self-signed CA's certificate and key under dir.
func writeCA(t *testing.T, dir string) (certPath, keyPath string, pool *x509.CertPool) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certPath, keyPath = filepath.Join(dir, "ca.crt"), filepath.Join(dir, "ca.key")
	os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	c, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(c)
	return certPath, keyPath, pool
}

// TestCertificateFromCA: with ca_cert_path and no cert_path, the server
// presents a certificate for its host name that chains to the CA, as
// Fluentd's generated one does; a missing file is reported at check.
func TestCertificateFromCA(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey, pool := writeCA(t, dir)
	tr := Transport{Protocol: "tls", Version: "TLSv1_2", CACertPath: caCert, CAPrivateKeyPath: caKey, Hostname: "aggregator-0"}
	if err := tr.Validate(true); err != nil {
		t.Fatal(err)
	}
	cfg, err := tr.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(),
		&tls.Config{RootCAs: pool, ServerName: "aggregator-0"})
	if err != nil {
		t.Fatalf("a client trusting the CA: %v", err)
	}
	conn.Close()

	missing := Transport{Protocol: "tls", CertPath: filepath.Join(dir, "nope.crt"), PrivateKeyPath: caKey}
	if err := missing.Validate(true); err == nil || !strings.Contains(err.Error(), "cert_path") {
		t.Errorf("a missing cert_path at check: %v", err)
	}
	if err := (&Transport{Protocol: "tls", CACertPath: caCert}).Validate(true); err == nil || !strings.Contains(err.Error(), "ca_private_key_path") {
		t.Errorf("ca_cert_path alone: %v", err)
	}
}

// TestGeneratedCertificateParameters: generate_* shape the certificate
// made at start (signed by the CA: subject, key length, lifetime,
// digest); insecure with no certificate makes a self-signed one, as
// Fluentd does; what Sluice cannot honour is refused at check.
func TestGeneratedCertificateParameters(t *testing.T) {
	dir := t.TempDir()
	caCert, caKey, _ := writeCA(t, dir)
	tr := Default()
	tr.Protocol, tr.CACertPath, tr.CAPrivateKeyPath, tr.Hostname = "tls", caCert, caKey, "aggregator-0"
	tr.GenerateKeyLength, tr.GenerateCountry, tr.GenerateCommonName = 3072, "JP", "logs.example.internal"
	tr.GenerateExpiration, tr.GenerateDigest = 48*time.Hour, "sha384"
	if err := tr.Validate(true); err != nil {
		t.Fatal(err)
	}
	cfg, err := tr.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if leaf.Subject.CommonName != "logs.example.internal" || leaf.DNSNames[0] != "logs.example.internal" ||
		leaf.Subject.Country[0] != "JP" || leaf.Subject.Province[0] != "CA" || leaf.SignatureAlgorithm != x509.ECDSAWithSHA384 {
		t.Errorf("subject %v, names %v, signature %v", leaf.Subject, leaf.DNSNames, leaf.SignatureAlgorithm)
	}
	if life := leaf.NotAfter.Sub(time.Now()); life > 48*time.Hour || life < 47*time.Hour {
		t.Errorf("valid for %v, want 48h", life)
	}
	if bits := cfg.Certificates[0].PrivateKey.(interface{ Size() int }).Size() * 8; bits != 3072 {
		t.Errorf("key of %d bits, want 3072", bits)
	}

	self := Default()
	self.Protocol, self.Insecure, self.Hostname = "tls", true, "agg"
	if err := self.Validate(true); err != nil {
		t.Fatalf("insecure without a certificate: %v", err)
	}
	cfg, err = self.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(cfg.Certificates[0].Certificate[0])
	if leaf.Issuer.CommonName != "agg" || leaf.Subject.CommonName != "agg" {
		t.Errorf("self-signed certificate issued by %v for %v", leaf.Issuer, leaf.Subject)
	}

	for _, tc := range []struct {
		mod  func(*Transport)
		want string
	}{
		{func(t *Transport) { t.CertVerifier = "/etc/fluent/verifier.rb" }, "cert_verifier loads Ruby code"},
		{func(t *Transport) { t.GenerateDigest = "sha1" }, "refuses SHA-1"},
		{func(t *Transport) { t.EnsureFIPS = true }, "not in FIPS 140-3 mode"},
		{func(t *Transport) { t.Insecure = false }, "insecure true for a self-signed one"},
	} {
		bad := self
		tc.mod(&bad)
		if err := bad.Validate(true); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}

// TestTuneSetsSocketOptions: receive_buffer_size reaches the accepted
// socket's SO_RCVBUF (Linux reports twice the size asked for).
func TestTuneSetsSocketOptions(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	rcvbuf := func() int {
		raw, err := server.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var v int
		_ = raw.Control(func(fd uintptr) { v, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF) })
		return v
	}
	before := rcvbuf()
	tr := Default()
	tr.ReceiveBufferSize = 12345
	tr.Tune(server, 0)
	if got := rcvbuf(); got == before || got < 12345 {
		t.Errorf("SO_RCVBUF %d (was %d), want about 12345", got, before)
	}
}
