package kinesis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/firehosefake"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// These tests run the kinesis_firehose output, with the AWS SDK's own
// client, against firehosefake: an HTTP endpoint that implements
// PutRecordBatch as AWS documents it (JSON 1.1, limits, error shapes).
// Amazon publishes no Firehose server one could run locally.

func startFake(t *testing.T, streams ...string) (*firehosefake.Server, string) {
	t.Helper()
	fake := firehosefake.New()
	for _, s := range streams {
		fake.CreateStream(s)
	}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return fake, srv.URL
}

// firehoseConf routes app.** to a kinesis_firehose output with extra
// parameters, and <label @ERROR> to the capture output "errors".
func firehoseConf(endpoint, extra string) string {
	return fmt.Sprintf(`
<match app.**>
  @type kinesis_firehose
  @id firehose
  region us-west-2
  endpoint %s
  aws_key_id AKIDTEST
  aws_sec_key secret
  delivery_stream_name stream-${tag[1]}
  %s
  <buffer tag>
    flush_interval 0.05
    flush_thread_interval 0.01
    flush_thread_count 4
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
</label>
`, endpoint, extra)
}

func emitIDs(t *testing.T, emit func(event.Stream), tag string, from, n, batch int) {
	t.Helper()
	for i := from; i < from+n; i += batch {
		var recs []map[string]any
		for j := i; j < i+batch && j < from+n; j++ {
			recs = append(recs, map[string]any{"id": j, "log": strings.Repeat("x", 100)})
		}
		emit(plugintest.Stream(t, tag, recs...))
	}
}

// idsIn decodes the newline-delimited JSON events in records and counts
// each id.
func idsIn(t *testing.T, records [][]byte) map[int]int {
	t.Helper()
	seen := map[int]int{}
	for _, rec := range records {
		for _, line := range strings.Split(strings.TrimSuffix(string(rec), "\n"), "\n") {
			var v struct{ ID int }
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("record line %q: %v", line, err)
			}
			seen[v.ID]++
		}
	}
	return seen
}

func checkExactlyOnce(t *testing.T, seen map[int]int, n int) {
	t.Helper()
	for id := 0; id < n; id++ {
		if seen[id] != 1 {
			t.Errorf("id %d arrived %d times, want exactly once", id, seen[id])
		}
	}
	if len(seen) != n {
		t.Errorf("%d distinct ids arrived, want %d", len(seen), n)
	}
}

func runEngine(t *testing.T, conf string) (emit func(event.Stream), stop func()) {
	t.Helper()
	e := plugintest.Build(t, conf)
	stop = plugintest.Start(t, e)
	emit = func(s event.Stream) { plugintest.Must(t, e.Root().Emit(context.Background(), s)) }
	return emit, stop
}

// With 30% of records failing for a while, every record arrives exactly
// once: only failed records are resent, within the call's retries and
// across the buffer's retries of the chunk.
func TestFirehosePartialFailuresExactlyOnce(t *testing.T) {
	for _, retries := range []int{0, 8} {
		t.Run(fmt.Sprintf("retries_on_batch_request=%d", retries), func(t *testing.T) {
			fake, url := startFake(t, "stream-a")
			fake.FailRecords(0.3)
			// Small chunks, so that the flush threads write several at once.
			conf := strings.Replace(firehoseConf(url, fmt.Sprintf("retries_on_batch_request %d", retries)),
				"flush_thread_count 4", "flush_thread_count 4\n    chunk_limit_size 64k", 1)
			emit, stop := runEngine(t, conf)
			const n = 3000
			emitIDs(t, emit, "app.a", 0, n, 100)
			plugintest.WaitFor(t, "failures", func() bool { return fake.CallCount() > 5 })
			fake.FailRecords(0)
			plugintest.WaitFor(t, "every record", func() bool { return len(fake.Records("stream-a")) >= n })
			stop()
			checkExactlyOnce(t, idsIn(t, fake.Records("stream-a")), n)
		})
	}
}

