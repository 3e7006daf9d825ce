// Package kafka holds the kafka2 output (and rdkafka2, its alias) with
// fluent-plugin-kafka's parameters, on franz-go.
package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/sluice-log/sluice/internal/transport"
)

// Connection is the brokers, TLS and SASL parameters fluent-plugin-kafka's
// plugins share (its SSLSettings and SaslSettings).
type Connection struct {
	Brokers        []string      `conf:"brokers" desc:"The seed brokers, host:port, comma-separated."`
	ClientID       string        `conf:"client_id" desc:"The client ID the brokers see (and log)."`
	ConnectTimeout time.Duration `conf:"connect_timeout" desc:"How long connecting to a broker may take."`
	SocketTimeout  time.Duration `conf:"socket_timeout" desc:"How long a request may wait for its response, beyond the request's own timeout."`

	SSLCACert                string `conf:"ssl_ca_cert" desc:"A PEM file of the CA (or CAs) that signed the brokers' certificates; setting any ssl_ parameter turns TLS on."`
	SSLClientCert            string `conf:"ssl_client_cert" desc:"A PEM client certificate, for brokers that ask for one."`
	SSLClientCertKey         string `conf:"ssl_client_cert_key" desc:"The client certificate's PEM private key."`
	SSLClientCertKeyPassword string `conf:"ssl_client_cert_key_password" desc:"The passphrase of an encrypted ssl_client_cert_key."`
	SSLClientCertChain       string `conf:"ssl_client_cert_chain" desc:"Accepted for fluent-plugin-kafka compatibility." ignored:"put the intermediate certificates after the client certificate in ssl_client_cert"`
	SSLCACertsFromSystem     bool   `conf:"ssl_ca_certs_from_system" desc:"Trust the system's CAs and turn TLS on (also the case when ssl_ca_cert is unset and TLS is on)."`
	SSLVerifyHostname        bool   `conf:"ssl_verify_hostname" desc:"Check that the broker's certificate names the host dialled."`
	Username                 string `conf:"username" desc:"The SASL user: PLAIN, or SCRAM with scram_mechanism."`
	Password                 string `conf:"password" desc:"The SASL password."`
	ScramMechanism           string `conf:"scram_mechanism" desc:"sha256 or sha512 for SASL/SCRAM; unset means SASL/PLAIN."`
	SASLOverSSL              bool   `conf:"sasl_over_ssl" desc:"With SASL, connect over TLS (false: SASL over plain TCP)."`
	Principal                string `conf:"principal" desc:"The Kerberos principal of SASL/GSSAPI; Sluice refuses GSSAPI."`
	Keytab                   string `conf:"keytab" desc:"The Kerberos keytab of SASL/GSSAPI; Sluice refuses GSSAPI."`
	ServiceName              string `conf:"service_name" desc:"The Kerberos service name of SASL/GSSAPI." ignored:"GSSAPI is refused (principal)"`
	GetKafkaClientLog        bool   `conf:"get_kafka_client_log" desc:"Log the Kafka client's own messages (at debug level)."`
}

func defaultConnection() Connection {
	return Connection{Brokers: []string{"localhost:9092"}, ClientID: "fluentd", SSLVerifyHostname: true, SASLOverSSL: true}
}

// check refuses what cannot work, at configuration time.
func (c *Connection) check() error {
	if len(c.Brokers) == 0 {
		return fmt.Errorf("brokers: no brokers given; at least one is needed")
	}
	for i, b := range c.Brokers {
		c.Brokers[i] = strings.TrimSpace(b)
	}
	if c.Principal != "" || c.Keytab != "" {
		return fmt.Errorf("principal/keytab: SASL/GSSAPI (Kerberos) is not supported; use SCRAM or PLAIN")
	}
	if (c.Username == "") != (c.Password == "") {
		return fmt.Errorf("username and password go together")
	}
	switch c.ScramMechanism {
	case "", "sha256", "sha512":
	default:
		return fmt.Errorf("scram_mechanism %q: want sha256 or sha512", c.ScramMechanism)
	}
	if c.SSLClientCert != "" && c.SSLClientCertKey == "" {
		return fmt.Errorf("ssl_client_cert needs ssl_client_cert_key")
	}
	return nil
}

// tlsOn: any ssl_ parameter, or SASL with sasl_over_ssl, as ruby-kafka
// decides.
func (c *Connection) tlsOn() bool {
	return c.SSLCACert != "" || c.SSLClientCert != "" || c.SSLCACertsFromSystem || (c.Username != "" && c.SASLOverSSL)
}

// options are the franz-go options for the connection.
func (c *Connection) options(log *slog.Logger) ([]kgo.Opt, error) {
	opts := []kgo.Opt{kgo.SeedBrokers(c.Brokers...), kgo.ClientID(c.ClientID)}
	if c.ConnectTimeout > 0 {
		opts = append(opts, kgo.DialTimeout(c.ConnectTimeout))
	}
	if c.SocketTimeout > 0 {
		opts = append(opts, kgo.RequestTimeoutOverhead(c.SocketTimeout))
	}
	if c.tlsOn() {
		tc := transport.Client{SkipHostname: !c.SSLVerifyHostname, CertPath: c.SSLClientCert, KeyPath: c.SSLClientCertKey,
			KeyPassphrase: c.SSLClientCertKeyPassword}
		if c.SSLCACert != "" {
			tc.CAPaths = []string{c.SSLCACert}
		}
		cfg, err := tc.Config()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if c.Username != "" {
		var m sasl.Mechanism
		switch c.ScramMechanism {
		case "sha256":
			m = scram.Auth{User: c.Username, Pass: c.Password}.AsSha256Mechanism()
		case "sha512":
			m = scram.Auth{User: c.Username, Pass: c.Password}.AsSha512Mechanism()
		default:
			m = plain.Auth{User: c.Username, Pass: c.Password}.AsMechanism()
		}
		opts = append(opts, kgo.SASL(m))
	}
	if c.GetKafkaClientLog {
		opts = append(opts, kgo.WithLogger(clientLog{log}))
	}
	return opts, nil
}

// clientLog puts franz-go's lines in the plugin's log at debug level.
type clientLog struct{ log *slog.Logger }

func (l clientLog) Level() kgo.LogLevel { return kgo.LogLevelInfo }

func (l clientLog) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	l.log.Log(context.Background(), slog.LevelDebug, "kafka client: "+msg, append(keyvals, "client_level", level.String())...)
}
