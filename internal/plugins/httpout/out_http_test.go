package httpout_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/plugins/httpout"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// The http output's tests run against Go's net/http server on loopback:
// out_http speaks plain HTTP to whatever is there, so any server is a real
// one.

// received is one request the test server took.
type received struct {
	method, path string
	header       http.Header
	body         []byte // decompressed
}

// endpoint records requests and answers them with answer(n), n counting
// from 0; nil answers 200.
type endpoint struct {
	mu     sync.Mutex
	reqs   []received
	answer func(n int) int
	srv    *httptest.Server
}

func newEndpoint(t *testing.T, answer func(n int) int) *endpoint {
	ep := &endpoint{answer: answer}
	ep.srv = httptest.NewServer(ep)
	t.Cleanup(ep.srv.Close)
	return ep
}

func (ep *endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		body = zr
	}
	data, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	ep.mu.Lock()
	n := len(ep.reqs)
	status := 200
	if ep.answer != nil {
		status = ep.answer(n)
	}
	if status == 200 {
		ep.reqs = append(ep.reqs, received{r.Method, r.URL.Path, r.Header.Clone(), data})
	} else {
		ep.reqs = append(ep.reqs, received{method: "refused"})
	}
	ep.mu.Unlock()
	w.WriteHeader(status)
	fmt.Fprintf(w, "answered %d", status)
}

// accepted returns the requests answered 200.
func (ep *endpoint) accepted() []received {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	var out []received
	for _, r := range ep.reqs {
		if r.method != "refused" {
			out = append(out, r)
		}
	}
	return out
}

func (ep *endpoint) calls() int {
	ep.mu.Lock()
	defer ep.mu.Unlock()
	return len(ep.reqs)
}

const fastBuffer = `
  <buffer tag>
    flush_interval 0.05
    flush_thread_interval 0.01
    retry_wait 0.05
    retry_max_interval 0.2
    retry_forever true
  </buffer>`

// startOutput runs "<match app.**>" with params (its @type first) and a
// short shutdown_timeout (an undeliverable chunk holds the stop that
// long), and returns the output of type T.
func startOutput[T any](t *testing.T, params string) (*engine.Engine, T) {
	t.Helper()
	plugintest.Reset()
	e := plugintest.Build(t, "<system>\n  shutdown_timeout 0.5\n</system>\n<match app.**>\n"+params+"\n</match>\n")
	plugintest.Start(t, e)
	for _, p := range e.Outputs() {
		if out, ok := p.Plugin.(T); ok {
			return e, out
		}
	}
	var zero T
	t.Fatalf("no %T output", zero)
	return nil, zero
}

func startHTTP(t *testing.T, params string) (*engine.Engine, *httpout.HTTP) {
	t.Helper()
	return startOutput[*httpout.HTTP](t, "  @type http\n"+params)
}

func emit(t *testing.T, e *engine.Engine, tag string, recs ...map[string]any) {
	t.Helper()
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, tag, recs...)))
}

func metrics(o plugin.Measured) map[string]int64 {
	m := map[string]int64{}
	o.Measure(func(name, _ string, v int64, _ bool) { m[name] = v })
	return m
}

// TestHTTPNDJSONWithPlaceholdersAndAuth: the default body is one JSON
// document per line, Content-Type application/x-ndjson, POST to the
// endpoint with the chunk's tag put in, with the fixed headers, the
// headers from placeholders and basic authentication.
func TestHTTPNDJSONWithPlaceholdersAndAuth(t *testing.T) {
	ep := newEndpoint(t, nil)
	e, out := startHTTP(t, fmt.Sprintf(`
  endpoint %s/logs/${tag}
  headers {"X-Team":"platform"}
  headers_from_placeholders {"X-Tag":"${tag}"}
  retryable_response_codes [503]
  <auth>
    method basic
    username alice
    password s3cret
  </auth>`+fastBuffer, ep.srv.URL))
	emit(t, e, "app.web", map[string]any{"msg": "one"}, map[string]any{"msg": "two"})
	plugintest.WaitFor(t, "a request", func() bool { return len(ep.accepted()) == 1 })
	r := ep.accepted()[0]
	user, pass, _ := (&http.Request{Header: r.header}).BasicAuth()
	if r.method != "POST" || r.path != "/logs/app.web" || r.header.Get("Content-Type") != "application/x-ndjson" ||
		r.header.Get("X-Team") != "platform" || r.header.Get("X-Tag") != "app.web" || user != "alice" || pass != "s3cret" {
		t.Errorf("request %s %s %v", r.method, r.path, r.header)
	}
	var msgs []string
	sc := bufio.NewScanner(bytes.NewReader(r.body))
	for sc.Scan() {
		var doc map[string]any
		plugintest.Must(t, json.Unmarshal(sc.Bytes(), &doc))
		msgs = append(msgs, doc["msg"].(string))
	}
	if strings.Join(msgs, ",") != "one,two" {
		t.Errorf("body %q", r.body)
	}
	plugintest.WaitFor(t, "the answer counted", func() bool {
		m := metrics(out)
		return m["http_requests_total"] == 1 && m["http_responses_2xx_total"] == 1
	})
}

