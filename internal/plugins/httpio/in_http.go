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
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/valyala/fasthttp"

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
	conns     *connSet
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

// parserSet is what one request in progress parses with.
type parserSet struct {
	custom, json, msgpack plugin.Parser
	stream                event.Builder
	record                []byte
	params                params
	form                  fasthttp.Args
	fields                []string // add_http_headers and friends: key, value, ...
	emitFn                func(event.Time, []byte) error
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
		ps.emitFn = ps.emit
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
	in.conns = newConnSet(&in.Stats.Connections)
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
	srv := in.newServer(func(rc *fasthttp.RequestCtx) { in.serve(rc, out) })
	return srv.serve(ctx, in.ln, in.tlsConfig)
}

// Close implements plugin.Closer: it ends requests a drain cut short by
// the shutdown deadline still waits for.
func (in *Input) Close(context.Context) error {
	if in.ln != nil {
		in.ln.Close()
	}
	if in.conns != nil {
		in.conns.closeAll()
	}
	return nil
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

// respondError answers code with a plain-text body: the status line's
// text, then msg.
func respondError(rc *fasthttp.RequestCtx, code int, msg string) {
	rc.Response.Header.Set(fasthttp.HeaderContentType, "text/plain; charset=utf-8")
	rc.Response.Header.Set(fasthttp.HeaderXContentTypeOptions, "nosniff")
	rc.SetStatusCode(code)
	body := strconv.Itoa(code) + " " + fasthttp.StatusMessage(code) + "\n"
	if msg != "" {
		body += msg + "\n"
	}
	rc.SetBodyString(body)
}

func (in *Input) serve(rc *fasthttp.RequestCtx, out plugin.Emitter) {
	in.Stats.Requests.Add(1)
	defer func() {
		if in.conns.draining.Load() {
			rc.SetConnectionClose() // the client reconnects, to another instance
		}
	}()
	if rc.IsOptions() {
		in.preflight(rc)
		return
	}
	if !rc.IsPost() && !rc.IsPut() && !rc.IsGet() {
		rc.Response.Header.Set(fasthttp.HeaderAllow, "GET, POST, PUT, OPTIONS")
		respondError(rc, fasthttp.StatusMethodNotAllowed, "")
		return
	}
	if len(in.CORSAllowOrigins) > 0 {
		origin := string(rc.Request.Header.Peek(fasthttp.HeaderOrigin))
		if !in.originAllowed(origin) {
			in.Stats.Forbidden.Add(1)
			rc.SetConnectionClose()
			rc.SetStatusCode(fasthttp.StatusForbidden)
			return
		}
		in.corsHeaders(rc, origin)
	}
	n, err := in.handle(rc, out)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = &httpError{code: fasthttp.StatusInternalServerError, msg: err.Error()}
		}
		switch he.code {
		case fasthttp.StatusBadRequest:
			in.Stats.BadRequests.Add(1)
		case fasthttp.StatusRequestEntityTooLarge:
			in.Stats.TooLarge.Add(1)
			rc.SetConnectionClose() // rather than read the rest of the body
		case fasthttp.StatusServiceUnavailable:
			in.Stats.Refused.Add(1)
			rc.Response.Header.Set(fasthttp.HeaderRetryAfter, "1")
		}
		if in.DumpErrorLog {
			in.log.Warn("http request failed", "remote", rc.RemoteAddr().String(), "path", string(rc.Path()), "status", he.code, "err", he.msg)
		}
		respondError(rc, he.code, he.msg)
		return
	}
	in.Stats.Events.Add(int64(n))
	switch {
	case in.RespondWithEmptyImg:
		rc.Response.Header.Set(fasthttp.HeaderContentType, "image/gif; charset=utf-8")
		rc.SetBody(emptyGIF)
	case in.Use204Response:
		rc.SetStatusCode(fasthttp.StatusNoContent)
	default:
		rc.Response.Header.Set(fasthttp.HeaderContentType, "text/plain")
	}
}

func (in *Input) preflight(rc *fasthttp.RequestCtx) {
	origin := string(rc.Request.Header.Peek(fasthttp.HeaderOrigin))
	if len(in.CORSAllowOrigins) == 0 || string(rc.Request.Header.Peek(fasthttp.HeaderAccessControlRequestMethod)) != fasthttp.MethodPost || !in.originAllowed(origin) {
		in.Stats.Forbidden.Add(1)
		rc.SetStatusCode(fasthttp.StatusForbidden)
		return
	}
	rc.Response.Header.Set(fasthttp.HeaderAccessControlAllowMethods, fasthttp.MethodPost)
	rc.Response.Header.SetBytesV(fasthttp.HeaderAccessControlAllowHeaders, rc.Request.Header.Peek(fasthttp.HeaderAccessControlRequestHeaders))
	in.corsHeaders(rc, origin)
}