// A whole call refused with ServiceUnavailableException (throttling) is
// retried; nothing is lost or doubled.
func TestFirehoseThrottledCallsRetried(t *testing.T) {
	fake, url := startFake(t, "stream-a")
	fake.Throttle(4)
	emit, stop := runEngine(t, firehoseConf(url, ""))
	emitIDs(t, emit, "app.a", 0, 200, 50)
	plugintest.WaitFor(t, "every record", func() bool { return len(fake.Records("stream-a")) >= 200 })
	stop()
	checkExactlyOnce(t, idsIn(t, fake.Records("stream-a")), 200)
	if fake.CallCount() < 5 {
		t.Errorf("%d calls: the throttled calls were not made", fake.CallCount())
	}
}

// Every retry is Sluice's own, made where its users configure it and
// counted when it happens: the SDK makes one attempt per call (its own
// three attempts once hid two throttled calls inside one flush).
func TestFirehoseRetriesAreCountedNotHiddenInTheSDK(t *testing.T) {
	fake, url := startFake(t, "stream-a")
	fake.Throttle(2)
	e := plugintest.Build(t, firehoseConf(url, ""))
	stop := plugintest.Start(t, e)
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "app.a", map[string]any{"id": 0})))
	plugintest.WaitFor(t, "the record", func() bool { return len(fake.Records("stream-a")) >= 1 })
	stop()
	var retries int64
	for _, o := range e.Outputs() {
		if o.Runtime != nil {
			retries += o.Runtime.Stats.RetryCount.Load()
		}
	}
	if calls := fake.CallCount(); calls != 3 || retries != 2 {
		t.Errorf("%d calls and %d retries counted, want 3 calls (two throttled) and 2 retries", calls, retries)
	}
}

// A chunk of more records, and more bytes, than one call may carry is
// split within the limits (the fake refuses a call over them), and the
// stream name's placeholder is expanded per chunk.
func TestFirehoseSplitsWithinCallLimits(t *testing.T) {
	fake, url := startFake(t, "stream-a", "stream-b")
	emit, stop := runEngine(t, firehoseConf(url, ""))
	// 1,200 small records: three calls by count.
	emitIDs(t, emit, "app.a", 0, 1200, 1200)
	// 60 records of 100 KB: over 4 MiB, so split by size.
	var big []map[string]any
	for i := 0; i < 60; i++ {
		big = append(big, map[string]any{"id": i, "log": strings.Repeat("y", 100_000)})
	}
	emit(plugintest.Stream(t, "app.b", big...))
	plugintest.WaitFor(t, "every record", func() bool {
		return len(fake.Records("stream-a")) >= 1200 && len(fake.Records("stream-b")) >= 60
	})
	stop()
	checkExactlyOnce(t, idsIn(t, fake.Records("stream-a")), 1200)
	checkExactlyOnce(t, idsIn(t, fake.Records("stream-b")), 60)
	if calls := fake.CallCount(); calls < 3+2 {
		t.Errorf("%d calls, want at least 5 (3 by count, 2 by size)", calls)
	}
}

// A record over 1,000 KiB goes to <label @ERROR>, whole, and the rest of
// its chunk is delivered.
func TestFirehoseOversizedRecordToErrorLabel(t *testing.T) {
	plugintest.Reset()
	fake, url := startFake(t, "stream-a")
	emit, stop := runEngine(t, firehoseConf(url, ""))
	emit(plugintest.Stream(t, "app.a",
		map[string]any{"id": 0, "log": "small"},
		map[string]any{"id": 1, "log": strings.Repeat("z", 1_100_000)},
		map[string]any{"id": 2, "log": "small"}))
	plugintest.WaitFor(t, "delivery", func() bool {
		return len(fake.Records("stream-a")) >= 2 && len(plugintest.Captured("errors")) >= 1
	})
	stop()
	seen := idsIn(t, fake.Records("stream-a"))
	if len(seen) != 2 || seen[0] != 1 || seen[2] != 1 {
		t.Errorf("stream got ids %v, want 0 and 2 once", seen)
	}
	errs := plugintest.Captured("errors")
	if len(errs) != 1 || errs[0].Tag != "app.a" || len(errs[0].Record["log"].(string)) != 1_100_000 {
		t.Errorf("@ERROR got %d events, want the oversized one whole", len(errs))
	}
}

