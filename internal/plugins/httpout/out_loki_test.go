package httpout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugins/httpout"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func startLoki(t *testing.T, params string) (*engine.Engine, *httpout.Loki) {
	t.Helper()
	return startOutput[*httpout.Loki](t, "  @type loki\n"+params)
}

// emitAt emits records at the given times (nanoseconds).
func emitAt(t *testing.T, e *engine.Engine, tag string, at []int64, recs ...map[string]any) {
	t.Helper()
	var b event.Builder
	for i, r := range recs {
		rec, err := event.EncodeRecord(r)
		plugintest.Must(t, err)
		b.Append(event.Time(at[i]), rec)
	}
	plugintest.Must(t, e.Root().Emit(context.Background(), b.Stream(tag)))
}

// k8sRecords are three container log lines in two pods, out of time
// order, and the times they carry.
func k8sRecords() ([]int64, []map[string]any) {
	base := time.Now().Add(-time.Minute).UnixNano()
	pod := func(name, log string) map[string]any {
		return map[string]any{"log": log, "stream": "stdout",
			"kubernetes": map[string]any{"namespace_name": "web", "pod_name": name, "labels": map[string]any{"app.kubernetes.io/name": "shop"}}}
	}
	return []int64{base + 3_000_000_123, base + 1_000_000_456, base + 2_000_000_789},
		[]map[string]any{pod("p-1", "third"), pod("p-1", "first has = and \"quotes\""), pod("p-2", "other pod")}
}

const lokiBuffer = `
  <buffer>
    flush_interval 0.05
    flush_thread_interval 0.01
    retry_wait 0.05
    retry_max_interval 0.2
    retry_forever true
  </buffer>`

// TestLokiStreamsLabelsAndLines: streams are grouped by label set (from
// <label>, extract_kubernetes_labels and extra_labels), each stream's
// entries sorted by time (a strict Loki refuses them otherwise), label
// fields and remove_keys left out of the key_value line; the tenant
// header takes the tag, basic authentication is sent.
func TestLokiStreamsLabelsAndLines(t *testing.T) {
	loki := newLokiFake(t)
	loki.strict = true
	loki.tenant = "team-app.k8s"
	e, out := startLoki(t, fmt.Sprintf(`
  url %s
  username loki-user
  password loki-pass
  tenant team-${tag}
  extra_labels {"env":"prod"}
  extract_kubernetes_labels true
  remove_keys kubernetes
  <label>
    namespace $.kubernetes.namespace_name
    pod $.kubernetes.pod_name
    stream
  </label>`+strings.Replace(lokiBuffer, "<buffer>", "<buffer tag>", 1), loki.srv.URL))
	at, recs := k8sRecords()
	emitAt(t, e, "app.k8s", at, recs...)
	plugintest.WaitFor(t, "three entries", func() bool { return len(loki.got()) == 3 })
	got := loki.got()
	wantLabels := map[string]string{"env": "prod", "namespace": "web", "pod": "p-1", "stream": "stdout", "app_kubernetes_io_name": "shop"}
	if !maps.Equal(got[0].labels, wantLabels) {
		t.Errorf("labels %v, want %v", got[0].labels, wantLabels)
	}
	if got[0].line != `log="first has = and \"quotes\""` || got[0].ts != at[1] || got[1].line != "log=third" || got[1].ts != at[0] {
		t.Errorf("p-1's entries: %+v", got[:2])
	}
	if got[2].labels["pod"] != "p-2" || got[2].line != `log="other pod"` {
		t.Errorf("p-2's entry: %+v", got[2])
	}
	user, pass, ok := basicAuth(loki.header(0))
	if !ok || user != "loki-user" || pass != "loki-pass" {
		t.Errorf("basic auth %q %q", user, pass)
	}
	plugintest.WaitFor(t, "the answer counted", func() bool { return metrics(out)["http_responses_2xx_total"] == 1 })
}

