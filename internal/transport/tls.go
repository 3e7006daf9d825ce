// Package transport reads the <transport> section (tcp or tls) that network
// inputs and outputs share, and builds their TLS configuration.
package transport

import (
	"crypto/ecdsa"
	"crypto/fips140"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sluice-log/sluice/internal/config"
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
	// How a certificate is made (signed by ca_cert_path, or self-signed
	// with insecure and no certificate given), as Fluentd's generate_*.
	GenerateKeyLength  int           `conf:"generate_private_key_length" desc:"The RSA key length of a certificate made at start."`
	GenerateCountry    string        `conf:"generate_cert_country" desc:"The country (C) of a certificate made at start."`
	GenerateState      string        `conf:"generate_cert_state" desc:"The state (ST) of a certificate made at start."`
	GenerateLocality   string        `conf:"generate_cert_locality" desc:"The locality (L) of a certificate made at start."`
	GenerateCommonName string        `conf:"generate_cert_common_name" desc:"The common name (CN, and DNS name) of a certificate made at start; the host name by default."`
	GenerateExpiration time.Duration `conf:"generate_cert_expiration" desc:"How long a certificate made at start is valid."`
	GenerateDigest     string        `conf:"generate_cert_digest" enum:"sha1,sha256,sha384,sha512" desc:"The digest a certificate made at start is signed with (sha1 is refused: Go's TLS does not accept it)."`
	CertVerifier       string        `conf:"cert_verifier" desc:"Refused: Fluentd loads this Ruby file to verify client certificates; use client_cert_auth with ca_path."`
	EnsureFIPS         bool          `conf:"ensure_fips" desc:"Refuse to start unless Go's cryptography runs in FIPS 140-3 mode (GODEBUG=fips140=on), as Fluentd refuses without OpenSSL's FIPS mode."`
	// Socket options of accepted connections.
	LingerTimeout     int         `conf:"linger_timeout" desc:"SO_LINGER seconds for closed connections (0: the kernel's default)."`
	ReceiveBufferSize config.Size `conf:"receive_buffer_size" desc:"SO_RCVBUF of accepted connections (0: the kernel's default)."`
	// Hostname is the name a generated certificate is for; the caller
	// sets it (the machine's host name).
	Hostname string `conf:"-"`
}

// Default is <transport tcp>.
func Default() Transport {
	return Transport{Protocol: "tcp", Version: "TLSv1_2", GenerateKeyLength: 2048, GenerateCountry: "US", GenerateState: "CA",
		GenerateLocality: "Mountain View", GenerateExpiration: 10 * 365 * 24 * time.Hour, GenerateDigest: "sha256"}
}

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
	if t.CertVerifier != "" {
		return fmt.Errorf("<transport tls> cert_verifier loads Ruby code, which Sluice cannot run; verify clients with client_cert_auth and ca_path")
	}
	if t.EnsureFIPS && !fips140.Enabled() {
		return fmt.Errorf("<transport tls> ensure_fips: Go's cryptography is not in FIPS 140-3 mode; start Sluice with GODEBUG=fips140=on")
	}
	if t.GenerateDigest == "sha1" {
		return fmt.Errorf("<transport tls> generate_cert_digest sha1: Go's TLS refuses SHA-1 certificates; use sha256")
	}
	generate := t.CertPath == "" && t.CACertPath != ""
	selfSigned := t.CertPath == "" && t.CACertPath == "" && t.Insecure
	if server && !generate && !selfSigned && (t.CertPath == "" || t.PrivateKeyPath == "") {
		return fmt.Errorf("<transport tls> needs cert_path and private_key_path, ca_cert_path and ca_private_key_path to make one, or insecure true for a self-signed one")
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

// Tune sets the section's socket options on an accepted connection;
// lingerDefault is the plugin's own linger_timeout, which the section's
// overrides (Fluentd moved the option into <transport>).
func (t *Transport) Tune(c net.Conn, lingerDefault int) {
	tcp, ok := c.(*net.TCPConn)
	if !ok {
		return
	}
	linger := lingerDefault
	if t.LingerTimeout > 0 {
		linger = t.LingerTimeout
	}
	if linger > 0 {
		_ = tcp.SetLinger(linger)
	}
	if t.ReceiveBufferSize > 0 {
		_ = tcp.SetReadBuffer(int(t.ReceiveBufferSize))
	}
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
		ca, err := LoadKeyPair(t.CACertPath, t.CAPrivateKeyPath, t.CAPrivateKeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("ca_cert_path: %w", err)
		}
		cert, err := t.generate(&ca)
		if err != nil {
			return nil, fmt.Errorf("signing a certificate with ca_cert_path: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case t.Insecure:
		// Fluentd's insecure server: a self-signed certificate, which
		// clients accept only with their verification off.
		cert, err := t.generate(nil)
		if err != nil {
			return nil, fmt.Errorf("making a self-signed certificate: %w", err)
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

// PEMFiles lists the certificate files (.pem, .crt) of a CA directory, as
// OpenSSL's CApath and Ruby's ca_path take them.
func PEMFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if name := e.Name(); e.Type().IsRegular() && (strings.HasSuffix(name, ".pem") || strings.HasSuffix(name, ".crt")) {
			out = append(out, filepath.Join(dir, name))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no .pem or .crt file", dir)
	}
	return out, nil
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

// generate makes the server certificate of the generate_* parameters for
// t.Hostname (or generate_cert_common_name): signed by ca, or self-signed
// when ca is nil.
func (t *Transport) generate(ca *tls.Certificate) (tls.Certificate, error) {
	bits := t.GenerateKeyLength
	if bits == 0 {
		bits = 2048
	}
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	name := t.GenerateCommonName
	if name == "" {
		name = t.Hostname
	}
	if name == "" {
		name, _ = os.Hostname()
	}
	life := t.GenerateExpiration
	if life <= 0 {
		life = 10 * 365 * 24 * time.Hour
	}
	subject := pkix.Name{CommonName: name}
	for _, f := range []struct {
		v   string
		dst *[]string
	}{{t.GenerateCountry, &subject.Country}, {t.GenerateState, &subject.Province}, {t.GenerateLocality, &subject.Locality}} {
		if f.v != "" {
			*f.dst = []string{f.v}
		}
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		DNSNames:     []string{name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(life),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	parent, signer, chain := tmpl, any(key), [][]byte(nil)
	if ca != nil {
		caX509, err := x509.ParseCertificate(ca.Certificate[0])
		if err != nil {
			return tls.Certificate{}, err
		}
		parent, signer, chain = caX509, ca.PrivateKey, ca.Certificate[:1]
	}
	tmpl.SignatureAlgorithm = signatureAlgorithm(signer, t.GenerateDigest)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: append([][]byte{der}, chain...), PrivateKey: key}, nil
}

// signatureAlgorithm is generate_cert_digest for the signer's key type;
// x509's default for the key when the digest is unset.
func signatureAlgorithm(signer any, digest string) x509.SignatureAlgorithm {
	algs := map[string][2]x509.SignatureAlgorithm{
		"sha256": {x509.SHA256WithRSA, x509.ECDSAWithSHA256},
		"sha384": {x509.SHA384WithRSA, x509.ECDSAWithSHA384},
		"sha512": {x509.SHA512WithRSA, x509.ECDSAWithSHA512},
	}
	pair, ok := algs[digest]
	if !ok {
		return x509.UnknownSignatureAlgorithm
	}
	switch signer.(type) {
	case *rsa.PrivateKey:
		return pair[0]
	case *ecdsa.PrivateKey:
		return pair[1]
	}
	return x509.UnknownSignatureAlgorithm
}