// pack_records joins events into records up to the per-record limit,
// each event on its own line.
func TestFirehosePackRecords(t *testing.T) {
	fake, url := startFake(t, "stream-a")
	emit, stop := runEngine(t, firehoseConf(url, "pack_records true"))
	// 3,000 events of ~120 bytes: about 360 KB, one record.
	emitIDs(t, emit, "app.a", 0, 3000, 3000)
	plugintest.WaitFor(t, "every record", func() bool { return len(idsIn(t, fake.Records("stream-a"))) >= 3000 })
	stop()
	recs := fake.Records("stream-a")
	checkExactlyOnce(t, idsIn(t, recs), 3000)
	if len(recs) != 1 {
		t.Errorf("%d records, want the 3,000 events packed into 1", len(recs))
	}
	for _, r := range recs {
		if len(r) > firehosefake.MaxRecordBytes {
			t.Errorf("packed record of %d bytes exceeds the limit", len(r))
		}
	}
}

// A packed record keeps every event's line as the formatter gave it, an
// empty one too: the newlines the formatter's output ends in are taken
// off that event's line only, before append_new_line puts one back.
func TestFirehosePackedLinesKeptApart(t *testing.T) {
	fake, url := startFake(t, "stream-a")
	emit, stop := runEngine(t, firehoseConf(url, "pack_records true\n<format>\n  @type single_value\n</format>"))
	emit(plugintest.Stream(t, "app.a", map[string]any{"message": "first"}, map[string]any{"message": ""},
		map[string]any{"message": "third"}))
	plugintest.WaitFor(t, "a record", func() bool { return len(fake.Records("stream-a")) > 0 })
	stop()
	recs := fake.Records("stream-a")
	if len(recs) != 1 || string(recs[0]) != "first\n\nthird\n" {
		t.Errorf("records %q, want one: \"first\\n\\nthird\\n\"", recs)
	}
}

// aggregated_record_size (aws-fluent-plugin-kinesis) joins events into
// records of at most that many bytes; max_record_size sends a larger event
// to @ERROR; <inject> writes the time as the plugin does, a string with
// nanoseconds.
func TestFirehoseAggregatedRecordSizeAndInject(t *testing.T) {
	fake, url := startFake(t, "stream-a")
	emit, stop := runEngine(t, firehoseConf(url, "aggregated_record_size 1200\nmax_record_size 5000\n<inject>\n  time_key at\n  utc true\n</inject>"))
	errorsBefore := len(plugintest.Captured("errors")) // the capture is shared by the package's tests
	emitIDs(t, emit, "app.a", 0, 100, 100)
	emit(plugintest.Stream(t, "app.a", map[string]any{"log": strings.Repeat("x", 6000)}))
	plugintest.WaitFor(t, "every record", func() bool { return len(idsIn(t, fake.Records("stream-a"))) >= 100 })
	plugintest.WaitFor(t, "the oversized event in @ERROR", func() bool { return len(plugintest.Captured("errors")) == errorsBefore+1 })
	stop()
	recs := fake.Records("stream-a")
	checkExactlyOnce(t, idsIn(t, recs), 100)
	if len(recs) < 2 || len(recs) > 50 {
		t.Errorf("%d records for 100 events packed to 1200 bytes", len(recs))
	}
	for _, r := range recs {
		if len(r) > 1200 {
			t.Errorf("record of %d bytes, over aggregated_record_size", len(r))
		}
	}
	first := strings.SplitN(string(recs[0]), "\n", 2)[0]
	if !regexp.MustCompile(`"at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}\+0000"`).MatchString(first) {
		t.Errorf("injected time in %s, want the plugin's string format", first)
	}
}

// append_new_line false and data_key: the field's value as the record.
func TestFirehoseDataKey(t *testing.T) {
	fake, url := startFake(t, "stream-a")
	emit, stop := runEngine(t, firehoseConf(url, "data_key log\nappend_new_line false"))
	emit(plugintest.Stream(t, "app.a", map[string]any{"log": "raw line one"}, map[string]any{"log": "raw line two"}))
	plugintest.WaitFor(t, "records", func() bool { return len(fake.Records("stream-a")) >= 2 })
	stop()
	recs := fake.Records("stream-a")
	if string(recs[0]) != "raw line one" || string(recs[1]) != "raw line two" {
		t.Errorf("records %q", recs)
	}
}