// TestHTTPJSONArrayGzipPut: json_array makes the body one JSON array,
// compress gzip compresses it, http_method put is used.
func TestHTTPJSONArrayGzipPut(t *testing.T) {
	ep := newEndpoint(t, nil)
	e, _ := startHTTP(t, fmt.Sprintf(`
  endpoint %s/bulk
  http_method put
  json_array true
  compress gzip
  retryable_response_codes [503]`+fastBuffer, ep.srv.URL))
	var recs []map[string]any
	for i := range 50 {
		recs = append(recs, map[string]any{"n": i})
	}
	emit(t, e, "app.arr", recs...)
	plugintest.WaitFor(t, "a request", func() bool { return len(ep.accepted()) == 1 })
	r := ep.accepted()[0]
	var docs []map[string]any
	if err := json.Unmarshal(r.body, &docs); err != nil {
		t.Fatalf("body is not a JSON array: %v: %q", err, r.body)
	}
	if r.method != "PUT" || r.header.Get("Content-Type") != "application/json" || r.header.Get("Content-Encoding") != "gzip" || len(docs) != 50 {
		t.Errorf("%s %v: %d documents", r.method, r.header, len(docs))
	}
}

// TestHTTPRetryableStatusesDeliverOnce: 503 (the default retryable code)
// and a code the user lists are retried; the chunk arrives once.
func TestHTTPRetryableStatusesDeliverOnce(t *testing.T) {
	ep := newEndpoint(t, func(n int) int { return [...]int{503, 429, 503, 200, 200, 200}[min(n, 5)] })
	e, out := startHTTP(t, fmt.Sprintf(`
  endpoint %s/in
  retryable_response_codes 503,429`+fastBuffer, ep.srv.URL))
	emit(t, e, "app.retry", map[string]any{"k": "v"})
	plugintest.WaitFor(t, "the chunk after three refusals", func() bool { return len(ep.accepted()) == 1 })
	if m := metrics(out); m["http_responses_5xx_total"] != 2 || m["http_responses_429_total"] != 1 {
		t.Errorf("metrics %v", m)
	}
	if n := bytes.Count(ep.accepted()[0].body, []byte("\n")); n != 1 {
		t.Errorf("%d records delivered", n)
	}
}

// TestHTTPRefusedChunkGoesToSecondary: a status that is not retryable
// fails the chunk for good: it is not sent again, and <secondary> gets it
// (secondary_file writes the chunk's formatted body).
func TestHTTPRefusedChunkGoesToSecondary(t *testing.T) {
	ep := newEndpoint(t, func(int) int { return 400 })
	dir := t.TempDir()
	e, _ := startHTTP(t, fmt.Sprintf(`
  endpoint %s/in
  retryable_response_codes [503]`+fastBuffer+`
  <secondary>
    @type secondary_file
    directory %s
    basename refused
  </secondary>`, ep.srv.URL, dir))
	emit(t, e, "app.bad", map[string]any{"k": "refused-record"})
	var dumped []byte
	plugintest.WaitFor(t, "the chunk at <secondary>", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "refused*"))
		if len(m) != 1 {
			return false
		}
		dumped, _ = os.ReadFile(m[0])
		return len(dumped) > 0
	})
	if !bytes.Contains(dumped, []byte(`"k":"refused-record"`)) {
		t.Errorf("secondary file holds %q", dumped)
	}
	if n := ep.calls(); n != 1 {
		t.Errorf("a refused chunk was sent %d times", n)
	}
}

// TestHTTPErrorResponseDroppedWhenAsked: with
// error_response_as_unrecoverable false the chunk is logged, dropped and
// counted, as Fluentd drops it; nothing goes to <secondary>.
func TestHTTPErrorResponseDroppedWhenAsked(t *testing.T) {
	ep := newEndpoint(t, func(int) int { return 404 })
	e, out := startHTTP(t, fmt.Sprintf(`
  endpoint %s/in
  error_response_as_unrecoverable false
  retryable_response_codes [503]`+fastBuffer+`
  <secondary>
    @type secondary_file
    directory %s
  </secondary>`, ep.srv.URL, t.TempDir()))
	emit(t, e, "app.bad", map[string]any{"k": 1}, map[string]any{"k": 2})
	plugintest.WaitFor(t, "the drop to be counted", func() bool { return metrics(out)["dropped_records_total"] == 2 })
	if ep.calls() != 1 {
		t.Errorf("%d calls", ep.calls())
	}
}

