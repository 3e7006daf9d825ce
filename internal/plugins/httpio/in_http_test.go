package httpio_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugins/httpio"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// start runs conf, whose http source must listen on port 0, and returns
// the base URL.
func start(t *testing.T, conf string) (*engine.Engine, *httpio.Input, string) {
	t.Helper()
	plugintest.Reset()
	e := plugintest.Build(t, conf)
	plugintest.Start(t, e)
	in := e.Inputs()[0].(*httpio.Input)
	var addr string
	plugintest.WaitFor(t, "the listener", func() bool { addr = in.BoundAddr(); return addr != "" })
	// The listener is bound before Run serves it; wait until it answers.
	plugintest.WaitFor(t, "the server", func() bool {
		resp, err := http.Get("http://" + addr + "/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil
	})
	return e, in, "http://" + addr
}

const captureAll = `
<match **>
  @type capture
  name http
</match>`

func source(extra string) string {
	return "<source>\n  @type http\n  bind 127.0.0.1\n  port 0\n" + extra + "\n</source>\n"
}

func curl(t *testing.T, args ...string) (int, string) {
	t.Helper()
	out, err := exec.Command("curl", append([]string{"-s", "-o", "/dev/stderr", "-w", "%{http_code}"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	code := 0
	body := string(out)
	if len(body) >= 3 {
		fmt.Sscanf(body[len(body)-3:], "%d", &code)
		body = body[:len(body)-3]
	}
	return code, body
}

// TestSeed000HealthCheck runs the Docker health check of seed 000,
// verbatim but for the port, with real curl: 200, and the event reaches
// the health* match.
func TestSeed000HealthCheck(t *testing.T) {
	_, _, base := start(t, source("")+`
<match health*>
  @type copy
  <store>
    @type null
  </store>
  <store>
    @type capture
    name health
  </store>
</match>`)
	port := strings.TrimPrefix(base, "http://127.0.0.1:")
	code, _ := curl(t, "http://localhost:"+port+"/healthcheck?json=%7B%22log%22%3A+%22health+check%22%7D")
	if code != 200 {
		t.Fatalf("health check answered %d", code)
	}
	got := plugintest.Captured("health")
	if len(got) != 1 || got[0].Tag != "healthcheck" || got[0].Record["log"] != "health check" {
		t.Errorf("captured %+v", got)
	}
}

// TestSeed002Source runs the http source section of seed 002 verbatim but
// for the port, with curl's default form body: the record has path and
// content, and the single_value formatter prints exactly the content.
func TestSeed002Source(t *testing.T) {
	dir := t.TempDir()
	_, _, base := start(t, `
<source>
  @type http
  bind 127.0.0.1
  port 0
  body_size_limit 32m
  keepalive_timeout 10s
  <parse>
    @type regexp
    expression /^(?<path>[^\s]+) (?<content>.+)$/m
  </parse>
</source>
<match **>
  @type copy
  <store>
    @type capture
    name seed2
  </store>
  <store>
    @type file
    path `+dir+`/out
    append true
    add_path_suffix false
    <buffer time>
      timekey 1d
      flush_mode immediate
    </buffer>
    <format>
      @type single_value
      message_key content
    </format>
  </store>
</match>`)
	code, _ := curl(t, "-d", "customer-17/events some content", base+"/app.events")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	got := plugintest.Captured("seed2")
	if len(got) != 1 || got[0].Record["path"] != "customer-17/events" || got[0].Record["content"] != "some content" || len(got[0].Record) != 2 {
		t.Fatalf("record %+v", got)
	}
	plugintest.WaitFor(t, "the formatted file", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "out.*"))
		if len(m) != 1 {
			return false
		}
		data, _ := os.ReadFile(m[0])
		return string(data) == "some content\n"
	})
	if code, _ := curl(t, "-d", "no-space-here", base+"/app.events"); code != 400 {
		t.Errorf("a body the expression does not match answered %d, want 400", code)
	}
}

func post(t *testing.T, url, contentType string, body []byte, headers ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestBodiesAndEncodings(t *testing.T) {
	_, in, base := start(t, source("add_remote_addr true\nadd_http_headers true")+captureAll)
	gz := func(b []byte) []byte {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	fl := func(b []byte) []byte {
		var buf bytes.Buffer
		w, _ := flate.NewWriter(&buf, 5)
		w.Write(b)
		w.Close()
		return buf.Bytes()
	}
	mp := msgp.AppendString(msgp.AppendString(msgp.AppendMapHeader(nil, 1), "k"), "msgpack")
	cases := []struct {
		name, path, ct string
		body           []byte
		headers        []string
		events         int
	}{
		{"json object", "/a.json", "application/json", []byte(`{"k":"json"}`), nil, 1},
		{"json array batch", "/a.batch", "application/json", []byte(`[{"k":1},{"k":2},{"k":3}]`), nil, 3},
		{"form json=", "/a.form", "application/x-www-form-urlencoded", []byte("json=" + url.QueryEscape(`{"k":"form"}`)), nil, 1},
		{"msgpack body", "/a.mp", "application/msgpack", mp, nil, 1},
		{"form msgpack=", "/a.mpform", "application/x-www-form-urlencoded", []byte("msgpack=" + url.QueryEscape(string(mp))), nil, 1},
		{"ndjson", "/a.nd", "application/x-ndjson", []byte("{\"k\":1}\n{\"k\":2}\n"), nil, 2},
		{"gzip", "/a.gz", "application/json", gz([]byte(`{"k":"gz"}`)), []string{"Content-Encoding", "gzip"}, 1},
		{"deflate", "/a.df", "application/json", fl([]byte(`{"k":"df"}`)), []string{"Content-Encoding", "deflate"}, 1},
		{"csp report", "/a.csp", "application/csp-report", []byte(`{"csp-report":{"document-uri":"x"}}`), nil, 1},
		{"path with slashes", "/a/b/c", "application/json", []byte(`{"k":"slash"}`), nil, 1},
	}
	total := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, base+tc.path, tc.ct, tc.body, append(tc.headers, "X-Forwarded-For", "10.1.2.3, 10.0.0.1")...)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			total += tc.events
			if n := len(plugintest.Captured("http")); n != total {
				t.Fatalf("captured %d events in all, want %d", n, total)
			}
		})
	}
	got := plugintest.Captured("http")
	last := got[len(got)-1]
	if last.Tag != "a.b.c" || last.Record["REMOTE_ADDR"] != "10.1.2.3" || last.Record["HTTP_CONTENT_TYPE"] != "application/json" {
		t.Errorf("last event %+v", last)
	}
	if in.Stats.Events.Load() != int64(total) {
		t.Errorf("events counted %d", in.Stats.Events.Load())
	}
}

