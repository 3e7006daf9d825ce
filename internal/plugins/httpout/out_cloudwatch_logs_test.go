package httpout_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugins/httpout"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func startCWL(t *testing.T, f *cwlFake, params string) (*engine.Engine, *httpout.CloudWatchLogs) {
	t.Helper()
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	return startOutput[*httpout.CloudWatchLogs](t, fmt.Sprintf("  @type cloudwatch_logs\n  region eu-west-1\n  endpoint %s\n  aws_key_id AKIDCWL\n  aws_sec_key secret\n%s", f.srv.URL, params))
}

// TestCloudWatchLogsGroupsStreamsAndOrder: events go to the group in
// their log_group_name_key field (left out of the message) and to the
// stream named by the tag; auto_create_stream creates both, with the
// retention and tags asked for; each stream's events are sent in time
// order, which the service requires.
func TestCloudWatchLogsGroupsStreamsAndOrder(t *testing.T) {
	cwl := newCWLFake(t)
	e, _ := startCWL(t, cwl, `
  log_group_name_key group
  remove_log_group_name_key true
  use_tag_as_stream true
  auto_create_stream true
  retention_in_days 14
  log_group_aws_tags {"team":"web"}`+strings.Replace(fastBuffer, "<buffer tag>", "<buffer tag>", 1))
	now := time.Now().UnixNano()
	emitAt(t, e, "app.svc", []int64{now + 2e9, now, now + 1e9},
		map[string]any{"group": "/ecs/web", "msg": "third"}, map[string]any{"group": "/ecs/web", "msg": "first"},
		map[string]any{"group": "/ecs/api", "msg": "api"})
	plugintest.WaitFor(t, "three events", func() bool { return len(cwl.got()) == 3 })
	got := cwl.got()
	if got[0].group != "/ecs/web" || got[0].stream != "app.svc" || got[0].message != `{"msg":"first"}` || got[1].message != `{"msg":"third"}` {
		t.Errorf("web events %+v", got[:2])
	}
	cwl.mu.Lock()
	web := cwl.groups["/ecs/web"]
	cwl.mu.Unlock()
	if web == nil || web.retention != 14 || web.tags["team"] != "web" || web.streams["app.svc"] == nil {
		t.Errorf("group %+v", web)
	}
	if !strings.Contains(cwl.authAt(0), "Credential=AKIDCWL/") || !strings.Contains(cwl.authAt(0), "/eu-west-1/logs/aws4_request") {
		t.Errorf("Authorization %q", cwl.authAt(0))
	}
}

// TestCloudWatchLogsSplitsAtTheAPILimits: 12,000 events in one chunk,
// spanning 30 hours, go out in calls of at most 10,000 events within a
// 24-hour span; big messages are split at 1,048,576 bytes. A stand-in
// that refuses calls past any limit takes them all.
func TestCloudWatchLogsSplitsAtTheAPILimits(t *testing.T) {
	cwl := newCWLFake(t)
	e, _ := startCWL(t, cwl, "  log_group_name g\n  log_stream_name s\n  auto_create_stream true"+fastBuffer)
	start := time.Now().Add(-30 * time.Hour).UnixNano()
	var at []int64
	var recs []map[string]any
	for i := range 12000 {
		at = append(at, start+int64(i)*int64(9*time.Second))
		recs = append(recs, map[string]any{"n": i})
	}
	emitAt(t, e, "app.many", at, recs...)
	plugintest.WaitFor(t, "12,000 events", func() bool { return len(cwl.got()) == 12000 })

	big := newCWLFake(t)
	e2, _ := startCWL(t, big, "  log_group_name g\n  log_stream_name s\n  auto_create_stream true\n  message_keys pad"+fastBuffer)
	at, recs = nil, nil
	for range 30 {
		at = append(at, time.Now().UnixNano())
		recs = append(recs, map[string]any{"pad": strings.Repeat("b", 100_000)})
	}
	emitAt(t, e2, "app.big", at, recs...)
	plugintest.WaitFor(t, "30 big events", func() bool { return len(big.got()) == 30 })
	big.mu.Lock()
	calls := append([]int(nil), big.batchLens...)
	big.mu.Unlock()
	if len(calls) < 3 {
		t.Errorf("3 MB of messages in %v calls", calls)
	}
	if m := big.got(); m[0].message != strings.Repeat("b", 100_000) {
		t.Error("message_keys did not make the message")
	}
}

