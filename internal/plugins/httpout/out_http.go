package httpout

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-log/sluice/internal/awsauth"
	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// HTTP is Fluentd's out_http (core since v1.7): each chunk is one request
// whose body is the chunk's formatted events (one JSON document per line
// by default, or a JSON array with json_array).
//
// Answers: 2xx is done. A status in retryable_response_codes (503 unless
// set) is retried with the buffer's backoff. Any other status fails the
// chunk for good (it goes to <secondary>), or, with
// error_response_as_unrecoverable false, is logged and dropped, as Fluentd
// does; Sluice counts those records. A request that gets no answer is
// retried.
type HTTP struct {
	Endpoint                string            `conf:"endpoint,required" desc:"The URL requests go to; ${tag}, ${key} and strftime placeholders take the chunk's values."`
	HTTPMethod              string            `conf:"http_method" enum:"post,put" desc:"The request method."`
	Proxy                   string            `conf:"proxy" desc:"An HTTP proxy URL; HTTP_PROXY or http_proxy from the environment when unset."`
	ContentType             string            `conf:"content_type" desc:"The Content-Type of requests; by default from the formatter (application/x-ndjson for json, application/json with json_array, text/csv, text/tab-separated-values, application/x-msgpack, text/plain)."`
	JSONArray               bool              `conf:"json_array" desc:"Send the chunk's events as one JSON array (needs the json formatter)."`
	Headers                 map[string]string `conf:"headers" desc:"Headers added to every request, as a hash."`
	HeadersFromPlaceholders map[string]string `conf:"headers_from_placeholders" desc:"Headers whose values hold placeholders (${tag}, ${key}), expanded per chunk."`
	Compress                string            `conf:"compress" enum:"text,gzip" desc:"gzip compresses request bodies (Content-Encoding: gzip)."`
	OpenTimeout             time.Duration     `conf:"open_timeout" desc:"How long opening a connection may take (Ruby's default: 60 s)."`
	ReadTimeout             time.Duration     `conf:"read_timeout" desc:"How long the answer may take once the request is sent (Ruby's default: 60 s)."`
	SSLTimeout              time.Duration     `conf:"ssl_timeout" desc:"How long the TLS handshake may take (0: 10 s)."`
	TLSCACertPath           string            `conf:"tls_ca_cert_path" desc:"The PEM CA certificates to trust for https endpoints, instead of the system's."`
	TLSClientCertPath       string            `conf:"tls_client_cert_path" desc:"A PEM client certificate, for servers that ask for one."`
	TLSPrivateKeyPath       string            `conf:"tls_private_key_path" desc:"The PEM private key of tls_client_cert_path."`
	TLSPrivateKeyPassphrase string            `conf:"tls_private_key_passphrase" desc:"The passphrase of an encrypted tls_private_key_path."`
	TLSVerifyMode           string            `conf:"tls_verify_mode" enum:"none,peer" desc:"peer verifies the server's certificate; none does not."`
	TLSVersion              string            `conf:"tls_version" desc:"The lowest TLS version (TLSv1_2 or TLSv1_3; older ones are raised to TLSv1_2)."`
	TLSCiphers              string            `conf:"tls_ciphers" desc:"Accepted for Fluentd compatibility (OpenSSL cipher names)." ignored:"Go's cipher suites for the TLS version are used"`
	ReuseConnections        bool              `conf:"reuse_connections" desc:"Accepted for Fluentd compatibility; connections are always kept open and reused." ignored:"connections are always reused"`
	ErrorResponseAsUnrec    bool              `conf:"error_response_as_unrecoverable" desc:"A status that is not retryable fails the chunk for good (to <secondary>); false logs it and drops the chunk, as Fluentd does."`
	RetryableResponseCodes  []string          `conf:"retryable_response_codes" desc:"The statuses that are retried (503 when unset, as in Fluentd 1.x)."`
	Format                  *config.Element   `section:"format" desc:"How each event is written into the body; json unless @type says otherwise."`
	Auth                    *Auth             `section:"auth" desc:"basic authentication, or aws_sigv4 signing."`

	core
	log         *slog.Logger
	formatter   plugin.Formatter
	endpoint    *buffer.Template
	headerTmpls map[string]*buffer.Template
	loc         *time.Location
	retryable   map[int]bool
	method      string
}