func TestTimes(t *testing.T) {
	_, _, base := start(t, source("")+captureAll)
	post(t, base+"/t.param?time=1518756037.5", "application/json", []byte(`{"k":1}`))
	post(t, base+"/t.record", "application/json", []byte(`{"k":2,"time":1362020400}`))
	before := time.Now()
	post(t, base+"/t.now", "application/json", []byte(`{"k":3}`))
	got := plugintest.Captured("http")
	if len(got) != 3 {
		t.Fatalf("captured %d", len(got))
	}
	if got[0].Time != 1518756037500000000 {
		t.Errorf("time parameter gave %v", got[0].Time)
	}
	if got[1].Time != 1362020400e9 || got[1].Record["time"] != nil {
		t.Errorf("record time gave %v (record %v)", got[1].Time, got[1].Record)
	}
	if got[2].Time.Std().Before(before.Add(-time.Second)) {
		t.Errorf("no time gave %v", got[2].Time.Std())
	}
}

func TestErrorsAndLimits(t *testing.T) {
	_, in, base := start(t, source("body_size_limit 1k")+captureAll)
	cases := []struct {
		name, method, path, ct string
		body                   string
		code                   int
	}{
		{"bad json", "POST", "/x", "application/json", `{"k":`, 400},
		{"no parameter", "POST", "/x", "text/plain", "hello", 400},
		{"not an object", "POST", "/x", "application/json", `"str"`, 400},
		{"too large", "POST", "/x", "application/json", `{"k":"` + strings.Repeat("x", 2000) + `"}`, 413},
		{"empty tag", "POST", "/", "application/json", `{"k":1}`, 400},
		{"bad gzip", "POST", "/x", "application/json", "not gzip", 400},
		{"method", "DELETE", "/x", "", "", 405},
		{"plain GET is a health check", "GET", "/anything", "", "", 200},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			if tc.name == "bad gzip" {
				req.Header.Set("Content-Encoding", "gzip")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
		})
	}
	if n := len(plugintest.Captured("http")); n != 0 {
		t.Errorf("%d events from bad requests", n)
	}
	if in.Stats.BadRequests.Load() < 5 || in.Stats.TooLarge.Load() != 1 {
		t.Errorf("bad %d, too large %d", in.Stats.BadRequests.Load(), in.Stats.TooLarge.Load())
	}
}