// TestCloudWatchLogsThrottledNoDuplicates: when the second call of a
// chunk stays throttled past put_log_events_retry_limit, the chunk is
// retried by the buffer and sends only the events not yet delivered.
func TestCloudWatchLogsThrottledNoDuplicates(t *testing.T) {
	cwl := newCWLFake(t)
	cwl.throttle = func(put int) bool { return put >= 2 && put <= 4 }
	e, out := startCWL(t, cwl, "  log_group_name g\n  log_stream_name s\n  auto_create_stream true\n  max_events_per_batch 100\n  put_log_events_retry_limit 1\n  put_log_events_retry_wait 0.01"+fastBuffer)
	var at []int64
	var recs []map[string]any
	for i := range 250 {
		at = append(at, time.Now().UnixNano())
		recs = append(recs, map[string]any{"n": i})
	}
	emitAt(t, e, "app.t", at, recs...)
	plugintest.WaitFor(t, "250 events", func() bool { return len(cwl.got()) >= 250 })
	time.Sleep(200 * time.Millisecond)
	seen := map[string]bool{}
	for _, g := range cwl.got() {
		seen[g.message] = true
	}
	if len(cwl.got()) != 250 || len(seen) != 250 {
		t.Errorf("%d events, %d distinct", len(cwl.got()), len(seen))
	}
	if metrics(out)["cloudwatch_throttled_calls_total"] < 1 {
		t.Errorf("metrics %v", metrics(out))
	}
}

// TestCloudWatchLogsMissingTargetAndRejected: without auto_create_stream
// the events of a missing group are dropped and counted (as the Ruby plugin
// skips them); events the service rejects as too old are counted.
func TestCloudWatchLogsMissingTargetAndRejected(t *testing.T) {
	cwl := newCWLFake(t)
	e, out := startCWL(t, cwl, "  log_group_name nowhere\n  log_stream_name s"+fastBuffer)
	emitAt(t, e, "app.m", []int64{time.Now().UnixNano()}, map[string]any{"n": 1})
	plugintest.WaitFor(t, "the drop", func() bool { return metrics(out)["cloudwatch_missing_target_events_total"] == 1 })

	old := newCWLFake(t)
	e2, out2 := startCWL(t, old, "  log_group_name g\n  log_stream_name s\n  auto_create_stream true"+fastBuffer)
	emitAt(t, e2, "app.old", []int64{time.Now().Add(-15 * 24 * time.Hour).UnixNano(), time.Now().UnixNano()},
		map[string]any{"n": "old"}, map[string]any{"n": "new"})
	plugintest.WaitFor(t, "the new event", func() bool { return len(old.got()) == 1 })
	plugintest.WaitFor(t, "the rejection counted", func() bool { return metrics(out2)["cloudwatch_rejected_events_total"] == 1 })
}

// TestCloudWatchLogsSequenceTokens: a service that checks sequence tokens
// (as before 2023): the output takes the token it expects from
// InvalidSequenceTokenException and delivers every batch once.
func TestCloudWatchLogsSequenceTokens(t *testing.T) {
	cwl := newCWLFake(t)
	cwl.strictTokens = true
	cwl.groups["g"] = &cwlGroup{streams: map[string]*cwlStream{"s": {token: 7}}} // written to before
	e, _ := startCWL(t, cwl, "  log_group_name g\n  log_stream_name s\n  max_events_per_batch 10"+fastBuffer)
	var at []int64
	var recs []map[string]any
	for i := range 35 {
		at = append(at, time.Now().UnixNano())
		recs = append(recs, map[string]any{"n": i})
	}
	emitAt(t, e, "app.tok", at, recs...)
	plugintest.WaitFor(t, "35 events", func() bool { return len(cwl.got()) == 35 })
}