// Auth is out_http's <auth> section.
type Auth struct {
	Method     string `conf:"method" enum:"basic,aws_sigv4" desc:"basic (username and password) or aws_sigv4 (sign requests with the AWS credential chain)."`
	Username   string `conf:"username" desc:"The user of basic authentication."`
	Password   string `conf:"password" desc:"The password of basic authentication."`
	AWSService string `conf:"aws_service" desc:"The service name requests are signed for (aws_sigv4)."`
	AWSRegion  string `conf:"aws_region" desc:"The region requests are signed for (aws_sigv4)."`
	AWSRoleARN string `conf:"aws_role_arn" desc:"A role to assume for signing (aws_sigv4)."`
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "http", Summary: "send chunks to an HTTP endpoint",
		DoneWithDataOnReturn: true,
		Inject:               true,
		Sections: map[string]plugin.Section{
			"format": {Kind: plugin.KindFormatter, Default: "json"},
			"auth":   {New: func() any { return &Auth{Method: "basic"} }},
		},
		New: func() any {
			return &HTTP{HTTPMethod: "post", Proxy: firstEnv("HTTP_PROXY", "http_proxy"), Compress: "text",
				OpenTimeout: 60 * time.Second, ReadTimeout: 60 * time.Second, TLSVerifyMode: "peer", TLSVersion: "TLSv1_2",
				ErrorResponseAsUnrec: true}
		}})
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

var (
	_ plugin.BufferedOutput = (*HTTP)(nil)
	_ plugin.EntryFormatter = (*HTTP)(nil)
	_ plugin.Measured       = (*HTTP)(nil)
)

// Configure implements plugin.Configurer.
func (h *HTTP) Configure(c *plugin.Context) error {
	h.log = c.Logger
	h.loc = c.Location
	f, err := c.Build.Formatter(h.Format, "json")
	if err != nil {
		return err
	}
	h.formatter = f
	formatType := "json"
	if h.Format != nil {
		if t, ok := h.Format.Get("@type"); ok {
			formatType = t
		}
	}
	if h.JSONArray && formatType != "json" {
		return fmt.Errorf("json_array needs the json formatter, not %s", formatType)
	}
	if h.ContentType == "" {
		if h.ContentType, err = contentTypeOf(formatType, h.JSONArray); err != nil {
			return err
		}
	}
	if h.endpoint, err = buffer.NewTemplate(h.Endpoint, c.ChunkKeys); err != nil {
		return fmt.Errorf("endpoint: %w", err)
	}
	if _, err := url.Parse(strings.NewReplacer("${", "x", "}", "x").Replace(h.Endpoint)); err != nil {
		return fmt.Errorf("endpoint %q is not a URL: %w", h.Endpoint, err)
	}
	h.headerTmpls = map[string]*buffer.Template{}
	for k, v := range h.HeadersFromPlaceholders {
		t, err := buffer.NewTemplate(v, c.ChunkKeys)
		if err != nil {
			return fmt.Errorf("headers_from_placeholders %s: %w", k, err)
		}
		h.headerTmpls[k] = t
	}
	if h.RetryableResponseCodes == nil {
		c.Logger.Warn("retryable_response_codes is not set: 503 is retried, as in Fluentd 1.x (Fluentd 2 will retry none by default)")
		h.RetryableResponseCodes = []string{"503"}
	}
	h.retryable = map[int]bool{}
	for _, s := range h.RetryableResponseCodes {
		code, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || code < 100 || code > 599 {
			return fmt.Errorf("retryable_response_codes: %q is not a status code", s)
		}
		h.retryable[code] = true
	}
	h.method = strings.ToUpper(h.HTTPMethod)
	header := http.Header{}
	for k, v := range h.Headers {
		header.Set(k, v)
	}
	h.clientCfg = ClientConfig{
		TLS: transport.Client{MinVersion: TLSVersion(h.TLSVersion), CertPath: h.TLSClientCertPath, KeyPath: h.TLSPrivateKeyPath,
			KeyPassphrase: h.TLSPrivateKeyPassphrase, Insecure: h.TLSVerifyMode == "none"},
		Proxy: h.Proxy, ConnectTimeout: h.OpenTimeout, TLSTimeout: h.SSLTimeout, AnswerTimeout: h.ReadTimeout,
		Gzip: h.Compress == "gzip", Header: header,
	}
	if h.TLSCACertPath != "" {
		h.clientCfg.TLS.CAPaths = []string{h.TLSCACertPath}
	}
	if a := h.Auth; a != nil && a.Method == "basic" {
		h.clientCfg.Basic = &[2]string{a.Username, a.Password}
	}
	if a := h.Auth; a != nil && a.Method == "aws_sigv4" && (a.AWSService == "" || a.AWSRegion == "") {
		return fmt.Errorf("<auth> aws_sigv4 needs aws_service and aws_region")
	}
	return nil
}

