package httpout_test

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// hangFirst wraps a stand-in: the first request that delivers events
// (by path) is held without an answer until the client gives up, and the
// stand-in never sees it; the rest pass.
func hangFirst(t *testing.T, h http.Handler, path string) (http.Handler, *atomic.Int64) {
	var hung atomic.Int64
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // before the server's Close
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == path && hung.CompareAndSwap(0, 1) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		h.ServeHTTP(w, r)
	}), &hung
}

// TestTimeoutsRetriedOnceEach: for every destination, a request that
// gets no answer within the write's deadline (<buffer> write_timeout) is
// sent again; the events arrive once, and the output counts them as
// possibly duplicated (the service might have taken the first request).
func TestTimeoutsRetriedOnceEach(t *testing.T) {
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	buffer := `
  <buffer>
    flush_interval 0.05
    flush_thread_interval 0.01
    write_timeout 1
    retry_wait 0.05
    retry_max_interval 0.2
    retry_forever true
  </buffer>`
	records := []map[string]any{{"n": "one"}, {"n": "two"}}
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) (conf string, delivered func() int)
	}{
		{"http", func(t *testing.T) (string, func() int) {
			ep := newEndpoint(t, nil)
			ep.srv.Config.Handler, _ = hangFirst(t, ep, "/in")
			return "  @type http\n  endpoint " + ep.srv.URL + "/in\n  retryable_response_codes [503]", func() int {
				n := 0
				for _, r := range ep.accepted() {
					n += countLines(r.body)
				}
				return n
			}
		}},
		{"loki", func(t *testing.T) (string, func() int) {
			f := newLokiFake(t)
			f.srv.Config.Handler, _ = hangFirst(t, f, "/loki/api/v1/push")
			return "  @type loki\n  url " + f.srv.URL, func() int { return len(f.got()) }
		}},
		{"splunk_hec", func(t *testing.T) (string, func() int) {
			f := newHECFake(t, "tok")
			f.srv.Config.Handler, _ = hangFirst(t, f, "/services/collector")
			return "  @type splunk_hec\n  full_url " + f.srv.URL + "/services/collector\n  hec_token tok", func() int { return len(f.got()) }
		}},
		{"datadog", func(t *testing.T) (string, func() int) {
			f := newDDFake(t, "k")
			f.srv.Config.Handler, _ = hangFirst(t, f, "/api/v2/logs")
			u, _ := url.Parse(f.srv.URL)
			host, port, _ := net.SplitHostPort(u.Host)
			return fmt.Sprintf("  @type datadog\n  api_key k\n  use_ssl false\n  host %s\n  port %s", host, port), func() int { return len(f.got()) }
		}},
		{"cloudwatch_logs", func(t *testing.T) (string, func() int) {
			f := newCWLFake(t)
			f.groups["g"] = &cwlGroup{streams: map[string]*cwlStream{"s": {}}}
			f.srv.Config.Handler, _ = hangFirst(t, f, "/")
			return "  @type cloudwatch_logs\n  region us-east-1\n  endpoint " + f.srv.URL + "\n  aws_key_id AKID\n  aws_sec_key s\n  log_group_name g\n  log_stream_name s",
				func() int { return len(f.got()) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf, delivered := tc.start(t)
			e, out := startOutput[plugin.Measured](t, conf+buffer)
			now := time.Now().UnixNano()
			emitAt(t, e, "app.timeout", []int64{now, now + 1}, records...)
			plugintest.WaitFor(t, "the retry's delivery", func() bool { return delivered() == 2 })
			time.Sleep(300 * time.Millisecond) // a duplicate would come with another retry
			if n := delivered(); n != 2 {
				t.Errorf("%d events delivered, want 2", n)
			}
			if m := metrics(out); m["ambiguous_retries_total"] < 2 {
				t.Errorf("the timed-out request's events were not counted as possibly duplicated: %v", m)
			}
		})
	}
}

func countLines(b []byte) int {
	n := 0
	for _, c := range b {
		if c == '\n' {
			n++
		}
	}
	return n
}