func TestBufferRefusalIs503(t *testing.T) {
	// The output never flushes: a short shutdown_timeout ends the drain.
	_, in, base := start(t, "<system>\n  shutdown_timeout 0.2\n</system>\n"+source("")+`
<match **>
  @type null
  never_flush true
  <buffer>
    chunk_limit_size 200
    total_limit_size 400
    retry_forever true
  </buffer>
</match>`)
	codes := map[int]int{}
	for i := 0; i < 20; i++ {
		resp := post(t, base+"/x", "application/json", []byte(`{"k":"`+strings.Repeat("y", 100)+`"}`))
		codes[resp.StatusCode]++
		if resp.StatusCode == 503 && resp.Header.Get("Retry-After") == "" {
			t.Error("503 without Retry-After")
		}
	}
	if codes[503] == 0 || in.Stats.Refused.Load() == 0 {
		t.Errorf("status codes %v: a full buffer must answer 503", codes)
	}
}

func TestResponsesAndCORS(t *testing.T) {
	_, _, base := start(t, source("use_204_response true\ncors_allow_origins [\"https://*.example.com\"]\ncors_allow_credentials true")+captureAll)
	resp := post(t, base+"/c", "application/json", []byte(`{"k":1}`), "Origin", "https://app.example.com")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		resp.Header.Get("Access-Control-Allow-Credentials") != "true" {
		t.Errorf("allowed origin: %d %v", resp.StatusCode, resp.Header)
	}
	if resp := post(t, base+"/c", "application/json", []byte(`{"k":1}`), "Origin", "https://evil.test"); resp.StatusCode != 403 {
		t.Errorf("other origin: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodOptions, base+"/c", nil)
	req.Header.Set("Origin", "https://app.example.com")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "Content-Type")
	pre, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pre.Body.Close()
	if pre.StatusCode != 200 || pre.Header.Get("Access-Control-Allow-Methods") != "POST" {
		t.Errorf("preflight: %d %v", pre.StatusCode, pre.Header)
	}

	_, _, img := start(t, source("respond_with_empty_img true")+captureAll)
	r2, _ := http.Post(img+"/i", "application/json", strings.NewReader(`{"k":1}`))
	body, _ := io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.Header.Get("Content-Type") != "image/gif; charset=utf-8" || !bytes.HasPrefix(body, []byte("GIF89a")) {
		t.Errorf("empty image: %v %q", r2.Header, body)
	}
}

// TestSlowClientsDoNotStallOthers: a client that sends headers slowly and
// one that never finishes its body hold their own connections only.
func TestSlowClientsDoNotStallOthers(t *testing.T) {
	_, _, base := start(t, source("request_timeout 1")+captureAll)
	addr := strings.TrimPrefix(base, "http://")
	slow, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer slow.Close()
	slow.Write([]byte("POST /slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{\"k\":"))
	start := time.Now()
	if resp := post(t, base+"/fast", "application/json", []byte(`{"k":"fast"}`)); resp.StatusCode != 200 {
		t.Fatalf("a normal client got %d while another was slow", resp.StatusCode)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("a normal request took %v behind a slow one", d)
	}
	// The slow body is cut off by request_timeout.
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(slow); err != nil && !strings.Contains(err.Error(), "reset") {
		t.Errorf("the slow connection was not closed: %v", err)
	}
	_ = context.Background()
}

func FuzzHTTPBodies(f *testing.F) {
	e := plugintest.Build(f, source("")+"<match **>\n  @type null\n</match>\n")
	plugintest.Start(f, e)
	in := e.Inputs()[0].(*httpio.Input)
	var addr string
	plugintest.WaitFor(f, "listener", func() bool { addr = in.BoundAddr(); return addr != "" })
	for _, s := range []string{`{"a":1}`, `[{"a":1},{"b":[1,2]}]`, "\x81\xa1a\x01", "json=%7B%7D", "{\"a\":1}\n{\"b\":2}"} {
		f.Add([]byte(s), uint8(0))
	}
	types := []string{"application/json", "application/msgpack", "application/x-ndjson", "application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"}
	f.Fuzz(func(t *testing.T, body []byte, ct uint8) {
		resp, err := http.Post("http://"+addr+"/fuzz", types[int(ct)%len(types)], bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 && resp.StatusCode != 400 {
			t.Fatalf("status %d for %q", resp.StatusCode, body)
		}
	})
}

func TestHTTPS(t *testing.T) {
	cert, key := plugintest.WriteCert(t, t.TempDir())
	plugintest.Reset()
	e := plugintest.Build(t, source("<transport tls>\n  cert_path "+cert+"\n  private_key_path "+key+"\n</transport>")+captureAll)
	plugintest.Start(t, e)
	in := e.Inputs()[0].(*httpio.Input)
	var addr string
	plugintest.WaitFor(t, "the listener", func() bool { addr = in.BoundAddr(); return addr != "" })
	pem, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	var resp *http.Response
	plugintest.WaitFor(t, "an HTTPS answer", func() bool {
		var err error
		resp, err = client.Post("https://"+addr+"/secure.tag", "application/json", strings.NewReader(`{"k":"tls"}`))
		return err == nil
	})
	resp.Body.Close()
	if resp.StatusCode != 200 || len(plugintest.Captured("http")) != 1 {
		t.Errorf("status %d, captured %d", resp.StatusCode, len(plugintest.Captured("http")))
	}
	if plain, err := http.Post("http://"+addr+"/secure.tag", "application/json", strings.NewReader(`{}`)); err == nil {
		plain.Body.Close()
		if plain.StatusCode == 200 {
			t.Error("plain HTTP was served on the TLS port")
		}
	}
}

// A compressed body's decoded bytes are held from body_buffer_limit too,
// before they are allocated: 30 gzip requests once took 3.7 GB against a
// 256 MiB limit that counted only their compressed bytes.
func TestDecodedBodiesCountAgainstBodyBufferLimit(t *testing.T) {
	_, in, base := start(t, "<system>\n  shutdown_timeout 0.2\n</system>\n"+source("body_size_limit 8m\nbody_buffer_limit 16m")+`
<match **>
  @type null
  never_flush true
  <buffer>
    chunk_limit_size 64k
    total_limit_size 128k
    overflow_action block
  </buffer>
</match>`)
	var records bytes.Buffer
	records.WriteString("[")
	for i := 0; i < 3000; i++ {
		if i > 0 {
			records.WriteString(",")
		}
		fmt.Fprintf(&records, `{"n":%d,"log":"%s"}`, i, strings.Repeat("z", 1000))
	}
	records.WriteString("]")
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(records.Bytes())
	zw.Close()
	go func() {
		// Its emit blocks on the full buffer, holding the decoded body.
		req, _ := http.NewRequest(http.MethodPost, base+"/app", bytes.NewReader(z.Bytes()))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	plugintest.WaitFor(t, "the decoded body to be held from the budget", func() bool {
		return in.BodyBufferUsed() >= int64(records.Len())
	})
}

// TestStopEndsRequestsTheDrainWaitsFor: a client that sent half a request
// keeps its connection active, and the server's drain would wait
// transport.HTTPDrainGrace for it. When the shutdown deadline is shorter,
// the engine's close of the input ends the connection, and the engine
// stops only once the input has (the package's goleak check sees any
// input goroutine left behind).
func TestStopEndsRequestsTheDrainWaitsFor(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, "<system>\n  shutdown_timeout 0.2\n</system>\n"+source("")+"<match **>\n  @type null\n</match>\n")
	stop := plugintest.Start(t, e)
	in := e.Inputs()[0].(*httpio.Input)
	var addr string
	plugintest.WaitFor(t, "the listener", func() bool { addr = in.BoundAddr(); return addr != "" })
	half, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer half.Close()
	_, err = half.Write([]byte("POST /app HTTP/1.1\r\nHost: x\r\n"))
	plugintest.Must(t, err)
	time.Sleep(50 * time.Millisecond) // the server has read the first bytes: the connection is active
	stop()
	_ = half.SetReadDeadline(time.Now().Add(3 * time.Second))
	_, err = io.ReadAll(half)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the half-sent request's connection was still open 3s after the engine stopped")
	}
}