// contentTypeOf is out_http's Content-Type for a formatter type.
func contentTypeOf(formatType string, jsonArray bool) (string, error) {
	switch formatType {
	case "json":
		if jsonArray {
			return "application/json", nil
		}
		return "application/x-ndjson", nil
	case "csv":
		return "text/csv", nil
	case "tsv", "ltsv":
		return "text/tab-separated-values", nil
	case "msgpack":
		return "application/x-msgpack", nil
	case "out_file", "single_value", "stdout", "hash":
		return "text/plain", nil
	}
	return "", fmt.Errorf("no Content-Type is known for the %s formatter: set content_type", formatType)
}

// Init implements plugin.Initer: it reads the TLS files and, for
// aws_sigv4, the credentials.
func (h *HTTP) Init(ctx context.Context) error {
	if a := h.Auth; a != nil && a.Method == "aws_sigv4" {
		opts := awsauth.Options{}
		if a.AWSRoleARN != "" {
			opts.AssumeRole = &awsauth.AssumeRole{RoleARN: a.AWSRoleARN, RoleSessionName: "sluice-out-http", STSRegion: a.AWSRegion}
		}
		cfg, err := awsauth.Load(ctx, a.AWSRegion, awsauth.Static{}, opts, awsauth.HTTP{VerifyPeer: true}, h.log)
		if err != nil {
			return err
		}
		h.clientCfg.Signer = awsauth.NewSigner(cfg.Credentials, a.AWSService, a.AWSRegion)
	}
	return h.startClient()
}

// FormatEntry implements plugin.EntryFormatter: the chunk holds the body
// already, each event followed by a comma for json_array.
func (h *HTTP) FormatEntry(dst []byte, tag string, t event.Time, r event.Record) ([]byte, error) {
	dst, err := h.formatter.Format(dst, tag, t, r)
	if err != nil || !h.JSONArray {
		return dst, err
	}
	return append(dst, ','), nil
}

// Write implements plugin.BufferedOutput.
func (h *HTTP) Write(ctx context.Context, c *plugin.Chunk) error {
	endpoint, err := h.endpoint.Expand(c.Key, h.loc)
	if err != nil {
		return &plugin.Permanent{Err: fmt.Errorf("endpoint: %w", err)}
	}
	var header http.Header
	if len(h.headerTmpls) > 0 {
		header = http.Header{}
		for k, t := range h.headerTmpls {
			v, err := t.Expand(c.Key, h.loc)
			if err != nil {
				return &plugin.Permanent{Err: fmt.Errorf("headers_from_placeholders %s: %w", k, err)}
			}
			header.Set(k, v)
		}
	}
	body := c.Data
	if h.JSONArray {
		arr := make([]byte, 0, len(body)+1)
		arr = append(arr, '[')
		arr = append(arr, bytes.TrimSuffix(body, []byte(","))...)
		body = append(arr, ']')
	}
	a, err := h.client.Do(ctx, Request{Method: h.method, URL: endpoint, Body: body, ContentType: h.ContentType,
		Header: header, Records: c.Records})
	if err != nil {
		return err
	}
	err = Outcome(a, func(status int) bool { return h.retryable[status] })
	if err != nil && plugin.IsPermanent(err) && !h.ErrorResponseAsUnrec {
		h.log.Error("the endpoint refused the chunk; dropped (error_response_as_unrecoverable false)",
			"endpoint", redact(endpoint), "chunk", c.ID.String(), "records", c.Records, "err", err)
		h.stats.Dropped.Add(int64(c.Records))
		return nil
	}
	return err
}
