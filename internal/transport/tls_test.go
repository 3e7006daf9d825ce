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
