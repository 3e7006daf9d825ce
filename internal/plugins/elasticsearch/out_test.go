package elasticsearch_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/esfake"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugins/elasticsearch"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// The tests talk to esfake: an endpoint that speaks Elasticsearch's
// documented _bulk request and response (per-item status, error.type,
// errors: true), templates and SigV4; no Elasticsearch can run here.

func conf(url, extra string) string {
	return fmt.Sprintf(`
<match app.**>
  @type elasticsearch
  hosts %s
  %s
  <buffer tag>
    flush_interval 0.05
    flush_thread_interval 0.01
    retry_wait 0.05
    retry_max_interval 0.2
    retry_forever true
  </buffer>
</match>
<label @ERROR>
  <match **>
    @type capture
    name errors
  </match>
</label>`, url, extra)
}

func start(t *testing.T, c string) (*engine.Engine, func(tag string, recs ...map[string]any), func()) {
	t.Helper()
	plugintest.Reset()
	e := plugintest.Build(t, c)
	stop := plugintest.Start(t, e)
	emit := func(tag string, recs ...map[string]any) {
		plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, tag, recs...)))
	}
	return e, emit, stop
}

// streamAt is a stream of records at the given unix times.
func streamAt(t *testing.T, tag string, at []int64, recs ...map[string]any) event.Stream {
	var b event.Builder
	for i, r := range recs {
		rec, err := event.EncodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		b.Append(event.Time(at[i]*1e9+123456789), rec)
	}
	return b.Stream(tag)
}

func waitDocs(t *testing.T, s *esfake.Server, n int) []esfake.Doc {
	t.Helper()
	plugintest.WaitFor(t, fmt.Sprintf("%d documents", n), func() bool { return len(s.Docs()) >= n })
	return s.Docs()
}

// TestLogstashFormatDocuments: index per event day in UTC, @timestamp
// with nanoseconds, tag_key, _id from id_key, and no _type for
// Elasticsearch 8 (but _doc for 7).
func TestLogstashFormatDocuments(t *testing.T) {
	for _, version := range []string{"8.11.0", "7.17.3"} {
		t.Run(version, func(t *testing.T) {
			s := esfake.New()
			defer s.Close()
			s.Version = version
			e, _, stop := start(t, conf(s.URL, "logstash_format true\n  logstash_prefix app-${tag[1]}\n  include_tag_key true\n  id_key req_id\n  remove_keys secret"))
			day1, day2 := int64(1764720000), int64(1764720000+86400) // 2025-12-03, -04 00:00 UTC
			plugintest.Must(t, e.Root().Emit(context.Background(), streamAt(t, "app.web", []int64{day1 + 60, day2 + 60},
				map[string]any{"msg": "one", "req_id": "r-1", "secret": "x"}, map[string]any{"msg": "two", "req_id": "r-2"})))
			docs := waitDocs(t, s, 2)
			stop()
			byID := map[string]esfake.Doc{}
			for _, d := range docs {
				byID[d.ID] = d
			}
			one, two := byID["r-1"], byID["r-2"]
			if one.Index != "app-web-2025.12.03" || two.Index != "app-web-2025.12.04" {
				t.Errorf("indexes %q and %q", one.Index, two.Index)
			}
			if one.Source["tag"] != "app.web" || one.Source["secret"] != nil || one.Source["msg"] != "one" {
				t.Errorf("document %v", one.Source)
			}
			ts, _ := one.Source["@timestamp"].(string)
			if !regexp.MustCompile(`^2025-12-03T\d\d:01:00\.123456789[+-]\d\d:\d\d$`).MatchString(ts) {
				t.Errorf("@timestamp %q", ts)
			}
			wantType := map[string]string{"8.11.0": "", "7.17.3": "_doc"}[version]
			if one.Type != wantType {
				t.Errorf("_type %q, want %q", one.Type, wantType)
			}
		})
	}
}