// TestLokiOneStreamPerLabelSet: a push holds one stream per label set,
// however the records spell it: kubernetes labels in another order are
// the same set, and a label field that is not a string is no label, as if
// it were missing.
func TestLokiOneStreamPerLabelSet(t *testing.T) {
	loki := newLokiFake(t)
	e, _ := startLoki(t, fmt.Sprintf(`
  url %s
  extract_kubernetes_labels true
  remove_keys kubernetes
  <label>
    app
  </label>`+lokiBuffer, loki.srv.URL))
	rec := func(fields ...any) event.Record { // in this order, as msgpack
		b := msgp.AppendMapHeader(nil, uint32(len(fields)/2))
		for i := 0; i < len(fields); i += 2 {
			b = msgp.AppendString(b, fields[i].(string))
			switch v := fields[i+1].(type) {
			case string:
				b = msgp.AppendString(b, v)
			case int:
				b = msgp.AppendInt(b, v)
			case event.Record:
				b = append(b, v...)
			}
		}
		return event.Record(b)
	}
	xy := rec("x", "1", "y", "2")
	yx := rec("y", "2", "x", "1")
	var b event.Builder
	now := time.Now().UnixNano()
	for i, r := range []event.Record{
		rec("app", "shop", "kubernetes", rec("labels", xy), "log", "1"),
		rec("kubernetes", rec("labels", yx), "app", "shop", "log", "2"),
		rec("app", 5, "log", "3"),
		rec("log", "4"),
		rec("app", "cart", "log", "5"),
		rec("app", "shop", "log", "6"),
	} {
		b.Append(event.Time(now+int64(i)), r)
	}
	plugintest.Must(t, e.Root().Emit(context.Background(), b.Stream("app.sets")))
	plugintest.WaitFor(t, "six entries", func() bool { return len(loki.got()) == 6 })
	sets := loki.streamSets()
	if len(sets) != 1 {
		t.Fatalf("%d pushes, want 1", len(sets))
	}
	want := []string{`{app="shop", x="1", y="2"}`, `{}`, `{app="cart"}`, `{app="shop"}`}
	if !slices.Equal(sets[0], want) {
		t.Errorf("streams %q, want %q", sets[0], want)
	}
}

func basicAuth(h map[string][]string) (string, string, bool) {
	r := &fakeRequest{h}
	return r.basic()
}

// TestLokiProtobufSnappy: compress snappy sends the protobuf PushRequest,
// which the stand-in decodes with another snappy library and a message
// built from push.proto; nanoseconds survive.
func TestLokiProtobufSnappy(t *testing.T) {
	loki := newLokiFake(t)
	loki.strict = true
	e, _ := startLoki(t, fmt.Sprintf(`
  url %s
  compress snappy
  line_format json
  <label>
    pod $.kubernetes.pod_name
  </label>`+lokiBuffer, loki.srv.URL))
	at, recs := k8sRecords()
	emitAt(t, e, "app.pb", at, recs...)
	plugintest.WaitFor(t, "three entries", func() bool { return len(loki.got()) == 3 })
	got := loki.got()
	if got[0].ts != at[1] || got[0].labels["pod"] != "p-1" || got[0].line != `{"kubernetes":{"labels":{"app.kubernetes.io/name":"shop"},"namespace_name":"web"},"log":"first has = and \"quotes\"","stream":"stdout"}` {
		t.Errorf("first entry %+v", got[0])
	}
	if ct := loki.header(0).Get("Content-Type"); ct != "application/x-protobuf" {
		t.Errorf("Content-Type %q", ct)
	}
}

// TestLokiGzipDropSingleKey: compress gzip, and drop_single_key makes the
// line the value of the record's only field.
func TestLokiGzipDropSingleKey(t *testing.T) {
	loki := newLokiFake(t)
	e, _ := startLoki(t, fmt.Sprintf(`
  url %s
  compress gzip
  drop_single_key true`+lokiBuffer, loki.srv.URL))
	emitAt(t, e, "app.one", []int64{time.Now().UnixNano()}, map[string]any{"message": "just this"})
	plugintest.WaitFor(t, "an entry", func() bool { return len(loki.got()) == 1 })
	if got := loki.got()[0]; got.line != "just this" || len(got.labels) != 0 {
		t.Errorf("entry %+v", got)
	}
	if loki.header(0).Get("Content-Encoding") != "gzip" {
		t.Error("the body was not gzipped")
	}
}

// TestLokiRetries429And5xx: 429 and 5xx are retried; the chunk lands once.
func TestLokiRetries429And5xx(t *testing.T) {
	loki := newLokiFake(t)
	loki.inject = []int{429, 500, 503}
	e, out := startLoki(t, "  url "+loki.srv.URL+lokiBuffer)
	emitAt(t, e, "app.retry", []int64{time.Now().UnixNano(), time.Now().UnixNano() + 1}, map[string]any{"n": 1}, map[string]any{"n": 2})
	plugintest.WaitFor(t, "the entries after three refusals", func() bool { return len(loki.got()) == 2 })
	time.Sleep(200 * time.Millisecond) // a duplicate would come with the next retry
	if n := len(loki.got()); n != 2 || loki.pushCount() != 4 {
		t.Errorf("%d entries in %d pushes", n, loki.pushCount())
	}
	if m := metrics(out); m["http_responses_429_total"] != 1 || m["http_responses_5xx_total"] != 2 {
		t.Errorf("metrics %v", m)
	}
}