func TestFirehoseConfigErrors(t *testing.T) {
	for _, tc := range []struct{ extra, want string }{
		{"batch_request_max_count 501", "batch_request_max_count must be between 1 and 500"},
		{"batch_request_max_size 5m", "batch_request_max_size must be between 1 and 4194304"},
		{"pack_records true\nappend_new_line false", "pack_records needs append_new_line"},
		{"max_record_size 2m", "max_record_size must be between 1 and 1048576"},
		{"aggregated_record_size 2000\nmax_record_size 1000", "aggregated_record_size (2000) can't be greater than max_record_size (1000)"},
	} {
		_, err := plugintest.BuildErr(firehoseConf("http://127.0.0.1:1", tc.extra))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.extra, err, tc.want)
		}
	}
}

// BenchmarkFirehoseDelivery measures events per second delivered into
// the endpoint through the engine: memory buffer with the seed's
// settings, JSON format, HTTP over loopback. The endpoint runs in the same
// process, so with -cpu 1 the figure is per core for both sides together:
// a lower bound for Sluice's own cost. One op is one event.
//
//	go test -run '^$' -bench FirehoseDelivery -cpu 1,2 ./internal/plugins/kinesis
func BenchmarkFirehoseDelivery(b *testing.B) {
	for _, pack := range []bool{false, true} {
		b.Run(fmt.Sprintf("pack_records=%v", pack), func(b *testing.B) {
			fake := firehosefake.New()
			fake.CreateStream("stream-a")
			fake.CountOnly()
			srv := httptest.NewServer(fake)
			defer srv.Close()
			e := plugintest.Build(b, fmt.Sprintf(`
<match app.**>
  @type kinesis_firehose
  region us-west-2
  endpoint %s
  aws_key_id AKIDTEST
  aws_sec_key secret
  delivery_stream_name stream-a
  pack_records %v
  <buffer>
    flush_interval 1
    chunk_limit_size 1m
    flush_thread_interval 0.1
    flush_thread_count 15
    total_limit_size 2GB
  </buffer>
</match>`, srv.URL, pack))
			stop := plugintest.Start(b, e)
			var recs []map[string]any
			for i := 0; i < 1000; i++ {
				recs = append(recs, map[string]any{"container_id": strings.Repeat("3b9c4f1e", 8), "container_name": "/frontend",
					"source": "stdout", "log": fmt.Sprintf(`10.0.0.1 - - [21/Nov/2026:10:00:00 +0000] "GET /item/%d HTTP/1.1" 200 512`, i)})
			}
			s := plugintest.Stream(b, "app.a", recs...)
			b.ResetTimer()
			emitted := 0
			for emitted < b.N {
				if err := e.Root().Emit(context.Background(), s); err != nil {
					b.Fatal(err)
				}
				emitted += len(recs)
			}
			for {
				if _, lines, _ := fake.Received("stream-a"); lines >= emitted {
					break
				}
				time.Sleep(time.Millisecond)
			}
			b.StopTimer()
			records, _, size := fake.Received("stream-a")
			b.ReportMetric(float64(emitted)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(size)/1e6/b.Elapsed().Seconds(), "MB/s")
			stop()
		})
	}
}

// http_proxy sends the calls through the proxy.
func TestFirehoseHTTPProxy(t *testing.T) {
	fake, url := startFake(t, "stream-a")
	var proxied atomic.Int64
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forward proxy receives the absolute URL of the endpoint.
		if !strings.HasPrefix(r.RequestURI, url) {
			http.Error(w, "not a proxy request: "+r.RequestURI, http.StatusBadRequest)
			return
		}
		proxied.Add(1)
		r.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}))
	defer proxy.Close()
	emit, stop := runEngine(t, firehoseConf(url, "http_proxy "+proxy.URL))
	emitIDs(t, emit, "app.a", 0, 10, 10)
	plugintest.WaitFor(t, "records", func() bool { return len(fake.Records("stream-a")) >= 10 })
	stop()
	if proxied.Load() == 0 {
		t.Error("no call went through http_proxy")
	}
}
