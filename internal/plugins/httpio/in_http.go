// Package httpio holds the http input.
package httpio

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-log/sluice/internal/budget"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// Input is in_http: events over HTTP, the tag from the URL path.
//
// Bodies, as Fluentd reads them: with a <parse> section the raw body goes
// to that parser; otherwise json=, ndjson= or msgpack= from the query or
// an urlencoded or multipart form, or the whole body by Content-Type
// (application/json, application/csp-report, application/x-ndjson,
// application/msgpack). A JSON array is a batch. Content-Encoding gzip and
// deflate are decoded. The time comes from the time parameter, else from
// the record's time key, else now.
//
// Status codes: 200 (204 with use_204_response, a 1x1 GIF with
// respond_with_empty_img), 400 for a body that does not parse, 403 for a
// CORS origin not allowed, 413 past body_size_limit, and 503 when a buffer
// refuses the events (the client must retry), 500 for other failures.
//
// A GET without event parameters answers 200 and emits nothing (load
// balancer health checks); a GET with ?json= is an event, which the seed
// deployment's Docker health check relies on.
type Input struct {
	Port                 int             `conf:"port" desc:"The TCP port to listen on."`
	Bind                 string          `conf:"bind" desc:"The address to listen on."`
	BodySizeLimit        config.Size     `conf:"body_size_limit" desc:"The largest request body accepted, after decompression; a larger one is answered 413."`
	KeepaliveTimeout     time.Duration   `conf:"keepalive_timeout" desc:"How long an idle keep-alive connection stays open."`
	Backlog              int             `conf:"backlog" desc:"Accepted for Fluentd compatibility; the kernel's listen backlog applies." ignored:"the kernel's listen backlog applies"`
	AddHTTPHeaders       bool            `conf:"add_http_headers" desc:"Add the request's headers to each record, as HTTP_NAME fields."`
	AddRemoteAddr        bool            `conf:"add_remote_addr" desc:"Add the client's address to each record as REMOTE_ADDR (X-Forwarded-For first when present)."`
	AddQueryParams       bool            `conf:"add_query_params" desc:"Add the query parameters to each record, as QUERY_NAME fields."`
	BlockingTimeout      time.Duration   `conf:"blocking_timeout" desc:"Accepted for Fluentd compatibility; a request waits for the buffer within request_timeout." ignored:"a request waits for the buffer within request_timeout"`
	CORSAllowOrigins     []string        `conf:"cors_allow_origins" desc:"The origins allowed to post from a browser (* for any); a request with another Origin is answered 403. Empty: no CORS checks or headers."`
	CORSAllowCredentials bool            `conf:"cors_allow_credentials" desc:"Allow browsers to send credentials (Access-Control-Allow-Credentials)."`
	RespondWithEmptyImg  bool            `conf:"respond_with_empty_img" desc:"Answer with a 1x1 GIF, for tracking pixels."`
	Use204Response       bool            `conf:"use_204_response" desc:"Answer 204 No Content instead of 200."`
	DumpErrorLog         bool            `conf:"dump_error_log" desc:"Log each request answered with an error."`
	MaxConnections       int             `conf:"max_connections" desc:"Refuse connections past this many at once (0: no cap)."`
	RequestTimeout       time.Duration   `conf:"request_timeout" desc:"The deadline of reading a request and writing its answer."`
	MaxHeaderSize        config.Size     `conf:"max_header_size" desc:"The largest request header block accepted."`
	BodyBufferLimit      config.Size     `conf:"body_buffer_limit" desc:"The most bytes all requests together hold in bodies being read and decoded; past it requests wait, then are answered 503."`
	Parse                *config.Element `section:"parse" desc:"A parser for the whole body, instead of the JSON, NDJSON, msgpack and form bodies taken by default."`
	TransportSection     *config.Element `section:"transport" desc:"tcp or tls, and the server's certificate."`

	log       *slog.Logger
	transport transport.Transport
	tlsConfig *tls.Config
	parsers   chan *parserSet // a pool: parsers are not safe for concurrent use
	custom    bool            // <parse> given
	budget    *budget.Bytes
	server    transport.HTTPServer
	ln        net.Listener
	bound     atomic.Pointer[string]
	emitCtx   context.Context

	Stats Stats
}

// Stats are in_http's counters.
type Stats struct {
	Requests    atomic.Int64
	Events      atomic.Int64
	BadRequests atomic.Int64 // 400
	TooLarge    atomic.Int64 // 413
	Refused     atomic.Int64 // 503: a buffer refused the events
	Forbidden   atomic.Int64 // 403
	Connections atomic.Int64
	Overloaded  atomic.Int64 // connections refused past max_connections
}