// TestPartialFailuresExactlyOnce: in one _bulk response some items are
// refused for capacity (429) for a while, some for their content (400),
// some exist already (409 on create). Every taken document arrives once,
// the capacity refusals are retried alone until taken, and the content
// refusals reach @ERROR and are not retried.
func TestPartialFailuresExactlyOnce(t *testing.T) {
	s := esfake.New()
	defer s.Close()
	var mu sync.Mutex
	tries := map[string]int{}
	s.SetVerdict(func(_ string, src map[string]any) int {
		id, _ := src["id"].(string)
		mu.Lock()
		defer mu.Unlock()
		tries[id]++
		switch {
		case src["bad"] == true:
			return 400
		case strings.HasSuffix(id, "7") && tries[id] <= 2:
			return 429
		}
		return 0
	})
	e, emit, stop := start(t, conf(s.URL, "write_operation create\n  id_key id"))
	var recs []map[string]any
	for i := 0; i < 100; i++ {
		r := map[string]any{"id": fmt.Sprintf("e%03d", i)}
		if i%25 == 3 {
			r["bad"] = true
		}
		recs = append(recs, r)
	}
	emit("app.x", recs...)
	emit("app.x", map[string]any{"id": "e000"}) // exists: 409 on create
	plugintest.WaitFor(t, "96 documents and 5 errors", func() bool {
		return len(s.Docs()) >= 96 && len(plugintest.Captured("errors")) >= 5
	})
	stop()
	seen := map[string]int{}
	for _, d := range s.Docs() {
		seen[d.ID]++
	}
	if len(seen) != 96 {
		t.Errorf("%d distinct documents, want 96", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s stored %d times", id, n)
		}
	}
	mu.Lock()
	for id, n := range tries {
		if strings.HasSuffix(id, "7") && n != 3 {
			t.Errorf("%s tried %d times, want 3 (two 429s, then taken)", id, n)
		}
		if !strings.HasSuffix(id, "7") && id != "e000" && n != 1 {
			t.Errorf("%s tried %d times, want once (only refused items are retried)", id, n)
		}
	}
	mu.Unlock()
	out := e.Outputs()[0].Plugin.(*elasticsearch.Output)
	if got := out.Stats.ByStatus[3].Load(); got != 20 { // the ten ids ending in 7, twice each
		t.Errorf("%d items answered 429, want 20", got)
	}
	if out.Stats.Refused.Load() != 5 || out.Stats.Duplicates.Load() != 1 || out.Stats.Retried.Load() != 20 {
		t.Errorf("refused %d, duplicates %d, retried %d", out.Stats.Refused.Load(), out.Stats.Duplicates.Load(), out.Stats.Retried.Load())
	}
	errs := plugintest.Captured("errors")
	if len(errs) != 5 {
		t.Fatalf("@ERROR got %d events, want 4 refused and 1 duplicate", len(errs))
	}
	for _, ev := range errs {
		if ev.Tag != "app.x" || (ev.Record["bad"] != true && ev.Record["id"] != "e000") {
			t.Errorf("@ERROR event %+v", ev)
		}
	}
}

// TestWholeRequestFailureAndSlowServer: a 503 to the whole request, and a
// server slower than request_timeout, retry the chunk; nothing is lost or
// doubled.
func TestWholeRequestFailureAndSlowServer(t *testing.T) {
	s := esfake.New()
	defer s.Close()
	s.FailWhole(3)
	e, emit, stop := start(t, conf(s.URL, "request_timeout 0.3\n  id_key id"))
	var recs []map[string]any
	for i := 0; i < 50; i++ {
		recs = append(recs, map[string]any{"id": fmt.Sprint(i)})
	}
	emit("app.y", recs...)
	waitDocs(t, s, 50)
	s.Delay(500 * time.Millisecond) // past request_timeout: retried...
	emit("app.y", map[string]any{"id": "slow"})
	time.Sleep(800 * time.Millisecond)
	s.Delay(0) // ...until it answers in time
	plugintest.WaitFor(t, "the slow document", func() bool {
		for _, d := range s.Docs() {
			if d.ID == "slow" {
				return true
			}
		}
		return false
	})
	stop()
	if n := len(s.Docs()); n != 51 {
		t.Errorf("%d documents, want 51 (ids overwrite, so a resend cannot double)", n)
	}
	if s.Requests() < 5 {
		t.Errorf("%d requests: the failures were not retried", s.Requests())
	}
	// The timed-out requests had no answer: counted as ambiguous; the 503s
	// were answers and are not.
	out := e.Outputs()[0].Plugin.(*elasticsearch.Output)
	if n := out.Stats.Ambiguous.Load(); n < 1 || n > 10 {
		t.Errorf("%d ambiguous documents, want the slow one's resends only", n)
	}
}

