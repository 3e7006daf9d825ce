package httpout_test

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugins/httpout"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func startHEC(t *testing.T, f *hecFake, params string) (*engine.Engine, *httpout.SplunkHEC) {
	t.Helper()
	return startOutput[*httpout.SplunkHEC](t, fmt.Sprintf("  @type splunk_hec\n  full_url %s/services/collector\n%s", f.srv.URL, params))
}

// TestSplunkHECEventShape: each event carries host, time (Ruby's float
// seconds as a string), index, source and sourcetype (${tag} is the tag),
// the <fields> as index-time fields taken out of the event, and the event
// itself as the JSON text of the record; the token and app headers go
// with every request.
func TestSplunkHECEventShape(t *testing.T) {
	hec := newHECFake(t, "tok-123")
	hec.indexes = []string{"main", "web"}
	e, out := startHEC(t, hec, `
  hec_token tok-123
  index web
  source ${tag}
  sourcetype _json
  host collector-1
  <fields>
    cluster
    pod_name pod
  </fields>`+fastBuffer)
	at := []int64{1700000000_250000000}
	emitAt(t, e, "app.hec", at, map[string]any{"log": "hello", "cluster": "eu-1", "pod": "p-9", "none": nil})
	plugintest.WaitFor(t, "an event", func() bool { return len(hec.got()) == 1 })
	ev := hec.got()[0]
	fields, _ := ev["fields"].(map[string]any)
	if ev["host"] != "collector-1" || ev["time"] != "1700000000.25" || ev["index"] != "web" || ev["source"] != "app.hec" ||
		ev["sourcetype"] != "_json" || fields["cluster"] != "eu-1" || fields["pod_name"] != "p-9" {
		t.Errorf("event %v", ev)
	}
	rec := eventRecord(ev)
	if rec["log"] != "hello" || rec["cluster"] != nil || rec["pod"] != nil || len(rec) != 2 {
		t.Errorf("event record %v (the <fields> must be taken out)", rec)
	}
	h := hec.header(0)
	if h.Get("__splunk_app_name") != "hec_plugin_gem" || h.Get("Content-Type") != "application/json" {
		t.Errorf("headers %v", h)
	}
	plugintest.WaitFor(t, "the answer counted", func() bool { return metrics(out)["http_responses_2xx_total"] == 1 })
}

// TestSplunkHECKeysGzip: index_key (nested), host_key and source_key read
// the record and are taken out of the event unless keep_keys; the host is
// the machine's when no host is set; gzip_compression compresses.
func TestSplunkHECKeysGzip(t *testing.T) {
	hec := newHECFake(t, "tok")
	e, _ := startHEC(t, hec, `
  hec_token tok
  index_key meta.index
  source_key src
  gzip_compression true`+fastBuffer)
	emitAt(t, e, "app.k", []int64{time.Now().UnixNano()}, map[string]any{"msg": "m", "src": "/var/log/a", "meta": map[string]any{"index": "ops", "team": "x"}})
	plugintest.WaitFor(t, "an event", func() bool { return len(hec.got()) == 1 })
	ev := hec.got()[0]
	rec := eventRecord(ev)
	if ev["index"] != "ops" || ev["source"] != "/var/log/a" || ev["host"] != "test-host" || rec["src"] != nil ||
		rec["meta"].(map[string]any)["index"] != nil || rec["meta"].(map[string]any)["team"] != "x" {
		t.Errorf("event %v, record %v", ev, rec)
	}
	if hec.header(0).Get("Content-Encoding") != "gzip" {
		t.Error("not gzipped")
	}
}

// TestSplunkHECBusyRetriedRefusalConsumed: 503 "Server is busy" is
// retried and the chunk arrives once; a 400 (an index the token may not
// write) drops the chunk and counts it, as the Ruby plugin consumes it,
// unless consume_chunk_on_4xx_errors is false.
func TestSplunkHECBusyRetriedRefusalConsumed(t *testing.T) {
	hec := newHECFake(t, "tok")
	hec.inject = []int{503, 503}
	e, _ := startHEC(t, hec, "  hec_token tok"+fastBuffer)
	emitAt(t, e, "app.busy", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "the event after two 503s", func() bool { return len(hec.got()) == 1 })
	time.Sleep(200 * time.Millisecond)
	if len(hec.got()) != 1 || hec.postCount() != 3 {
		t.Errorf("%d events in %d posts", len(hec.got()), hec.postCount())
	}

	refusing := newHECFake(t, "tok")
	refusing.indexes = []string{"main"}
	e2, out := startHEC(t, refusing, "  hec_token tok\n  index secret"+fastBuffer)
	emitAt(t, e2, "app.bad", []int64{time.Now().UnixNano(), time.Now().UnixNano()}, map[string]any{"n": 1}, map[string]any{"n": 2})
	plugintest.WaitFor(t, "the drop to be counted", func() bool { return metrics(out)["dropped_records_total"] == 2 })
	if refusing.postCount() != 1 {
		t.Errorf("a consumed chunk was sent %d times", refusing.postCount())
	}

	again := newHECFake(t, "tok")
	again.indexes = []string{"main"}
	e3, _ := startHEC(t, again, "  hec_token tok\n  index secret\n  consume_chunk_on_4xx_errors false"+fastBuffer)
	emitAt(t, e3, "app.bad", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "retries", func() bool { return again.postCount() >= 3 })
}

