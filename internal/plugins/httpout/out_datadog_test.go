package httpout_test

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugins/httpout"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func startDD(t *testing.T, params string) (*engine.Engine, *httpout.Datadog) {
	t.Helper()
	return startOutput[*httpout.Datadog](t, "  @type datadog\n"+params)
}

func ddParams(f *ddFake, extra string) string {
	u, _ := url.Parse(f.srv.URL)
	host, port, _ := net.SplitHostPort(u.Host)
	return fmt.Sprintf("  api_key %s\n  host %s\n  port %s\n  use_ssl false\n%s", f.key, host, port, extra)
}

// TestDatadogEnrichedEvents: each event gets ddsource, ddsourcecategory,
// service and hostname when it has none, ddtags with the Kubernetes and
// Docker container tags after dd_tags, the tag with include_tag_key, and
// @timestamp in ISO 8601 with milliseconds; the key goes in DD-API-KEY and
// the body is gzipped.
func TestDatadogEnrichedEvents(t *testing.T) {
	dd := newDDFake(t, "dd-key")
	e, _ := startDD(t, ddParams(dd, `
  dd_source nginx
  dd_sourcecategory http_web_access
  dd_tags env:prod,team:web
  service shop
  include_tag_key true`+fastBuffer))
	emitAt(t, e, "app.web", []int64{1700000000_123456789}, map[string]any{
		"message": "GET /", "service": "own-service",
		"kubernetes": map[string]any{"namespace_name": "web", "pod_name": "p-1", "container_name": "nginx", "container_image": "nginx:1.27"},
		"docker":     map[string]any{"container_id": "abc123"}})
	plugintest.WaitFor(t, "an event", func() bool { return len(dd.got()) == 1 })
	ev := dd.got()[0]
	if ev["ddsource"] != "nginx" || ev["ddsourcecategory"] != "http_web_access" || ev["service"] != "own-service" ||
		ev["hostname"] != "test-host" || ev["tag"] != "app.web" || ev["@timestamp"] != "2023-11-14T22:13:20.123Z" ||
		ev["ddtags"] != "env:prod,team:web,image_name:nginx:1.27,container_name:nginx,kube_namespace:web,pod_name:p-1,container_id:abc123" {
		t.Errorf("event %v", ev)
	}
	if dd.header(0).Get("Content-Encoding") != "gzip" || dd.header(0).Get("DD-API-KEY") != "dd-key" {
		t.Errorf("headers %v", dd.header(0))
	}
}

// TestDatadogFieldsReplacedOnce: a field the enrichment sets that the
// record already has (the tag_key, a nil hostname, its own ddtags, to
// which the container tags are added) is replaced, not given twice; a
// record with none of them, or an empty one, gets the fields added.
func TestDatadogFieldsReplacedOnce(t *testing.T) {
	dd := newDDFake(t, "dd-key")
	e, _ := startDD(t, ddParams(dd, `
  dd_source nginx
  dd_tags env:prod
  include_tag_key true`+fastBuffer))
	emitAt(t, e, "app.web", []int64{1700000000_123456789, 1700000001_000000000, 1700000002_000000000},
		map[string]any{"message": "a", "tag": "old", "hostname": nil, "ddtags": "own:1", "@timestamp": "kept",
			"docker": map[string]any{"container_id": "abc"}},
		map[string]any{"message": "b", "kubernetes": map[string]any{"pod_name": "p-1", "namespace_name": 7}},
		map[string]any{})
	plugintest.WaitFor(t, "three events", func() bool { return len(dd.got()) == 3 })
	if dups := dd.duplicated(); len(dups) > 0 {
		t.Errorf("keys given twice: %q", dups)
	}
	got := dd.got()
	if ev := got[0]; ev["tag"] != "app.web" || ev["hostname"] != "test-host" || ev["ddtags"] != "own:1,container_id:abc" ||
		ev["@timestamp"] != "kept" || ev["ddsource"] != "nginx" || ev["message"] != "a" {
		t.Errorf("first event %v", ev)
	}
	if ev := got[1]; ev["tag"] != "app.web" || ev["ddtags"] != "env:prod,pod_name:p-1" || ev["@timestamp"] != "2023-11-14T22:13:21.000Z" || ev["message"] != "b" {
		t.Errorf("second event %v", ev)
	}
	if ev := got[2]; ev["tag"] != "app.web" || ev["ddsource"] != "nginx" || ev["ddtags"] != "env:prod" || len(ev) != 5 {
		t.Errorf("empty record became %v", ev)
	}
}