// TestBulkThresholdGzipAndPipeline: a chunk larger than
// bulk_message_request_threshold goes in several requests; bodies are
// gzipped; the pipeline is asked for.
func TestBulkThresholdGzipAndPipeline(t *testing.T) {
	s := esfake.New()
	defer s.Close()
	_, emit, stop := start(t, conf(s.URL, "bulk_message_request_threshold 2k\n  compression_level best_speed\n  pipeline geoip"))
	var recs []map[string]any
	for i := 0; i < 100; i++ {
		recs = append(recs, map[string]any{"n": i, "pad": strings.Repeat("x", 100)})
	}
	emit("app.z", recs...)
	waitDocs(t, s, 100)
	stop()
	if s.Requests() < 5 {
		t.Errorf("%d requests for ~14 KB at a 2 KB threshold", s.Requests())
	}
	if !s.GzipSeen() {
		t.Error("no gzip body arrived")
	}
	if q := s.Queries(); len(q) == 0 || !strings.Contains(q[0], "pipeline=geoip") || !strings.Contains(q[0], "filter_path=") {
		t.Errorf("query %v", q)
	}
	if d := s.Docs()[0]; d.Index != "fluentd" {
		t.Errorf("index %q, want index_name's default fluentd", d.Index)
	}
}

// TestDataStream: create into the data stream, @timestamp added, and the
// data stream's index template installed first.
func TestDataStream(t *testing.T) {
	s := esfake.New()
	defer s.Close()
	c := strings.Replace(conf(s.URL, "data_stream_name logs-app-default\n  data_stream_ilm_name logs-policy\n  data_stream_ilm_policy {\"policy\":{\"phases\":{}}}"), "@type elasticsearch", "@type elasticsearch_data_stream", 1)
	_, emit, stop := start(t, c)
	emit("app.ds", map[string]any{"msg": "hi"})
	docs := waitDocs(t, s, 1)
	stop()
	if docs[0].Op != "create" || docs[0].Index != "logs-app-default" || docs[0].Source["@timestamp"] == nil {
		t.Errorf("document %+v", docs[0])
	}
	tmpl, ok := s.Resource("/_index_template/logs-app-default")
	if !ok || !strings.Contains(string(tmpl), `"data_stream":{}`) || !strings.Contains(string(tmpl), `logs-app-default*`) ||
		!strings.Contains(string(tmpl), `logs-policy`) {
		t.Errorf("template %s", tmpl)
	}
	if _, ok := s.Resource("/_ilm/policy/logs-policy"); !ok {
		t.Error("the lifecycle policy was not installed")
	}
}

