// Package httpout holds the outputs that deliver to HTTP APIs (http, loki,
// splunk_hec, datadog) on one core: Client sends a request body with the
// output's TLS, timeouts, compression and authentication, and Outcome
// turns the answer into what the buffer runtime does with the chunk.
package httpout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-log/sluice/internal/awsauth"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// ClientConfig is how a destination's parameters set up its Client.
type ClientConfig struct {
	TLS            transport.Client
	Proxy          string        // an HTTP proxy URL; empty: none (not the environment's)
	ConnectTimeout time.Duration // dialling
	TLSTimeout     time.Duration // the TLS handshake
	AnswerTimeout  time.Duration // from the request's end to the answer's headers
	Gzip           bool          // compress bodies (Content-Encoding: gzip)
	GzipLevel      int           // 1 (fastest) to 9 (smallest); 0: the library's default
	Header         http.Header   // sent with every request
	Basic          *[2]string    // user, password
	BearerFile     string        // a file holding a bearer token, read before each request (rotated tokens)
	Signer         *awsauth.Signer
	// Conns is how many connections to the destination stay open for
	// reuse: the output's flush_thread_count.
	Conns int
}

// Client sends requests to one destination and counts them.
type Client struct {
	cfg   ClientConfig
	http  *http.Client
	bufs  sync.Pool // *bytes.Buffer for gzip
	stats *Stats
}

// Stats are a client's counters, reported by the outputs' Measure.
type Stats struct {
	Requests   atomic.Int64 // requests sent
	Failed     atomic.Int64 // requests that got no answer
	BytesSent  atomic.Int64 // request bytes, before compression
	Answers2xx atomic.Int64
	Answers4xx atomic.Int64
	Answers429 atomic.Int64
	Answers5xx atomic.Int64
	// Ambiguous counts records sent again after a request failed once it
	// may have reached the destination: they may arrive twice.
	Ambiguous atomic.Int64
	// Dropped counts records of chunks given up on by the output itself
	// (error_response_as_unrecoverable false).
	Dropped atomic.Int64
}

// Measure reports the counters, for the outputs' plugin.Measured.
func (s *Stats) Measure(report plugin.Report) {
	for _, m := range []struct {
		name, help string
		v          *atomic.Int64
	}{
		{"http_requests_total", "Requests sent to the destination.", &s.Requests},
		{"http_request_errors_total", "Requests that got no answer (connection refused, reset, timeout).", &s.Failed},
		{"http_request_bytes_total", "Bytes of request bodies, before compression.", &s.BytesSent},
		{"http_responses_2xx_total", "Answers with a 2xx status.", &s.Answers2xx},
		{"http_responses_4xx_total", "Answers with a 4xx status other than 429.", &s.Answers4xx},
		{"http_responses_429_total", "Answers with 429 Too Many Requests (retried).", &s.Answers429},
		{"http_responses_5xx_total", "Answers with a 5xx status.", &s.Answers5xx},
		{"ambiguous_retries_total", "Records sent again after a request failed with no answer once it may have reached the destination: they may arrive twice.", &s.Ambiguous},
		{"dropped_records_total", "Records of chunks the destination refused and the output dropped (error_response_as_unrecoverable false).", &s.Dropped},
	} {
		report(m.name, m.help, m.v.Load(), false)
	}
}