// Measure implements plugin.Measured.
func (in *Input) Measure(report plugin.Report) {
	s := &in.Stats
	report("http_requests_total", "Requests received.", s.Requests.Load(), false)
	report("events_total", "Events accepted.", s.Events.Load(), false)
	report("decode_errors_total", "Requests refused as malformed (HTTP 400).", s.BadRequests.Load(), false)
	report("http_too_large_total", "Requests over body_size_limit (HTTP 413).", s.TooLarge.Load(), false)
	report("refused_total", "Requests refused because a buffer was full (HTTP 503).", s.Refused.Load(), false)
	report("http_forbidden_total", "Requests from addresses not allowed (HTTP 403).", s.Forbidden.Load(), false)
	report("connections", "Connections open now.", s.Connections.Load(), true)
	report("connections_refused_total", "Connections refused over max_connections.", s.Overloaded.Load(), false)
	report("body_buffer_bytes", "Bytes of request bodies held now, raw and decoded (bounded by body_buffer_limit).", in.BodyBufferUsed(), true)
}

// BodyBufferUsed is what requests hold of body_buffer_limit now.
func (in *Input) BodyBufferUsed() int64 {
	if in.budget == nil {
		return 0
	}
	return in.budget.Used()
}

type parserSet struct {
	custom, json, msgpack plugin.Parser
	stream                event.Builder
	record                []byte
}

// emptyGIF is a transparent 1x1 GIF (respond_with_empty_img).
var emptyGIF = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "http", Summary: "receive events over HTTP",
		Sections: map[string]plugin.Section{
			"parse":     {Kind: plugin.KindParser},
			"transport": {New: func() any { t := transport.Default(); return &t }},
		},
		New: func() any {
			return &Input{Port: 9880, Bind: "0.0.0.0", BodySizeLimit: 32 << 20, KeepaliveTimeout: 10 * time.Second,
				BlockingTimeout: 500 * time.Millisecond, DumpErrorLog: true, RequestTimeout: 60 * time.Second,
				MaxHeaderSize: 64 << 10, BodyBufferLimit: 256 << 20}
		}})
}

// poolSize is how many requests may parse at once.
const poolSize = 8

// Configure implements plugin.Configurer.
func (in *Input) Configure(c *plugin.Context) error {
	in.log = c.Logger
	if in.Port < 0 || in.Port > 65535 {
		return fmt.Errorf("port %d out of range", in.Port)
	}
	if in.CORSAllowCredentials {
		if len(in.CORSAllowOrigins) == 0 || slices.Contains(in.CORSAllowOrigins, "*") {
			return fmt.Errorf("cors_allow_credentials needs cors_allow_origins without '*'")
		}
	}
	if in.BodySizeLimit <= 0 || in.BodyBufferLimit < in.BodySizeLimit {
		return fmt.Errorf("body_buffer_limit must be at least body_size_limit")
	}
	in.transport = transport.Default()
	if in.TransportSection != nil {
		if err := config.Decode(in.TransportSection, &in.transport); err != nil {
			return err
		}
	}
	in.transport.Hostname = c.Hostname // for a certificate made from ca_cert_path
	if err := in.transport.Validate(true); err != nil {
		return err
	}
	in.custom = in.Parse != nil
	if in.custom {
		if t, _ := in.Parse.Get("@type"); t == "in_http" {
			in.custom = false // Fluentd's name for the default mode
		}
	}
	in.parsers = make(chan *parserSet, poolSize)
	for i := 0; i < poolSize; i++ {
		ps := &parserSet{}
		var err error
		if in.custom {
			if ps.custom, err = c.Build.Parser(in.Parse, ""); err != nil {
				return err
			}
		}
		// The default mode's parsers take the <parse> time options too
		// (time_key, keep_time_key), so they decode that section; nothing
		// else in it applies to them.
		if ps.json, err = c.Build.Parser(nil, "json"); err != nil {
			return err
		}
		if ps.msgpack, err = c.Build.Parser(nil, "msgpack"); err != nil {
			return err
		}
		in.parsers <- ps
	}
	if in.Parse != nil && !in.custom {
		in.Parse.MarkAllUsed()
	}
	in.budget = budget.New(int64(in.BodyBufferLimit))
	return nil
}

// MemoryBound implements plugin.MemoryBounded: bodies being read share
// body_buffer_limit, and one body may take twice body_size_limit (the
// compressed and the inflated copy).
func (in *Input) MemoryBound() int64 {
	return max(int64(in.BodyBufferLimit), 2*int64(in.BodySizeLimit))
}

