package elasticsearch

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/sluice-log/sluice/internal/awsauth"
	"github.com/sluice-log/sluice/internal/transport"
)

// host is one server of the output.
type host struct {
	base       *url.URL // scheme://host:port/path, no credentials
	user, pass string
	deadUntil  atomic.Int64 // unix nanoseconds; a failed host rests until then
}

func (h *host) String() string { return h.base.Host }

// client sends requests round-robin over the healthy hosts.
type client struct {
	hosts     []*host
	next      atomic.Uint64
	http      *http.Client
	apiKey    string
	headers   map[string]string
	gzipLevel int // -1: bodies go plain
	resurrect time.Duration
	timeout   time.Duration

	signer *awsauth.Signer // SigV4 (Amazon OpenSearch Service); nil: unsigned
}

// parseHosts reads host/port or hosts (and cloud_id) into hosts.
func parseHosts(c *Config) ([]*host, error) {
	if c.CloudID != "" {
		u, err := cloudURL(c.CloudID)
		if err != nil {
			return nil, err
		}
		h := &host{base: u, user: c.User, pass: c.Password}
		if c.CloudAuth != "" {
			h.user, h.pass, _ = strings.Cut(c.CloudAuth, ":")
		}
		return []*host{h}, nil
	}
	specs := c.Hosts
	if len(specs) == 0 {
		specs = []string{net.JoinHostPort(c.Host, strconv.Itoa(c.Port))}
	}
	var out []*host
	for _, spec := range specs {
		spec = strings.TrimSpace(spec)
		if spec == "" {
			continue
		}
		if !strings.Contains(spec, "://") {
			spec = c.Scheme + "://" + spec
		}
		u, err := url.Parse(spec)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("hosts: %q is not host:port or a URL", spec)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("hosts: %q: the scheme is http or https", spec)
		}
		if u.Port() == "" {
			u.Host = net.JoinHostPort(u.Hostname(), strconv.Itoa(c.Port))
		}
		h := &host{user: c.User, pass: c.Password}
		if u.User != nil {
			h.user = u.User.Username()
			h.pass, _ = u.User.Password()
			u.User = nil
		}
		if u.Path == "" || u.Path == "/" {
			u.Path = c.Path
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		h.base = u
		out = append(out, h)
	}
	if len(out) == 0 {
		return nil, errors.New("no host: set host, hosts or cloud_id")
	}
	return out, nil
}

// cloudURL decodes an Elastic Cloud ID: name:base64(domain$es-uuid$...).
func cloudURL(id string) (*url.URL, error) {
	_, enc, ok := strings.Cut(id, ":")
	if !ok {
		enc = id
	}
	raw, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(enc); err != nil {
			return nil, fmt.Errorf("cloud_id: not name:base64")
		}
	}
	parts := strings.Split(string(raw), "$")
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return nil, fmt.Errorf("cloud_id: want domain$elasticsearch-id$... inside")
	}
	domain, port := parts[0], "443"
	if d, p, err := net.SplitHostPort(domain); err == nil {
		domain, port = d, p
	}
	return &url.URL{Scheme: "https", Host: net.JoinHostPort(parts[1]+"."+domain, port)}, nil
}

// pick returns the next healthy host, or, when every host rests, the one
// whose rest ends first: a request is always tried.
func (c *client) pick(now time.Time) *host {
	n := uint64(len(c.hosts))
	start := c.next.Add(1)
	var best *host
	for i := uint64(0); i < n; i++ {
		h := c.hosts[(start+i)%n]
		if h.deadUntil.Load() <= now.UnixNano() {
			return h
		}
		if best == nil || h.deadUntil.Load() < best.deadUntil.Load() {
			best = h
		}
	}
	return best
}

// maxResponse bounds a response body read into memory: a bulk response
// with filter_path is a few bytes per document.
const maxResponse = 64 << 20

// response is a request's outcome.
type response struct {
	status int
	body   []byte
	host   *host
}

// do sends one request to the next healthy host. A connection failure or
// a 5xx rests that host for resurrect_after. released reports whether the
// HTTP transport is done with body, so that the caller may write into it
// again: Go's transport may go on reading a request body after the
// response has come (a server that answers before reading all of it).
func (c *client) do(ctx context.Context, method, path, query string, body []byte, contentType string) (resp response, released bool, err error) {
	h := c.pick(time.Now())
	resp.host = h
	u := *h.base
	u.Path += path
	u.RawQuery = query
	payload := body
	gzipped := false
	if c.gzipLevel >= 0 && len(body) > 0 {
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, c.gzipLevel)
		if err != nil {
			return resp, true, err
		}
		if _, err := zw.Write(body); err != nil {
			return resp, true, err
		}
		if err := zw.Close(); err != nil {
			return resp, true, err
		}
		payload, gzipped = buf.Bytes(), true
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tb := transport.NewTrackedBody(payload)
	req, err := http.NewRequestWithContext(ctx, method, u.String(), tb)
	if err != nil {
		return resp, true, err
	}
	req.ContentLength = int64(len(payload))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if gzipped {
		req.Header.Set("Content-Encoding", "gzip")
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	switch {
	case c.apiKey != "":
		req.Header.Set("Authorization", "ApiKey "+c.apiKey)
	case h.user != "":
		req.SetBasicAuth(h.user, h.pass)
	}
	if c.signer != nil {
		if err := c.signer.Sign(ctx, req, payload); err != nil {
			return resp, true, err
		}
	}
	defer func() {
		// gzipped: the transport read a copy, never body itself.
		released = gzipped || tb.Released(time.Second)
	}()
	r, err := c.http.Do(req)
	if err != nil {
		c.rest(h)
		return resp, false, fmt.Errorf("%s: %w", h, err)
	}
	defer r.Body.Close()
	data, err := io.ReadAll(io.LimitReader(r.Body, maxResponse+1))
	if err != nil {
		c.rest(h)
		return resp, false, fmt.Errorf("%s: reading the response: %w", h, err)
	}
	if len(data) > maxResponse {
		return resp, false, fmt.Errorf("%s: response larger than %d bytes", h, maxResponse)
	}
	if r.StatusCode >= 500 {
		c.rest(h)
	}
	resp.status, resp.body = r.StatusCode, data
	return resp, false, nil
}

func (c *client) rest(h *host) {
	if len(c.hosts) > 1 {
		h.deadUntil.Store(time.Now().Add(c.resurrect).UnixNano())
	}
}
