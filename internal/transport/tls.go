// Package transport reads the <transport> section (tcp or tls) that network
// inputs and outputs share, and builds their TLS configuration.
package transport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// Transport is the <transport> section: "tcp" (the default) or "tls".
type Transport struct {
	Protocol             string `conf:",arg" desc:"tcp (plain, the default) or tls."`
	CertPath             string `conf:"cert_path" desc:"The PEM certificate (chain) the server presents."`
	PrivateKeyPath       string `conf:"private_key_path" desc:"The PEM private key of cert_path."`
	PrivateKeyPassphrase string `conf:"private_key_passphrase" desc:"The passphrase of an encrypted private key."`
	CAPath               string `conf:"ca_path" desc:"The PEM CA certificates that client certificates must chain to (with client_cert_auth)."`
	ClientCertAuth       bool   `conf:"client_cert_auth" desc:"Require clients to present a certificate signed by ca_path."`
	Version              string `conf:"version" enum:"TLSv1_1,TLSv1_2,TLSv1_3" desc:"The lowest TLS version accepted, unless min_version is set."`
	MinVersion           string `conf:"min_version" enum:"TLSv1_1,TLSv1_2,TLSv1_3" desc:"The lowest TLS version accepted."`
	MaxVersion           string `conf:"max_version" enum:"TLSv1_1,TLSv1_2,TLSv1_3" desc:"The highest TLS version accepted."`
	Ciphers              string `conf:"ciphers" desc:"Accepted for Fluentd compatibility (OpenSSL cipher names); Go's own cipher suites for the version are used." ignored:"Go's cipher suites for the TLS version are used"`
	Insecure             bool   `conf:"insecure" desc:"Accept any certificate from the peer, without verification (tests only)."`
	// Fluentd's certificate generation: without cert_path, a server
	// certificate for this host is made at start and signed by this CA.
	CACertPath             string `conf:"ca_cert_path" desc:"Without cert_path: the PEM CA certificate that signs the server certificate made at start."`
	CAPrivateKeyPath       string `conf:"ca_private_key_path" desc:"The PEM private key of ca_cert_path."`
	CAPrivateKeyPassphrase string `conf:"ca_private_key_passphrase" desc:"The passphrase of an encrypted ca_private_key_path."`
	// Hostname is the name a generated certificate is for; the caller
	// sets it (the machine's host name).
	Hostname string `conf:"-"`
}

// Default is <transport tcp>.
func Default() Transport { return Transport{Protocol: "tcp", Version: "TLSv1_2"} }

// Versions maps Fluentd's TLS version names to Go's.
var Versions = map[string]uint16{"TLSv1_1": tls.VersionTLS11, "TLSv1_2": tls.VersionTLS12, "TLSv1_3": tls.VersionTLS13}

// Validate checks the section; server says which side uses it.
func (t *Transport) Validate(server bool) error {
	switch t.Protocol {
	case "tcp":
		return nil
	case "tls":
	default:
		return fmt.Errorf("<transport %s>: want tcp or tls", t.Protocol)
	}
	generate := t.CertPath == "" && t.CACertPath != ""
	if server && !generate && (t.CertPath == "" || t.PrivateKeyPath == "") {
		return fmt.Errorf("<transport tls> needs cert_path and private_key_path (or ca_cert_path and ca_private_key_path to make one)")
	}
	if generate && t.CAPrivateKeyPath == "" {
		return fmt.Errorf("<transport tls> ca_cert_path needs ca_private_key_path")
	}
	if t.ClientCertAuth && t.CAPath == "" {
		return fmt.Errorf("client_cert_auth needs ca_path")
	}
	// What is certain to fail at start is reported at check.
	for _, f := range []struct{ name, path string }{{"cert_path", t.CertPath}, {"private_key_path", t.PrivateKeyPath},
		{"ca_path", t.CAPath}, {"ca_cert_path", t.CACertPath}, {"ca_private_key_path", t.CAPrivateKeyPath}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("<transport tls> %s: %w", f.name, err)
		}
	}
	return nil
}