// Init binds the listener.
func (in *Input) Init(context.Context) error {
	cfg, err := in.transport.ServerConfig()
	if err != nil {
		return err
	}
	in.tlsConfig = cfg
	ln, err := net.Listen("tcp", net.JoinHostPort(in.Bind, strconv.Itoa(in.Port)))
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	in.bound.Store(&addr)
	in.ln = &limitListener{Listener: ln, in: in}
	return nil
}

// BoundAddr returns the listener's address once bound.
func (in *Input) BoundAddr() string {
	if a := in.bound.Load(); a != nil {
		return *a
	}
	return ""
}

// Run implements plugin.Input. On cancel the server stops accepting and
// finishes the requests in progress (up to transport.HTTPDrainGrace).
func (in *Input) Run(ctx context.Context, out plugin.Emitter) error {
	in.emitCtx = ctx
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { in.serve(w, r, out) }),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       in.RequestTimeout,
		WriteTimeout:      in.RequestTimeout,
		IdleTimeout:       in.KeepaliveTimeout,
		MaxHeaderBytes:    int(in.MaxHeaderSize),
		TLSConfig:         in.tlsConfig,
		ErrorLog:          slog.NewLogLogger(in.log.Handler(), slog.LevelDebug),
	}
	return in.server.Serve(ctx, srv, in.ln)
}

// Close implements plugin.Closer: it ends requests a drain cut short by
// the shutdown deadline still waits for.
func (in *Input) Close(context.Context) error {
	in.server.Close()
	if in.ln != nil {
		in.ln.Close()
	}
	return nil
}

// limitListener refuses connections past max_connections.
type limitListener struct {
	net.Listener
	in *Input
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.in.MaxConnections > 0 && l.in.Stats.Connections.Load() >= int64(l.in.MaxConnections) {
			l.in.Stats.Overloaded.Add(1)
			c.Close()
			continue
		}
		l.in.Stats.Connections.Add(1)
		l.in.transport.Tune(c, 0)
		return &countedConn{Conn: c, in: l.in}, nil
	}
}

type countedConn struct {
	net.Conn
	in     *Input
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if c.closed.CompareAndSwap(false, true) {
		c.in.Stats.Connections.Add(-1)
	}
	return c.Conn.Close()
}

// httpError is a response status with a message for the client.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func fail(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

func (in *Input) serve(w http.ResponseWriter, r *http.Request, out plugin.Emitter) {
	in.Stats.Requests.Add(1)
	origin := r.Header.Get("Origin")
	if r.Method == http.MethodOptions {
		in.preflight(w, r, origin)
		return
	}
	if r.Method != http.MethodPost && r.Method != http.MethodPut && r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET, POST, PUT, OPTIONS")
		http.Error(w, "405 Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	if len(in.CORSAllowOrigins) > 0 {
		if !in.originAllowed(origin) {
			in.Stats.Forbidden.Add(1)
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusForbidden)
			return
		}
		in.corsHeaders(w, origin)
	}
	n, err := in.handle(r, out)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = &httpError{code: http.StatusInternalServerError, msg: err.Error()}
		}
		switch he.code {
		case http.StatusBadRequest:
			in.Stats.BadRequests.Add(1)
		case http.StatusRequestEntityTooLarge:
			in.Stats.TooLarge.Add(1)
		case http.StatusServiceUnavailable:
			in.Stats.Refused.Add(1)
			w.Header().Set("Retry-After", "1")
		}
		if in.DumpErrorLog {
			in.log.Warn("http request failed", "remote", r.RemoteAddr, "path", r.URL.Path, "status", he.code, "err", he.msg)
		}
		http.Error(w, fmt.Sprintf("%d %s\n%s", he.code, http.StatusText(he.code), he.msg), he.code)
		return
	}
	in.Stats.Events.Add(int64(n))
	switch {
	case in.RespondWithEmptyImg:
		w.Header().Set("Content-Type", "image/gif; charset=utf-8")
		_, _ = w.Write(emptyGIF)
	case in.Use204Response:
		w.WriteHeader(http.StatusNoContent)
	default:
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
	}
}

func (in *Input) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	if len(in.CORSAllowOrigins) == 0 || r.Header.Get("Access-Control-Request-Method") != http.MethodPost || !in.originAllowed(origin) {
		in.Stats.Forbidden.Add(1)
		w.WriteHeader(http.StatusForbidden)
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", "POST")
	w.Header().Set("Access-Control-Allow-Headers", r.Header.Get("Access-Control-Request-Headers"))
	in.corsHeaders(w, origin)
	w.WriteHeader(http.StatusOK)
}