func (in *Input) corsHeaders(rc *fasthttp.RequestCtx, origin string) {
	if slices.Contains(in.CORSAllowOrigins, "*") {
		rc.Response.Header.Set(fasthttp.HeaderAccessControlAllowOrigin, "*")
		return
	}
	rc.Response.Header.Set(fasthttp.HeaderAccessControlAllowOrigin, origin)
	if in.CORSAllowCredentials {
		rc.Response.Header.Set(fasthttp.HeaderAccessControlAllowCredentials, "true")
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

// params are a request's event parameters: the body's, when it is a form
// or its Content-Type names it, over the query's.
type params struct {
	query *fasthttp.Args
	form  *fasthttp.Args // the fields of a form body; nil for other bodies
	named string         // the parameter the whole body is ("json" for application/json)
	body  []byte
}

func (p *params) get(key string) ([]byte, bool) {
	if p.named == key {
		return p.body, true
	}
	if p.form != nil && p.form.Has(key) {
		return p.form.Peek(key), true
	}
	if p.query.Has(key) {
		return p.query.Peek(key), true
	}
	return nil, false
}

// handle reads, parses and emits one request; it returns how many events
// were emitted.
func (in *Input) handle(rc *fasthttp.RequestCtx, out plugin.Emitter) (int, error) {
	query := rc.QueryArgs()
	if rc.IsGet() && (in.custom || !hasEventParam(query)) {
		return 0, nil // a health check
	}
	tag := tagOf(rc.Path())
	if tag == "" {
		return 0, fail(fasthttp.StatusBadRequest, "the URL path gives the tag, and it is empty")
	}
	body, held, err := in.readBody(rc)
	defer in.releaseBody(held)
	if err != nil {
		return 0, err
	}
	ps := <-in.parsers
	defer func() { in.parsers <- ps }()
	ps.stream.Reset()
	ps.params = params{query: query}
	ps.fields = in.extraFields(rc, query, ps.fields[:0])
	if in.custom {
		if err := ps.custom.Parse(body, ps.emitFn); err != nil {
			return 0, fail(fasthttp.StatusBadRequest, "%v", err)
		}
	} else {
		if err := bodyParams(rc, body, ps); err != nil {
			return 0, err
		}
		if err := parseDefault(ps); err != nil {
			return 0, err
		}
	}
	n := ps.stream.Len()
	if n == 0 {
		return 0, nil
	}
	if err := out.Emit(in.emitCtx, ps.stream.Stream(tag)); err != nil {
		if errors.Is(err, plugin.ErrOverflow) || errors.Is(err, context.Canceled) {
			return 0, fail(fasthttp.StatusServiceUnavailable, "events not accepted, retry later: %v", err)
		}
		return 0, fail(fasthttp.StatusServiceUnavailable, "events not accepted: %v", err)
	}
	return n, nil
}

// tagOf makes the tag of a URL path: /app/events is app.events.
func tagOf(path []byte) string {
	tag := strings.Trim(string(path), "/")
	return strings.ReplaceAll(tag, "/", ".")
}

// emit adds one parsed event to the request's stream, with the fields
// add_http_headers, add_query_params and add_remote_addr ask for.
func (ps *parserSet) emit(t event.Time, rec []byte) error {
	if len(ps.fields) > 0 {
		var err error
		if ps.record, err = event.AppendRecordFields(ps.record[:0], rec, ps.fields...); err != nil {
			return err
		}
		rec = ps.record
	}
	ps.stream.Append(ps.params.eventTime(t), rec)
	return nil
}

func hasEventParam(q *fasthttp.Args) bool {
	return q.Has("json") || q.Has("msgpack") || q.Has("ndjson")
}

// readAhead is how much of a streamed body fasthttp reads before the
// handler runs (min(Content-Length, 8 KiB)): each connection holds that
// much outside body_buffer_limit, and a body that fits is not reserved.
const readAhead = 8 << 10

// budgetPatience is how long a request waits for buffer space.
const budgetPatience = 10 * time.Second

// heldBody is what a request holds while its body is in use: its share
// of body_buffer_limit and the pooled buffer the raw bytes are in.
type heldBody struct {
	reserved int64
	raw      *[]byte
}

// rawBuffers keeps the buffers small bodies are read into; a buffer past
// maxPooledBody is left to the collector, so that one large body does not
// stay allocated.
var rawBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

const maxPooledBody = 64 << 10

func (in *Input) releaseBody(h heldBody) {
	if h.reserved > 0 {
		in.budget.Release(h.reserved)
	}
	if h.raw != nil && cap(*h.raw) <= maxPooledBody {
		*h.raw = (*h.raw)[:0]
		rawBuffers.Put(h.raw)
	}
}

// readBody reads the body within body_size_limit and the shared
// body_buffer_limit, and decodes its Content-Encoding. The caller gives
// held back with releaseBody once done with the body, also on an error.
func (in *Input) readBody(rc *fasthttp.RequestCtx) (body []byte, held heldBody, err error) {
	limit := int64(in.BodySizeLimit)
	cl := int64(rc.Request.Header.ContentLength()) // -1: chunked; -2: none
	if cl > limit {
		return nil, held, fail(fasthttp.StatusRequestEntityTooLarge, "body larger than body_size_limit (%d bytes)", limit)
	}
	stream := rc.RequestBodyStream()
	if stream == nil || cl == 0 || cl == -2 {
		return rc.Request.Body(), held, nil // nothing streamed: at most what fasthttp read ahead
	}
	reserve := limit
	switch {
	case cl >= 0 && cl <= readAhead:
		reserve = 0 // in memory already, held by the connection
	case cl >= 0:
		reserve = cl
	}
	if reserve > 0 {
		if err := in.budget.Acquire(rc, reserve, budgetPatience); err != nil {
			rc.SetConnectionClose() // its body stays unread
			return nil, held, fail(fasthttp.StatusServiceUnavailable, "too many large requests at once; retry later")
		}
		held.reserved = reserve
	}
	held.raw = rawBuffers.Get().(*[]byte)
	raw, _, err := budget.ReadAll(stream, *held.raw, int(limit), nil) // held already
	*held.raw = raw
	switch {
	case errors.Is(err, budget.ErrTooLarge):
		return nil, held, fail(fasthttp.StatusRequestEntityTooLarge, "body larger than body_size_limit (%d bytes)", limit)
	case err != nil:
		rc.SetConnectionClose()
		return nil, held, fail(fasthttp.StatusBadRequest, "reading the body: %v", err)
	}
	encoding := rc.Request.Header.ContentEncoding()
	if len(encoding) == 0 || bytes.EqualFold(encoding, []byte("identity")) {
		return raw, held, nil
	}
	var dec io.Reader
	switch {
	case bytes.EqualFold(encoding, []byte("gzip")):
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, held, fail(fasthttp.StatusBadRequest, "gzip: %v", err)
		}
		dec = zr
	case bytes.EqualFold(encoding, []byte("deflate")):
		dec = flate.NewReader(bytes.NewReader(raw))
	default:
		return nil, held, fail(fasthttp.StatusBadRequest, "Content-Encoding %q is not supported (gzip, deflate)", encoding)
	}
	// The decoded body is held too: it takes its own share of the budget,
	// reserved before each growth, so that concurrent compressed requests
	// stay within body_buffer_limit however far they inflate.
	body, granted, err := budget.ReadAll(dec, nil, int(limit), func(n int) error {
		return in.budget.Acquire(rc, int64(n), budgetPatience)
	})
	held.reserved += int64(granted)
	var refused *budget.Refused
	switch {
	case errors.As(err, &refused):
		return nil, held, fail(fasthttp.StatusServiceUnavailable, "too many large requests at once; retry later")
	case errors.Is(err, budget.ErrTooLarge):
		return nil, held, fail(fasthttp.StatusRequestEntityTooLarge, "decoded body larger than body_size_limit (%d bytes)", limit)
	case err != nil:
		return nil, held, fail(fasthttp.StatusBadRequest, "decoding the body: %v", err)
	}
	return body, held, nil
}

// mediaType is the Content-Type without its parameters, in lower case.
func mediaType(ct []byte) string {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	return strings.ToLower(string(bytes.TrimSpace(ct)))
}

// bodyParams sets ps.params from the body by Content-Type.
func bodyParams(rc *fasthttp.RequestCtx, body []byte, ps *parserSet) error {
	p := &ps.params
	ct := rc.Request.Header.ContentType()
	switch mediaType(ct) {
	case "application/x-www-form-urlencoded":
		form, err := url.ParseQuery(string(body))
		if err != nil {
			return fail(fasthttp.StatusBadRequest, "form: %v", err)
		}
		ps.form.Reset()
		for k, vs := range form {
			for _, v := range vs {
				ps.form.Add(k, v)
			}
		}
		p.form = &ps.form
	case "multipart/form-data":
		_, ctParams, err := mime.ParseMediaType(string(ct))
		if err != nil {
			return fail(fasthttp.StatusBadRequest, "multipart form: %v", err)
		}
		mr := multipart.NewReader(bytes.NewReader(body), ctParams["boundary"])
		form, err := mr.ReadForm(int64(len(body)) + 1)
		if err != nil {
			return fail(fasthttp.StatusBadRequest, "multipart form: %v", err)
		}
		defer func() { _ = form.RemoveAll() }()
		ps.form.Reset()
		for k, vs := range form.Value {
			for _, v := range vs {
				ps.form.Add(k, v)
			}
		}
		p.form = &ps.form
	case "application/json", "application/csp-report":
		p.named, p.body = "json", body
	case "application/msgpack", "application/x-msgpack":
		p.named, p.body = "msgpack", body
	case "application/x-ndjson":
		p.named, p.body = "ndjson", body
	}
	return nil
}

func parseDefault(ps *parserSet) error {
	p := &ps.params
	if v, ok := p.get("msgpack"); ok {
		if err := ps.msgpack.Parse(v, ps.emitFn); err != nil {
			return fail(fasthttp.StatusBadRequest, "msgpack: %v", err)
		}
		return nil
	}
	if v, ok := p.get("json"); ok {
		if err := ps.json.Parse(v, ps.emitFn); err != nil {
			return fail(fasthttp.StatusBadRequest, "json: %v", err)
		}
		return nil
	}
	if v, ok := p.get("ndjson"); ok {
		for line := range bytes.SplitSeq(v, []byte("\n")) {
			if line = bytes.TrimRight(line, "\r"); len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if err := ps.json.Parse(line, ps.emitFn); err != nil {
				return fail(fasthttp.StatusBadRequest, "ndjson: %v", err)
			}
		}
		return nil
	}
	return fail(fasthttp.StatusBadRequest, "'json', 'ndjson' or 'msgpack' parameter is required")
}

// eventTime applies the time parameter, which wins over the record's.
func (p *params) eventTime(t event.Time) event.Time {
	if v, ok := p.get("time"); ok && len(v) > 0 {
		if f, err := strconv.ParseFloat(string(v), 64); err == nil && f != 0 {
			return event.Time(f * 1e9)
		}
		return event.Now()
	}
	if t == 0 {
		return event.Now()
	}
	return t
}

// extraFields appends to kv the HTTP_*, QUERY_* and REMOTE_ADDR fields
// asked for.
func (in *Input) extraFields(rc *fasthttp.RequestCtx, query *fasthttp.Args, kv []string) []string {
	if in.AddHTTPHeaders {
		headers := map[string][]string{}
		var names []string
		for k, v := range rc.Request.Header.All() {
			name := "HTTP_" + strings.ToUpper(strings.ReplaceAll(string(k), "-", "_"))
			if _, ok := headers[name]; !ok {
				names = append(names, name)
			}
			headers[name] = append(headers[name], string(v))
		}
		for _, name := range names {
			kv = append(kv, name, strings.Join(headers[name], ", "))
		}
	}
	if in.AddQueryParams {
		seen := map[string]bool{}
		for k, v := range query.All() {
			name := "QUERY_" + strings.ToUpper(strings.ReplaceAll(string(k), "-", "_"))
			if !seen[name] {
				seen[name] = true
				kv = append(kv, name, string(v))
			}
		}
	}
	if in.AddRemoteAddr {
		addr := rc.RemoteAddr().String()
		if host, _, err := net.SplitHostPort(addr); err == nil {
			addr = host
		}
		if xff := rc.Request.Header.Peek(fasthttp.HeaderXForwardedFor); len(xff) > 0 {
			first, _, _ := bytes.Cut(xff, []byte(","))
			addr = string(bytes.TrimSpace(first))
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