// ServerConfig reads the certificates of a server's <transport tls>; it
// is called at Init, not at check, and returns nil for tcp. Cipher names
// follow OpenSSL and are not mapped: Go's defaults are used (the min and
// max versions are honoured).
func (t *Transport) ServerConfig() (*tls.Config, error) {
	if t.Protocol != "tls" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: Versions[t.Version]}
	if t.MinVersion != "" {
		cfg.MinVersion = Versions[t.MinVersion]
	}
	if t.MaxVersion != "" {
		cfg.MaxVersion = Versions[t.MaxVersion]
	}
	switch {
	case t.CertPath != "":
		cert, err := LoadKeyPair(t.CertPath, t.PrivateKeyPath, t.PrivateKeyPassphrase)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	case t.CACertPath != "":
		cert, err := signedByCA(t.CACertPath, t.CAPrivateKeyPath, t.CAPrivateKeyPassphrase, t.Hostname)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if t.CAPath != "" {
		pool, err := LoadPool("ca_path", t.CAPath)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
	}
	if t.ClientCertAuth {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// Client is the TLS setup of a client, from its output's parameters
// (out_forward's tls_*; the HTTP outputs' ssl_* and tls_*).
type Client struct {
	// MinVersion is a Versions name; empty means TLSv1_2.
	MinVersion string
	// CAPaths are PEM files of the CAs to trust instead of the system's.
	CAPaths []string
	// CertPath, KeyPath and KeyPassphrase are the client certificate, for
	// servers that ask for one.
	CertPath, KeyPath, KeyPassphrase string
	// Insecure skips every check of the server's certificate.
	Insecure bool
	// SkipHostname checks the server's chain but not that it names the
	// host dialled (Fluentd's tls_verify_hostname false).
	SkipHostname bool
}

// Config reads the files and returns the client configuration.
func (c Client) Config() (*tls.Config, error) {
	version := c.MinVersion
	if version == "" {
		version = "TLSv1_2"
	}
	cfg := &tls.Config{MinVersion: Versions[version], InsecureSkipVerify: c.Insecure}
	if len(c.CAPaths) > 0 {
		pool, err := LoadPool("ca", c.CAPaths...)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if c.CertPath != "" {
		cert, err := LoadKeyPair(c.CertPath, c.KeyPath, c.KeyPassphrase)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if c.SkipHostname && !c.Insecure {
		// The standard check is both chain and name; do the chain alone.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = verifyChainOnly(cfg.RootCAs)
	}
	return cfg, nil
}

// verifyChainOnly checks the server's certificate chain but not its name.
func verifyChainOnly(roots *x509.CertPool) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("server sent no certificate")
		}
		opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
		for _, c := range cs.PeerCertificates[1:] {
			opts.Intermediates.AddCert(c)
		}
		_, err := cs.PeerCertificates[0].Verify(opts)
		return err
	}
}

// LoadPool reads PEM CA certificates; what names the parameter in errors.
func LoadPool(what string, paths ...string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		if !pool.AppendCertsFromPEM(data) {
			return nil, fmt.Errorf("%s %s: no PEM certificates", what, p)
		}
	}
	return pool, nil
}

// LoadKeyPair reads a PEM certificate and key; passphrase decrypts a key in
// legacy PEM encryption.
func LoadKeyPair(certPath, keyPath, passphrase string) (tls.Certificate, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("cert_path: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("private_key_path: %w", err)
	}
	if passphrase != "" {
		block, _ := pem.Decode(keyPEM)
		if block == nil {
			return tls.Certificate{}, fmt.Errorf("private_key_path %s: not PEM", keyPath)
		}
		//lint:ignore SA1019 legacy encrypted PEM is what Fluentd's users have
		der, err := x509.DecryptPEMBlock(block, []byte(passphrase)) //nolint:staticcheck
		if err != nil {
			return tls.Certificate{}, fmt.Errorf("private_key_path %s: decrypt: %w (only legacy PEM encryption is supported)", keyPath, err)
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der})
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s / key %s: %w", certPath, keyPath, err)
	}
	return cert, nil
}

// signedByCA makes a server certificate for hostname, valid for ten years
// as Fluentd's generated ones are, signed by the CA in caCert and caKey.
func signedByCA(caCert, caKey, passphrase, hostname string) (tls.Certificate, error) {
	ca, err := LoadKeyPair(caCert, caKey, passphrase)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca_cert_path: %w", err)
	}
	caX509, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("ca_cert_path: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	if hostname == "" {
		hostname, _ = os.Hostname()
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: hostname},
		DNSNames:     []string{hostname},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caX509, &key.PublicKey, ca.PrivateKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("signing a certificate with ca_cert_path: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der, ca.Certificate[0]}, PrivateKey: key}, nil
}