func (in *Input) corsHeaders(w http.ResponseWriter, origin string) {
	if slices.Contains(in.CORSAllowOrigins, "*") {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	if in.CORSAllowCredentials {
		w.Header().Set("Access-Control-Allow-Credentials", "true")
	}
}

// originAllowed matches cors_allow_origins, where one '*' stands for any
// run of characters ("https://*.example.com").
func (in *Input) originAllowed(origin string) bool {
	if slices.Contains(in.CORSAllowOrigins, "*") {
		return true
	}
	if origin == "" {
		return false
	}
	for _, allowed := range in.CORSAllowOrigins {
		if allowed == origin {
			return true
		}
		if pre, post, ok := strings.Cut(allowed, "*"); ok && allowed != "" &&
			strings.HasPrefix(origin, pre) && strings.HasSuffix(origin[len(pre):], post) {
			return true
		}
	}
	return false
}

// handle reads, parses and emits one request; it returns how many events
// were emitted.
func (in *Input) handle(r *http.Request, out plugin.Emitter) (int, error) {
	tag := strings.Trim(r.URL.Path, "/")
	tag = strings.ReplaceAll(tag, "/", ".")
	query := r.URL.Query()
	if r.Method == http.MethodGet && (in.custom || !hasEventParam(query)) {
		return 0, nil // a health check
	}
	if tag == "" {
		return 0, fail(http.StatusBadRequest, "the URL path gives the tag, and it is empty")
	}
	body, release, err := in.readBody(r)
	defer release()
	if err != nil {
		return 0, err
	}
	ps := <-in.parsers
	defer func() { in.parsers <- ps }()
	ps.stream.Reset()
	params := query
	emit := func(t event.Time, rec []byte) error {
		if fields := in.extraFields(r, query); len(fields) > 0 {
			var err error
			if ps.record, err = event.AppendRecordFields(ps.record[:0], rec, fields...); err != nil {
				return err
			}
			rec = ps.record
		}
		ps.stream.Append(eventTime(params, t), rec)
		return nil
	}
	if in.custom {
		if err := ps.custom.Parse(body, emit); err != nil {
			return 0, fail(http.StatusBadRequest, "%v", err)
		}
	} else {
		if params, err = bodyParams(r, body, query); err != nil {
			return 0, err
		}
		if err := parseDefault(ps, params, emit); err != nil {
			return 0, err
		}
	}
	n := ps.stream.Len()
	if n == 0 {
		return 0, nil
	}
	if err := out.Emit(in.emitCtx, ps.stream.Stream(tag)); err != nil {
		if errors.Is(err, plugin.ErrOverflow) || errors.Is(err, context.Canceled) {
			return 0, fail(http.StatusServiceUnavailable, "events not accepted, retry later: %v", err)
		}
		return 0, fail(http.StatusServiceUnavailable, "events not accepted: %v", err)
	}
	return n, nil
}

func hasEventParam(q url.Values) bool {
	return q.Has("json") || q.Has("msgpack") || q.Has("ndjson")
}

// budgetPatience is how long a request waits for buffer space.
const budgetPatience = 10 * time.Second

// readBody reads the body within body_size_limit and the shared
// body_buffer_limit, and decodes its Content-Encoding. release gives the
// memory back.
func (in *Input) readBody(r *http.Request) (body []byte, release func(), err error) {
	limit := int64(in.BodySizeLimit)
	reserve := limit
	if r.ContentLength >= 0 {
		if r.ContentLength > limit {
			return nil, func() {}, fail(http.StatusRequestEntityTooLarge, "body larger than body_size_limit (%d bytes)", limit)
		}
		reserve = r.ContentLength
	}
	if err := in.budget.Acquire(r.Context(), reserve, budgetPatience); err != nil {
		return nil, func() {}, fail(http.StatusServiceUnavailable, "too many large requests at once; retry later")
	}
	release = func() { in.budget.Release(reserve) }
	raw, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, release, fail(http.StatusBadRequest, "reading the body: %v", err)
	}
	if int64(len(raw)) > limit {
		return nil, release, fail(http.StatusRequestEntityTooLarge, "body larger than body_size_limit (%d bytes)", limit)
	}
	var dec io.Reader
	switch strings.ToLower(r.Header.Get("Content-Encoding")) {
	case "", "identity":
		return raw, release, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, release, fail(http.StatusBadRequest, "gzip: %v", err)
		}
		dec = zr
	case "deflate":
		dec = flate.NewReader(bytes.NewReader(raw))
	default:
		return nil, release, fail(http.StatusBadRequest, "Content-Encoding %q is not supported (gzip, deflate)", r.Header.Get("Content-Encoding"))
	}
	// The decoded body is held too: it takes its own share of the budget,
	// reserved before each growth, so that concurrent compressed requests
	// stay within body_buffer_limit however far they inflate.
	body, granted, err := budget.ReadAll(dec, nil, int(limit), func(n int) error {
		return in.budget.Acquire(r.Context(), int64(n), budgetPatience)
	})
	compressed := release
	release = func() {
		compressed()
		in.budget.Release(int64(granted))
	}
	var refused *budget.Refused
	switch {
	case errors.As(err, &refused):
		return nil, release, fail(http.StatusServiceUnavailable, "too many large requests at once; retry later")
	case errors.Is(err, budget.ErrTooLarge):
		return nil, release, fail(http.StatusRequestEntityTooLarge, "decoded body larger than body_size_limit (%d bytes)", limit)
	case err != nil:
		return nil, release, fail(http.StatusBadRequest, "decoding the body: %v", err)
	}
	return body, release, nil
}