// TestTemplateFileAndUpsert: template_file is installed (customized)
// before the first write; upsert sends {"doc":..., "doc_as_upsert": true}.
func TestTemplateFileAndUpsert(t *testing.T) {
	s := esfake.New()
	defer s.Close()
	file := filepath.Join(t.TempDir(), "t.json")
	if err := os.WriteFile(file, []byte(`{"index_patterns":["INDEX-*"],"settings":{"number_of_shards":1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	_, emit, stop := start(t, conf(s.URL, "template_name app\n  template_file "+file+"\n  customize_template {\"INDEX\":\"logs\"}\n  write_operation upsert\n  id_key id"))
	emit("app.u", map[string]any{"id": "a", "v": 1})
	docs := waitDocs(t, s, 1)
	stop()
	if docs[0].Op != "update" || docs[0].Source["doc_as_upsert"] != true {
		t.Errorf("upsert sent %+v", docs[0])
	}
	if doc, _ := docs[0].Source["doc"].(map[string]any); doc["v"] != float64(1) {
		t.Errorf("doc %v", docs[0].Source)
	}
	if tmpl, ok := s.Resource("/_template/app"); !ok || !strings.Contains(string(tmpl), `"logs-*"`) {
		t.Errorf("template %s", tmpl)
	}
}

// TestSigV4ForAmazonOpenSearch: with <endpoint>, every request is signed
// with SigV4 for the domain's region; a server that checks the signature
// takes the documents, and refuses them (403, retried) with wrong keys.
func TestSigV4ForAmazonOpenSearch(t *testing.T) {
	s := esfake.New()
	defer s.Close()
	s.Distribution, s.Version = "opensearch", "2.11.0"
	s.RequireSigV4(aws.Credentials{AccessKeyID: "AKIDOPENSEARCH", SecretAccessKey: "right-secret"}, "eu-west-1", "es")
	mk := func(secret string) string {
		c := conf("unused:9200", fmt.Sprintf("<endpoint>\n    url %s\n    region eu-west-1\n    access_key_id AKIDOPENSEARCH\n    secret_access_key %s\n  </endpoint>", s.URL, secret))
		return strings.Replace(c, "@type elasticsearch", "@type opensearch", 1)
	}
	_, emit, stop := start(t, mk("right-secret"))
	emit("app.aws", map[string]any{"msg": "signed"})
	docs := waitDocs(t, s, 1)
	stop()
	if docs[0].Source["msg"] != "signed" || docs[0].Type != "" {
		t.Errorf("document %+v", docs[0])
	}
	before := s.SignatureFailures()
	// The forged chunk is retried until the shutdown deadline; keep it short.
	_, emit, stop = start(t, "<system>\n  shutdown_timeout 1s\n</system>\n"+mk("wrong-secret"))
	emit("app.aws", map[string]any{"msg": "forged"})
	plugintest.WaitFor(t, "a refused signature", func() bool { return s.SignatureFailures() > before+1 })
	stop()
	if n := len(s.Docs()); n != 1 {
		t.Errorf("%d documents: a badly signed request was taken", n)
	}
}

func TestConfigErrors(t *testing.T) {
	for extra, want := range map[string]string{
		"write_operation update":                      "needs id_key",
		"hosts ftp://x:1":                             "the scheme is http or https",
		"template_name x":                             "template_name and template_file go together",
		"time_precision 12":                           "time_precision must be 0 to 9",
		"client_cert /c.pem":                          "client_cert needs client_key",
		"template_name x\n  template_file /nope.json": "template x",
	} {
		_, err := plugintest.BuildErr(conf("http://127.0.0.1:1", extra))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", extra, err, want)
		}
	}
	_, err := plugintest.BuildErr(strings.Replace(conf("http://127.0.0.1:1", ""), "@type elasticsearch", "@type elasticsearch_data_stream", 1))
	if err == nil || !strings.Contains(err.Error(), "data_stream_name is required") {
		t.Errorf("data stream without a name: %v", err)
	}
}

// TestDynamicIndexPerEvent: elasticsearch_dynamic names each event's index
// from its own record and tag.
func TestDynamicIndexPerEvent(t *testing.T) {
	s := esfake.New()
	defer s.Close()
	c := strings.Replace(conf(s.URL, "index_name logs-${record['kubernetes']['namespace']}-${tag_parts[1]}"), "@type elasticsearch", "@type elasticsearch_dynamic", 1)
	_, emit, stop := start(t, c)
	emit("app.api", map[string]any{"kubernetes": map[string]any{"namespace": "Prod"}}, map[string]any{"kubernetes": map[string]any{"namespace": "dev"}})
	docs := waitDocs(t, s, 2)
	stop()
	got := map[string]bool{}
	for _, d := range docs {
		got[d.Index] = true
	}
	if !got["logs-prod-api"] || !got["logs-dev-api"] {
		t.Errorf("indexes %v, want logs-prod-api and logs-dev-api", got)
	}
}

// TestIndexNamesOfSimilarTags: chunks of tags that share a prefix get
// their own daily index, one after the other on one output.
func TestIndexNamesOfSimilarTags(t *testing.T) {
	s := esfake.New()
	defer s.Close()
	e, _, stop := start(t, conf(s.URL, "logstash_format true\n  logstash_prefix ${tag}"))
	day := int64(1764720000)
	for _, tag := range []string{"app.webx", "app.web", "app.webx"} {
		plugintest.Must(t, e.Root().Emit(context.Background(), streamAt(t, tag, []int64{day}, map[string]any{"tag": tag})))
		time.Sleep(100 * time.Millisecond) // one chunk after the other
	}
	docs := waitDocs(t, s, 3)
	stop()
	for _, d := range docs {
		if want := d.Source["tag"].(string) + "-2025.12.03"; d.Index != want {
			t.Errorf("index %q, want %q", d.Index, want)
		}
	}
}

// TestIDsRoutingTimeKeyAndTargetIndex: <hash> gives identical records
// the same _id (kept in hash_id_key too); routing_key fills routing;
// time_key (read with time_key_format) dates the daily index and
// @timestamp; target_index_key's value is the index and leaves the record.
func TestIDsRoutingTimeKeyAndTargetIndex(t *testing.T) {
	s := esfake.New()
	defer s.Close()
	_, emit, stop := start(t, conf(s.URL, "logstash_format true\n  time_key ts\n  time_key_format %d/%m/%Y %H:%M:%S\n  routing_key user\n  target_index_key dest\n  <hash>\n    hash_id_key doc_hash\n  </hash>"))
	same := map[string]any{"user": "ann", "ts": "01/02/2026 03:04:05", "v": 1}
	emit("app.h", same, same, map[string]any{"user": "bob", "ts": "02/02/2026 00:00:00", "dest": "Special-Index"})
	waitDocs(t, s, 2)
	time.Sleep(200 * time.Millisecond)
	stop()
	docs := s.Docs()
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2 (the identical records share one _id)", len(docs))
	}
	for _, d := range docs {
		if d.ID == "" || d.Source["doc_hash"] != d.ID {
			t.Errorf("document %+v: _id %q not in doc_hash", d.Source, d.ID)
		}
		switch d.Routing {
		case "ann":
			if d.Index != "logstash-2026.02.01" || !strings.HasPrefix(d.Source["@timestamp"].(string), "2026-02-01T03:04:05") {
				t.Errorf("ann: index %q, @timestamp %v", d.Index, d.Source["@timestamp"])
			}
		case "bob":
			if d.Index != "special-index" || d.Source["dest"] != nil {
				t.Errorf("bob: index %q, record %v", d.Index, d.Source)
			}
		default:
			t.Errorf("routing %q", d.Routing)
		}
	}
}

// TestTLS: an https host is trusted through ca_file; without it the
// certificate is refused (and the documents wait), unless ssl_verify false.
func TestTLS(t *testing.T) {
	s := esfake.NewTLS()
	defer s.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		extra string
		taken bool
	}{{"ca_file " + ca, true}, {"ssl_verify false", true}, {"", false}} {
		before := len(s.Docs())
		_, emit, stop := start(t, "<system>\n  shutdown_timeout 1s\n</system>\n"+conf(s.URL, tc.extra))
		emit("app.tls", map[string]any{"case": tc.extra})
		if tc.taken {
			waitDocs(t, s, before+1)
		} else {
			time.Sleep(500 * time.Millisecond)
		}
		stop()
		if got := len(s.Docs()) - before; (got == 1) != tc.taken {
			t.Errorf("%q: %d documents taken", tc.extra, got)
		}
	}
}