// TestSplunkHECWrongToken: 403 "Invalid token" is a 4xx like any other:
// consumed and counted.
func TestSplunkHECWrongToken(t *testing.T) {
	hec := newHECFake(t, "right")
	e, out := startHEC(t, hec, "  hec_token wrong"+fastBuffer)
	emitAt(t, e, "app.tok", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "the drop", func() bool { return metrics(out)["dropped_records_total"] == 1 })
	if m := metrics(out); m["http_responses_4xx_total"] != 1 {
		t.Errorf("metrics %v", m)
	}
}

// TestSplunkHECIndexerAck: with use_ack a chunk is done only once the
// ack endpoint confirms it; an acknowledgement that never comes sends the
// chunk again after ack_timeout and counts it.
func TestSplunkHECIndexerAck(t *testing.T) {
	hec := newHECFake(t, "tok")
	hec.ack = true
	var asked atomic.Int64
	hec.acknowledge = func(int) bool { return asked.Add(1) >= 3 } // the third query sees it
	e, out := startHEC(t, hec, "  hec_token tok\n  use_ack true\n  ack_query_interval 0.02"+fastBuffer)
	emitAt(t, e, "app.ack", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "the acknowledgement", func() bool { return metrics(out)["splunk_ack_waits_total"] == 1 && asked.Load() >= 3 })
	time.Sleep(100 * time.Millisecond)
	if hec.postCount() != 1 || hec.header(0).Get("X-Splunk-Request-Channel") == "" {
		t.Errorf("%d posts, channel %q", hec.postCount(), hec.header(0).Get("X-Splunk-Request-Channel"))
	}

	never := newHECFake(t, "tok")
	never.ack = true
	never.acknowledge = func(int) bool { return false }
	e2, out2 := startHEC(t, never, "  hec_token tok\n  use_ack true\n  ack_query_interval 0.02\n  ack_timeout 0.1"+fastBuffer)
	emitAt(t, e2, "app.ack", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "a resend after the ack timeout", func() bool { return never.postCount() >= 2 })
	if m := metrics(out2); m["splunk_ack_timeouts_total"] < 1 || m["ambiguous_retries_total"] < 1 {
		t.Errorf("metrics %v", m)
	}

	// A token with acknowledgement on refuses a request without a channel.
	noChannel := newHECFake(t, "tok")
	noChannel.ack = true
	e3, out3 := startHEC(t, noChannel, "  hec_token tok"+fastBuffer)
	emitAt(t, e3, "app.ack", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "the refusal", func() bool { return metrics(out3)["dropped_records_total"] == 1 })
}

// TestSplunkHECMetrics: data_type metric makes one metric event per field
// (metrics_from_event), or one from metric_name_key and metric_value_key
// with the rest of the record as dimensions.
func TestSplunkHECMetrics(t *testing.T) {
	hec := newHECFake(t, "tok")
	e, _ := startHEC(t, hec, "  hec_token tok\n  data_type metric"+fastBuffer)
	emitAt(t, e, "app.m", []int64{time.Now().UnixNano()}, map[string]any{"cpu": 0.5, "mem": 1024})
	plugintest.WaitFor(t, "two metric events", func() bool { return len(hec.got()) == 2 })
	for _, ev := range hec.got() {
		f := ev["fields"].(map[string]any)
		if ev["event"] != "metric" || (f["metric_name"] != "cpu" && f["metric_name"] != "mem") {
			t.Errorf("metric event %v", ev)
		}
	}

	named := newHECFake(t, "tok")
	e2, _ := startHEC(t, named, "  hec_token tok\n  data_type metric\n  metric_name_key name\n  metric_value_key value"+fastBuffer)
	emitAt(t, e2, "app.m", []int64{time.Now().UnixNano()}, map[string]any{"name": "latency", "value": 12.5, "region": "eu"})
	plugintest.WaitFor(t, "a metric event", func() bool { return len(named.got()) == 1 })
	f := named.got()[0]["fields"].(map[string]any)
	if f["metric_name"] != "latency" || f["_value"] != 12.5 || f["region"] != "eu" || f["name"] != nil {
		t.Errorf("fields %v", f)
	}
}

// TestSplunkHECTooLarge: a body over the HEC's max_content_length is
// answered 413, a 4xx the plugin consumes: counted, not resent.
func TestSplunkHECTooLarge(t *testing.T) {
	hec := newHECFake(t, "tok")
	hec.maxContent = 10_000
	e, out := startHEC(t, hec, "  hec_token tok"+fastBuffer)
	var at []int64
	var recs []map[string]any
	for i := range 100 {
		at = append(at, time.Now().UnixNano())
		recs = append(recs, map[string]any{"n": i, "pad": "0123456789abcdef0123456789abcdef"})
	}
	emitAt(t, e, "app.big", at, recs...)
	plugintest.WaitFor(t, "the drop", func() bool { return metrics(out)["dropped_records_total"] == 100 })
	if hec.postCount() != 1 || len(hec.got()) != 0 {
		t.Errorf("%d posts, %d events", hec.postCount(), len(hec.got()))
	}
}