// bodyParams merges the body into the query's parameters by Content-Type.
func bodyParams(r *http.Request, body []byte, query url.Values) (url.Values, error) {
	params := url.Values{}
	for k, v := range query {
		params[k] = v
	}
	ct, ctParams, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, fail(http.StatusBadRequest, "form: %v", err)
		}
		for k, v := range form {
			params[k] = v
		}
	case "multipart/form-data":
		mr := multipart.NewReader(bytes.NewReader(body), ctParams["boundary"])
		form, err := mr.ReadForm(int64(len(body)) + 1)
		if err != nil {
			return nil, fail(http.StatusBadRequest, "multipart form: %v", err)
		}
		defer func() { _ = form.RemoveAll() }()
		for k, v := range form.Value {
			params[k] = v
		}
	case "application/json", "application/csp-report":
		params.Set("json", string(body))
	case "application/msgpack", "application/x-msgpack":
		params.Set("msgpack", string(body))
	case "application/x-ndjson":
		params.Set("ndjson", string(body))
	}
	return params, nil
}

func parseDefault(ps *parserSet, params url.Values, emit func(event.Time, []byte) error) error {
	switch {
	case params.Has("msgpack"):
		if err := ps.msgpack.Parse([]byte(params.Get("msgpack")), emit); err != nil {
			return fail(http.StatusBadRequest, "msgpack: %v", err)
		}
	case params.Has("json"):
		if err := ps.json.Parse([]byte(params.Get("json")), emit); err != nil {
			return fail(http.StatusBadRequest, "json: %v", err)
		}
	case params.Has("ndjson"):
		for _, line := range strings.Split(params.Get("ndjson"), "\n") {
			if line = strings.TrimRight(line, "\r"); strings.TrimSpace(line) == "" {
				continue
			}
			if err := ps.json.Parse([]byte(line), emit); err != nil {
				return fail(http.StatusBadRequest, "ndjson: %v", err)
			}
		}
	default:
		return fail(http.StatusBadRequest, "'json', 'ndjson' or 'msgpack' parameter is required")
	}
	return nil
}

// eventTime applies the time parameter, which wins over the record's.
func eventTime(params url.Values, t event.Time) event.Time {
	if p := params.Get("time"); p != "" {
		if f, err := strconv.ParseFloat(p, 64); err == nil && f != 0 {
			return event.Time(f * 1e9)
		}
		return event.Now()
	}
	if t == 0 {
		return event.Now()
	}
	return t
}

// extraFields are the HTTP_*, QUERY_* and REMOTE_ADDR fields asked for.
func (in *Input) extraFields(r *http.Request, query url.Values) []string {
	var kv []string
	if in.AddHTTPHeaders {
		for k, v := range r.Header {
			kv = append(kv, "HTTP_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_")), strings.Join(v, ", "))
		}
	}
	if in.AddQueryParams {
		for k, v := range query {
			if len(v) > 0 {
				kv = append(kv, "QUERY_"+strings.ToUpper(strings.ReplaceAll(k, "-", "_")), v[0])
			}
		}
	}
	if in.AddRemoteAddr {
		addr := r.RemoteAddr
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			addr = strings.TrimSpace(strings.Split(xff[0], ",")[0])
		}
		kv = append(kv, "REMOTE_ADDR", addr)
	}
	return kv
}

var _ plugin.Input = (*Input)(nil)

// Listens implements plugin.Listener.
func (in *Input) Listens() []string {
	return []string{net.JoinHostPort(in.Bind, strconv.Itoa(in.Port))}
}