// TestDatadogSplitsAtTheIntakeLimits: a chunk of 2,500 events goes out as
// requests of at most 1,000 entries and 5,000,000 bytes (here the bytes
// bind: 6 KB events), each accepted by an intake that refuses more.
func TestDatadogSplitsAtTheIntakeLimits(t *testing.T) {
	dd := newDDFake(t, "k")
	e, out := startDD(t, ddParams(dd, "  use_compression false"+fastBuffer))
	var recs []map[string]any
	var at []int64
	for i := range 2500 {
		recs = append(recs, map[string]any{"n": i, "pad": strings.Repeat("p", 6000)})
		at = append(at, time.Now().UnixNano())
	}
	emitAt(t, e, "app.many", at, recs...)
	plugintest.WaitFor(t, "2,500 events", func() bool { return len(dd.got()) == 2500 })
	dd.mu.Lock()
	sizes := append([]int(nil), dd.sizes...)
	dd.mu.Unlock()
	for _, n := range sizes {
		if n > 1000 {
			t.Errorf("a request of %d entries", n)
		}
	}
	if len(sizes) < 3 || sizes[0] == 1000 {
		t.Errorf("requests of %v entries: the 5,000,000-byte limit did not split them", sizes)
	}
	// Once or more: the 0.05 s flush may cut the 2,500 events into two
	// chunks while they are being appended (seen under -race), each over
	// the limits.
	plugintest.WaitFor(t, "the split counted", func() bool { return metrics(out)["datadog_split_chunks_total"] >= 1 })
}

// TestDatadogRetrySendsOnlyTheRest: when a chunk's second request fails
// (503), the retry sends only the entries not yet delivered: none twice.
func TestDatadogRetrySendsOnlyTheRest(t *testing.T) {
	dd := newDDFake(t, "k")
	e, _ := startDD(t, ddParams(dd, "  use_compression false"+fastBuffer))
	var recs []map[string]any
	var at []int64
	for i := range 2500 {
		recs = append(recs, map[string]any{"n": i})
		at = append(at, time.Now().UnixNano())
	}
	dd.refuse = func(n int) int { // the second request is refused once
		if n == 2 {
			return 503
		}
		return 0
	}
	emitAt(t, e, "app.part", at, recs...)
	plugintest.WaitFor(t, "2,500 events", func() bool { return len(dd.got()) >= 2500 })
	time.Sleep(200 * time.Millisecond)
	seen := map[float64]int{}
	for _, ev := range dd.got() {
		seen[ev["n"].(float64)]++
	}
	if len(dd.got()) != 2500 || len(seen) != 2500 {
		t.Errorf("%d events, %d distinct", len(dd.got()), len(seen))
	}
}

// TestDatadogClientErrorDropped: a 403 (a wrong key) drops the batch and
// counts it, as the Ruby plugin logs and drops client errors; 429 is
// retried.
func TestDatadogClientErrorDropped(t *testing.T) {
	dd := newDDFake(t, "right")
	params := strings.Replace(ddParams(dd, fastBuffer), "api_key right", "api_key wrong", 1)
	e, out := startDD(t, params)
	emitAt(t, e, "app.key", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "the drop", func() bool { return metrics(out)["dropped_records_total"] == 1 })

	busy := newDDFake(t, "k")
	busy.inject = []int{429, 500}
	e2, _ := startDD(t, ddParams(busy, fastBuffer))
	emitAt(t, e2, "app.busy", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "the event after 429 and 500", func() bool { return len(busy.got()) == 1 })
}

// TestDatadogTCPIntake: use_http false sends "API_KEY JSON" lines.
func TestDatadogTCPIntake(t *testing.T) {
	tcp := newDDTCPFake(t)
	host, port, _ := net.SplitHostPort(tcp.ln.Addr().String())
	e, _ := startDD(t, fmt.Sprintf("  api_key tcp-key\n  use_http false\n  use_ssl false\n  host %s\n  port %s%s", host, port, fastBuffer))
	emitAt(t, e, "app.tcp", []int64{time.Now().UnixNano(), time.Now().UnixNano()}, map[string]any{"n": 1}, map[string]any{"n": 2})
	plugintest.WaitFor(t, "two lines", func() bool { return len(tcp.got()) == 2 })
	for _, l := range tcp.got() {
		if !strings.HasPrefix(l, `tcp-key {"n":`) {
			t.Errorf("line %q", l)
		}
	}
}