// NewClient builds a client that counts into stats; it reads the TLS
// files.
func NewClient(cfg ClientConfig, stats *Stats) (*Client, error) {
	tlsConf, err := cfg.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	dialer := &net.Dialer{Timeout: orDefault(cfg.ConnectTimeout, 30*time.Second), KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   orDefault(cfg.TLSTimeout, 10*time.Second),
		ResponseHeaderTimeout: cfg.AnswerTimeout,
		MaxIdleConnsPerHost:   max(cfg.Conns, 2),
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
		// The body is compressed by the client, when asked, and answers
		// are read as sent.
		DisableCompression: true,
	}
	if cfg.Proxy != "" {
		u, err := url.Parse(cfg.Proxy)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("proxy %q is not a URL", cfg.Proxy)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	return &Client{cfg: cfg, stats: stats, http: &http.Client{Transport: tr,
		// A redirect would resend the body somewhere the user did not
		// configure: it is an answer like any other.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Close closes idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// core is what every output of the package embeds: the client's
// configuration (set by Configure), the client (made by Init) and its
// counters.
type core struct {
	clientCfg ClientConfig
	client    *Client
	stats     Stats
}

// startClient makes the client from clientCfg.
func (c *core) startClient() error {
	cl, err := NewClient(c.clientCfg, &c.stats)
	if err != nil {
		return err
	}
	c.client = cl
	return nil
}

// Measure implements plugin.Measured.
func (c *core) Measure(report plugin.Report) { c.stats.Measure(report) }

// Close implements plugin.Closer.
func (c *core) Close(context.Context) error {
	if c.client != nil {
		c.client.Close()
	}
	return nil
}

// Request is one call.
type Request struct {
	Method      string
	URL         string
	Body        []byte
	ContentType string
	Header      http.Header // besides the client's
	// Records is how many records Body holds, for the ambiguous count.
	Records int
}

// Answer is the destination's answer.
type Answer struct {
	Status int
	Header http.Header
	Body   []byte // up to maxAnswer bytes
}

// maxAnswer bounds how much of an answer is read: enough for any error
// message, and for Splunk's acknowledgement lists.
const maxAnswer = 1 << 20

// Do sends r. The error is a failure to get an answer (the caller
// retries); any answer, whatever its status, comes back as an Answer.
func (c *Client) Do(ctx context.Context, r Request) (Answer, error) {
	c.stats.Requests.Add(1)
	c.stats.BytesSent.Add(int64(len(r.Body)))
	payload := r.Body
	var zbuf *bytes.Buffer
	if c.cfg.Gzip && len(payload) > 0 {
		zbuf, _ = c.bufs.Get().(*bytes.Buffer)
		if zbuf == nil {
			zbuf = new(bytes.Buffer)
		}
		zbuf.Reset()
		err := c.compress(zbuf, payload)
		if err != nil {
			return Answer{}, err
		}
		payload = zbuf.Bytes()
	}
	tb := transport.NewTrackedBody(payload)
	req, err := http.NewRequestWithContext(ctx, r.Method, r.URL, tb)
	if err != nil {
		return Answer{}, &plugin.Permanent{Err: err}
	}
	req.ContentLength = int64(len(payload))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(payload)), nil }
	for k, vs := range c.cfg.Header {
		req.Header[k] = vs
	}
	for k, vs := range r.Header {
		req.Header[k] = vs
	}
	if r.ContentType != "" {
		req.Header.Set("Content-Type", r.ContentType)
	}
	if zbuf != nil {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if err := c.authorize(ctx, req, payload); err != nil {
		return Answer{}, err
	}
	defer func() {
		// The transport may go on reading the body after the answer:
		// only then may the buffer be reused.
		if zbuf != nil && tb.Released(time.Second) {
			c.bufs.Put(zbuf)
		}
	}()
	resp, err := c.http.Do(req)
	if err != nil {
		c.stats.Failed.Add(1)
		// A write cut off by write_timeout or the shutdown deadline is
		// retried too: counted as well.
		if transport.Ambiguous(err) {
			c.stats.Ambiguous.Add(int64(r.Records))
		}
		return Answer{}, fmt.Errorf("%s %s: %w", r.Method, redact(r.URL), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil && !errors.Is(err, io.EOF) {
		// The status is known; a cut-off answer body does not change it.
		body = append(body, "…(answer cut off)"...)
	}
	c.count(resp.StatusCode)
	return Answer{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

func (c *Client) compress(dst *bytes.Buffer, payload []byte) error {
	if c.cfg.GzipLevel != 0 {
		zw, err := gzip.NewWriterLevel(dst, c.cfg.GzipLevel)
		if err != nil {
			return err
		}
		_, _ = zw.Write(payload)
		return zw.Close()
	}
	zw := gzipWriters.Get().(*gzip.Writer)
	defer gzipWriters.Put(zw)
	zw.Reset(dst)
	_, _ = zw.Write(payload)
	return zw.Close()
}

func (c *Client) count(status int) {
	switch {
	case status >= 200 && status < 300:
		c.stats.Answers2xx.Add(1)
	case status == http.StatusTooManyRequests:
		c.stats.Answers429.Add(1)
	case status >= 500:
		c.stats.Answers5xx.Add(1)
	case status >= 400:
		c.stats.Answers4xx.Add(1)
	}
}

func (c *Client) authorize(ctx context.Context, req *http.Request, payload []byte) error {
	switch {
	case c.cfg.Basic != nil:
		req.SetBasicAuth(c.cfg.Basic[0], c.cfg.Basic[1])
	case c.cfg.BearerFile != "":
		token, err := readToken(c.cfg.BearerFile)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if c.cfg.Signer != nil {
		return c.cfg.Signer.Sign(ctx, req, payload)
	}
	return nil
}

// redact leaves a URL's password out of messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}

// Outcome is what a write makes of an answer:
//   - nil for 2xx;
//   - a retryable error for the statuses retry says (plugin.RetryAfter
//     when the answer has Retry-After);
//   - a plugin.Permanent error otherwise: the chunk goes to <secondary>.
func Outcome(a Answer, retry func(status int) bool) error {
	if a.Status >= 200 && a.Status < 300 {
		return nil
	}
	err := &StatusError{Status: a.Status, Body: a.Body}
	if retry(a.Status) {
		if d, ok := retryAfter(a.Header); ok {
			return &plugin.RetryAfter{Err: err, Delay: d}
		}
		return err
	}
	return &plugin.Permanent{Err: err}
}

// StatusError is an answer that was not 2xx.
type StatusError struct {
	Status int
	Body   []byte
}

func (e *StatusError) Error() string {
	msg := strings.TrimSpace(string(e.Body))
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), msg)
}

// RetryUsual is the retry rule of most APIs: 408, 429 and 5xx.
func RetryUsual(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// maxRetryAfter caps a destination's Retry-After, so that one answer
// cannot park a chunk for a day.
const maxRetryAfter = 5 * time.Minute

func retryAfter(h http.Header) (time.Duration, bool) {
	v := h.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return min(time.Duration(s)*time.Second, maxRetryAfter), true
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter), true
	}
	return 0, false
}

// TLSVersion maps Fluentd's tls_version names (TLSv1_2, TLS1_2, ...) to a
// transport.Versions name; Go offers nothing older than TLS 1.2 here.
func TLSVersion(v string) string {
	switch strings.ReplaceAll(strings.ToUpper(v), "TLSV", "TLS") {
	case "TLS1_3", "TLS1.3":
		return "TLSv1_3"
	}
	return "TLSv1_2"
}

// validUTF8 returns b, or a copy with each run of bytes that are not
// UTF-8 replaced by repl: the APIs take UTF-8 only. Valid text, nearly all
// of it, is not copied.
func validUTF8(b []byte, repl string) []byte {
	if utf8.Valid(b) {
		return b
	}
	return []byte(strings.ToValidUTF8(string(b), repl))
}

// readToken reads a bearer token file (Kubernetes service account tokens
// rotate, so it is read per request; the kernel's page cache makes that
// cheap).
func readToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("bearer token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