// TestLokiRefusedEntriesNotRetried: Loki keeps a push's valid entries
// and answers 400 for the rest (too old, line too long). Sending the chunk
// again would duplicate the kept ones: it goes to <secondary> instead,
// after one push.
func TestLokiRefusedEntriesNotRetried(t *testing.T) {
	loki := newLokiFake(t)
	dir := t.TempDir()
	e, _ := startLoki(t, fmt.Sprintf(`
  url %s`+lokiBuffer+`
  <secondary>
    @type secondary_file
    directory %s
    basename refused
  </secondary>`, loki.srv.URL, dir))
	now := time.Now().UnixNano()
	old := time.Now().Add(-8 * 24 * time.Hour).UnixNano()
	emitAt(t, e, "app.mixed", []int64{now, old, now + 1},
		map[string]any{"m": "kept"}, map[string]any{"m": "a week and a day old"}, map[string]any{"m": strings.Repeat("x", 300<<10)})
	plugintest.WaitFor(t, "the chunk at <secondary>", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "refused*"))
		return len(m) == 1
	})
	time.Sleep(200 * time.Millisecond)
	if loki.pushCount() != 1 || len(loki.got()) != 1 || loki.got()[0].line != "m=kept" {
		t.Errorf("%d pushes, kept %+v", loki.pushCount(), loki.got())
	}
	m, _ := filepath.Glob(filepath.Join(dir, "refused*"))
	if data, _ := os.ReadFile(m[0]); !strings.Contains(string(data), "a week and a day old") {
		t.Error("the secondary file does not hold the chunk")
	}
}

// TestLokiThreadLabel: with two flush threads each stream carries the
// sending thread (fluentd_thread), so that one thread's pushes for a
// label set stay in order; include_thread_label false leaves it out.
func TestLokiThreadLabel(t *testing.T) {
	loki := newLokiFake(t)
	e, _ := startLoki(t, fmt.Sprintf(`
  url %s
  <buffer tag>
    flush_thread_count 2
    flush_interval 0.05
    flush_thread_interval 0.01
  </buffer>`, loki.srv.URL))
	for i := range 6 {
		emitAt(t, e, fmt.Sprintf("app.t%d", i), []int64{time.Now().UnixNano()}, map[string]any{"n": i})
	}
	plugintest.WaitFor(t, "six entries", func() bool { return len(loki.got()) == 6 })
	for _, g := range loki.got() {
		if th := g.labels["fluentd_thread"]; th != "flush_thread_0" && th != "flush_thread_1" {
			t.Fatalf("entry %+v has no thread label", g)
		}
	}

	plain := newLokiFake(t)
	e2, _ := startLoki(t, fmt.Sprintf(`
  url %s
  include_thread_label false
  <buffer>
    flush_thread_count 2
    flush_interval 0.05
  </buffer>`, plain.srv.URL))
	emitAt(t, e2, "app.x", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "an entry", func() bool { return len(plain.got()) == 1 })
	if _, ok := plain.got()[0].labels["fluentd_thread"]; ok {
		t.Error("fluentd_thread with include_thread_label false")
	}
}

// TestLokiTooManyLabelsNotRetried: Loki refuses a stream with more than
// 15 label names (400); the chunk is not sent again.
func TestLokiTooManyLabelsNotRetried(t *testing.T) {
	loki := newLokiFake(t)
	extra := map[string]string{}
	for i := range 16 {
		extra[fmt.Sprintf("l%02d", i)] = "v"
	}
	labels, _ := json.Marshal(extra)
	e, out := startLoki(t, "  url "+loki.srv.URL+"\n  extra_labels "+string(labels)+lokiBuffer)
	emitAt(t, e, "app.labels", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "the refusal", func() bool { return metrics(out)["http_responses_4xx_total"] == 1 })
	time.Sleep(200 * time.Millisecond)
	if loki.pushCount() != 1 || len(loki.got()) != 0 {
		t.Errorf("%d pushes, %d entries", loki.pushCount(), len(loki.got()))
	}
}