// TestHTTPNoAnswerIsRetriedAndCounted: a server that takes the request and
// never answers within read_timeout: the chunk is sent again, and its
// records are counted as possibly delivered twice.
func TestHTTPNoAnswerIsRetriedAndCounted(t *testing.T) {
	var hung atomic.Bool
	release := make(chan struct{})
	ep := newEndpoint(t, nil)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hung.CompareAndSwap(false, true) {
			select { // the first request hangs past read_timeout
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		ep.ServeHTTP(w, r)
	}))
	defer slow.Close()
	defer close(release)
	e, out := startHTTP(t, fmt.Sprintf(`
  endpoint %s/in
  read_timeout 0.3
  retryable_response_codes [503]`+fastBuffer, slow.URL))
	emit(t, e, "app.slow", map[string]any{"k": "v"})
	plugintest.WaitFor(t, "the retry's delivery", func() bool { return len(ep.accepted()) == 1 })
	if m := metrics(out); m["http_request_errors_total"] != 1 || m["ambiguous_retries_total"] != 1 {
		t.Errorf("metrics %v", m)
	}
}

// TestHTTPSWithCA: an https endpoint whose certificate chains to
// tls_ca_cert_path is trusted; without it the handshake fails and the
// chunk is retried, not dropped.
func TestHTTPSWithCA(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath := plugintest.WriteCert(t, dir)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	plugintest.Must(t, err)
	ep := &endpoint{}
	ep.srv = httptest.NewUnstartedServer(ep)
	ep.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	ep.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes
	ep.srv.StartTLS()
	defer ep.srv.Close()
	url := ep.srv.URL // the certificate is for 127.0.0.1
	e, _ := startHTTP(t, fmt.Sprintf(`
  endpoint %s/secure
  tls_ca_cert_path %s
  retryable_response_codes [503]`+fastBuffer, url, certPath))
	emit(t, e, "app.tls", map[string]any{"k": "tls"})
	plugintest.WaitFor(t, "an HTTPS delivery", func() bool { return len(ep.accepted()) == 1 })

	untrusted, out := startHTTP(t, fmt.Sprintf(`
  endpoint %s/secure
  retryable_response_codes [503]`+fastBuffer, url))
	emit(t, untrusted, "app.tls", map[string]any{"k": "untrusted"})
	plugintest.WaitFor(t, "failed handshakes", func() bool { return metrics(out)["http_request_errors_total"] >= 2 })
	if len(ep.accepted()) != 1 {
		t.Error("a server whose certificate is not trusted got the chunk")
	}
}

// TestHTTPSigV4: <auth> aws_sigv4 signs each request for the service and
// region with the credential chain's keys.
func TestHTTPSigV4(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDSIGV4TEST")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	ep := newEndpoint(t, nil)
	e, _ := startHTTP(t, fmt.Sprintf(`
  endpoint %s/ingest
  retryable_response_codes [503]
  <auth>
    method aws_sigv4
    aws_service osis
    aws_region eu-west-1
  </auth>`+fastBuffer, ep.srv.URL))
	emit(t, e, "app.signed", map[string]any{"k": "v"})
	plugintest.WaitFor(t, "a request", func() bool { return len(ep.accepted()) == 1 })
	auth := ep.accepted()[0].header.Get("Authorization")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 Credential=AKIDSIGV4TEST/") || !strings.Contains(auth, "/eu-west-1/osis/aws4_request") {
		t.Errorf("Authorization %q", auth)
	}
}

func TestHTTPConfigErrors(t *testing.T) {
	for _, tc := range []struct{ params, want string }{
		{"endpoint http://x/\njson_array true\n<format>\n  @type csv\n  fields a\n</format>", "json_array needs the json formatter"},
		{"endpoint http://x/\n<format>\n  @type ltsv\n</format>\nretryable_response_codes abc,503", "not a status code"},
		{"endpoint http://x/\n<auth>\n  method aws_sigv4\n</auth>", "aws_service and aws_region"},
		{"http_method get\nendpoint http://x/", "http_method"},
	} {
		_, err := plugintest.BuildErr("<match **>\n  @type http\n" + tc.params + "\n</match>\n")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.params, err, tc.want)
		}
	}
}
