//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kstypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/fluent/fluent-logger-golang/fluent"

	"github.com/sluice-log/sluice/internal/firehosefake"
	"github.com/sluice-log/sluice/internal/loadgen"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// dockerRecord is what Docker's fluentd log driver sends per line.
func dockerRecord(container, id string) map[string]string {
	return map[string]string{
		"container_id":   "3b9c4f1e8a2d" + strings.Repeat("0", 52),
		"container_name": "/" + container,
		"source":         "stdout",
		"log":            fmt.Sprintf(`10.0.0.1 - - "GET /item/%s HTTP/1.1" 200 512`, id),
		"id":             id,
	}
}

// firehoseIDs maps each id in a delivery stream's records to its count,
// and checks every record carries the Docker fields as JSON with a newline.
func firehoseIDs(t *testing.T, records [][]byte, container string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for _, r := range records {
		if !strings.HasSuffix(string(r), "\n") {
			t.Fatalf("record %q does not end in a newline (append_new_line is on by default)", r)
		}
		var v map[string]string
		if err := json.Unmarshal(r, &v); err != nil {
			t.Fatalf("record %q: %v", r, err)
		}
		if v["container_name"] != "/"+container || v["source"] != "stdout" {
			t.Fatalf("record %q is not from %s", r, container)
		}
		seen[v["id"]]++
	}
	return seen
}

// TestSeed000EndToEnd runs shared/compat/fargate-firehose.conf byte for
// byte (forward on 24224, http on 8888, as the seed has them; the test
// connects over loopback only) with the Firehose endpoint given through
// AWS_ENDPOINT_URL_FIREHOSE, as the seed's deployment sets its AWS
// environment. Firehose has no local server: the endpoint is firehosefake,
// which implements PutRecordBatch as AWS documents it. Docker-driver
// records tagged frontend-apache and backend-api must reach their own
// delivery streams exactly once while 30% of records fail for a while;
// health checks must reach neither.
func TestSeed000EndToEnd(t *testing.T) {
	fake := firehosefake.New()
	fake.FailRecords(0.3)
	in := startSeed000(t, fake)

	// Docker's fluentd driver is built on fluent-logger-golang.
	driver, err := fluent.New(fluent.Config{FluentHost: "127.0.0.1", FluentPort: 24224, SubSecondPrecision: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	for i := 0; i < n; i++ {
		for _, tag := range []string{"frontend-apache", "backend-api"} {
			if err := driver.Post(tag, dockerRecord(strings.Split(tag, "-")[1], fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	driver.Close()
	// The container health check of the seed: a GET on the http source.
	for i := 0; i < 5; i++ {
		resp, err := http.Get("http://127.0.0.1:8888/health.check?json=" + url.QueryEscape(`{"id":"health"}`))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("health check: HTTP %d", resp.StatusCode)
		}
	}
	plugintest.WaitFor(t, "failed records", func() bool { return fake.CallCount() > 4 })
	time.Sleep(2 * time.Second) // failures for a while: several flushes and retries
	fake.FailRecords(0)
	checkSeed000ExactlyOnce(t, fake, in, n)
	if !strings.Contains(in.Logs(), "Retrying to request batch. Retry count: 1") {
		t.Errorf("no retry was logged in the plugin's words\n%s", in.Logs())
	}
}

// TestSeed000PartialFailuresNoDuplicates is the seed's configuration as
// written under the failures Firehose shows in production: 30% of records
// refused for 8 s while 5% of calls are throttled whole, with 20,000
// records per delivery stream, each stream's from 4 acked PackedForward
// connections of the load generator (500 events a message). Retrying the
// refused records must never resend an accepted one, and nothing may be
// lost: each record arrives exactly once.
func TestSeed000PartialFailuresNoDuplicates(t *testing.T) {
	fake := firehosefake.New()
	fake.FailRecords(0.3)
	fake.ThrottleCalls(0.05)
	failing := time.AfterFunc(8*time.Second, func() { fake.FailRecords(0) })
	defer failing.Stop()
	in := seed000Load(t, fake, 20000)
	if !strings.Contains(in.Logs(), "Retrying to request batch") {
		t.Errorf("no batch was retried: the failures did not happen\n%s", in.Logs())
	}
}

// TestSeed000SustainedLoadNoDuplicates: the same without faults, at the
// rate the generator and Sluice reach together, 200,000 records per
// stream. No call may be cut off while the service may still be taking it.
func TestSeed000SustainedLoadNoDuplicates(t *testing.T) {
	seed000Load(t, firehosefake.New(), 200000)
}

// seed000Load sends n records to each of the seed's two delivery streams
// through startSeed000, from 4 acked PackedForward connections per stream
// (500 events a message), stops Sluice once every message is acknowledged
// (the drain delivers the rest) and checks that each record arrived once.
func seed000Load(t *testing.T, fake *firehosefake.Server, n int64) *instance {
	t.Helper()
	in := startSeed000(t, fake)
	streams := map[string]string{"frontend-apache": "elasticsearch-delivery-stream", "backend-api": "s3-delivery-stream"}
	errs := make(chan error, len(streams))
	for tag := range streams {
		go func() {
			_, err := loadgen.Send(context.Background(), loadgen.SendConfig{Addr: "127.0.0.1:24224", Mode: loadgen.ModePacked,
				Conns: 4, Batch: 500, Events: n, Ack: true, Tag: tag, TracerEvery: 1, TracerRun: tag})
			errs <- err
		}()
	}
	for range streams {
		if err := <-errs; err != nil {
			t.Fatalf("%v\n%s", err, in.Logs())
		}
	}
	in.Stop()
	for tag, stream := range streams {
		seen := map[string]int{}
		for _, r := range fake.Records(stream) {
			var v struct{ Tracer string }
			if err := json.Unmarshal(r, &v); err != nil {
				t.Fatalf("%s: record %q: %v", stream, r, err)
			}
			seen[v.Tracer]++
		}
		dups, missing := 0, 0
		for _, id := range loadgen.ExpectedTracers(loadgen.SendConfig{Conns: 4, Events: n, TracerEvery: 1, TracerRun: tag}) {
			switch c := seen[id]; {
			case c == 0:
				missing++
			case c > 1:
				dups += c - 1
			}
		}
		if dups > 0 || missing > 0 {
			t.Errorf("%s: %d records missing and %d duplicated of %d, want each exactly once", stream, missing, dups, n)
		}
	}
	return in
}

// startSeed000 runs shared/compat/fargate-firehose.conf byte for byte
// against fake, which gets the seed's two delivery streams; env adds to
// the process's environment.
func startSeed000(t *testing.T, fake *firehosefake.Server, env ...string) *instance {
	t.Helper()
	for _, port := range []string{"24224", "8888"} {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
			c.Close()
			t.Fatalf("port %s is taken; the seed configuration needs it as written", port)
		}
	}
	conf, err := os.ReadFile("../internal/engine/testdata/fargate-firehose.conf")
	if err != nil {
		t.Fatal(err)
	}
	fake.CreateStream("elasticsearch-delivery-stream")
	fake.CreateStream("s3-delivery-stream")
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	return startSluiceIn(t, t.TempDir(), string(conf), append([]string{
		"AWS_ENDPOINT_URL_FIREHOSE=" + srv.URL, "AWS_ACCESS_KEY_ID=AKIDTEST", "AWS_SECRET_ACCESS_KEY=secret",
		"AWS_EC2_METADATA_DISABLED=true"}, env...)...)
}

// checkSeed000ExactlyOnce waits for ids 0..n-1 in both delivery streams,
// stops the instance and checks that each id arrived once.
func checkSeed000ExactlyOnce(t *testing.T, fake *firehosefake.Server, in *instance, n int) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for len(fake.Records("elasticsearch-delivery-stream")) < n || len(fake.Records("s3-delivery-stream")) < n {
		if time.Now().After(deadline) {
			t.Fatalf("after 60s: %d and %d of %d records\n%s", len(fake.Records("elasticsearch-delivery-stream")),
				len(fake.Records("s3-delivery-stream")), n, in.Logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	in.Stop()
	for stream, container := range map[string]string{"elasticsearch-delivery-stream": "apache", "s3-delivery-stream": "api"} {
		seen := firehoseIDs(t, fake.Records(stream), container)
		dups := 0
		for i := 0; i < n; i++ {
			if c := seen[fmt.Sprint(i)]; c != 1 {
				dups += max(0, c-1)
				if c == 0 {
					t.Errorf("%s: id %d never arrived", stream, i)
				}
			}
		}
		if dups > 0 {
			t.Errorf("%s: %d records arrived more than once, want each exactly once", stream, dups)
		}
		if len(seen) != n {
			t.Errorf("%s: %d distinct ids, want %d (health checks must not arrive)", stream, len(seen), n)
		}
	}
}

// kinesalite is a real Kinesis Data Streams server, from npm, which
// scripts/test installs into .cache/npm.
func startKinesalite(t *testing.T) string {
	t.Helper()
	bin, err := filepath.Abs("../.cache/npm/node_modules/.bin/kinesalite")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("kinesalite is not installed at %s (scripts/test installs it)", bin)
	}
	port := freePort(t)
	cmd := exec.Command("node", bin, "--port", fmt.Sprint(port), "--createStreamMs", "0", "--deleteStreamMs", "0")
	logf, _ := os.Create(filepath.Join(t.TempDir(), "kinesalite.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	plugintest.WaitFor(t, "kinesalite", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return "http://" + addr
}

func kinesisClient(endpoint string) *kinesis.Client {
	return kinesis.New(kinesis.Options{Region: "us-east-1", BaseEndpoint: aws.String(endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")})
}

// streamRecords reads every record of every shard from the start.
func streamRecords(t *testing.T, c *kinesis.Client, stream string) []kstypes.Record {
	t.Helper()
	ctx := context.Background()
	shards, err := c.ListShards(ctx, &kinesis.ListShardsInput{StreamName: aws.String(stream)})
	if err != nil {
		t.Fatal(err)
	}
	var out []kstypes.Record
	for _, sh := range shards.Shards {
		it, err := c.GetShardIterator(ctx, &kinesis.GetShardIteratorInput{StreamName: aws.String(stream),
			ShardId: sh.ShardId, ShardIteratorType: kstypes.ShardIteratorTypeTrimHorizon})
		if err != nil {
			t.Fatal(err)
		}
		iter := it.ShardIterator
		for iter != nil {
			got, err := c.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, got.Records...)
			if len(got.Records) == 0 {
				break
			}
			iter = got.NextShardIterator
		}
	}
	return out
}

// TestKinesisStreamsKinesalite sends through kinesis_streams to kinesalite:
// every event arrives once, its partition key is the partition_key field,
// or random when the record lacks it, and a chunk larger than one
// PutRecords call (500 records) is split.
func TestKinesisStreamsKinesalite(t *testing.T) {
	endpoint := startKinesalite(t)
	c := kinesisClient(endpoint)
	ctx := context.Background()
	if _, err := c.CreateStream(ctx, &kinesis.CreateStreamInput{StreamName: aws.String("events-a"), ShardCount: aws.Int32(2)}); err != nil {
		t.Fatal(err)
	}
	plugintest.WaitFor(t, "stream active", func() bool {
		d, err := c.DescribeStream(ctx, &kinesis.DescribeStreamInput{StreamName: aws.String("events-a")})
		return err == nil && d.StreamDescription.StreamStatus == kstypes.StreamStatusActive
	})
	e := plugintest.Build(t, fmt.Sprintf(`
<match app.**>
  @type kinesis_streams
  region us-east-1
  endpoint %s
  aws_key_id AKIDTEST
  aws_sec_key secret
  stream_name events-${tag[1]}
  partition_key user
  <buffer tag>
    flush_interval 0.05
    retry_wait 0.05
  </buffer>
</match>`, endpoint))
	stop := plugintest.Start(t, e)
	const n = 1200
	var recs []map[string]any
	for i := 0; i < n; i++ {
		r := map[string]any{"id": i, "log": "line"}
		if i%2 == 0 {
			r["user"] = fmt.Sprintf("user-%d", i%7)
		}
		recs = append(recs, r)
	}
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "app.a", recs...)))
	var got []kstypes.Record
	plugintest.WaitFor(t, "records in kinesalite", func() bool {
		got = streamRecords(t, c, "events-a")
		return len(got) >= n
	})
	stop()
	got = streamRecords(t, c, "events-a")
	seen := map[int]int{}
	randomKeys := map[string]bool{}
	for _, r := range got {
		var v struct {
			ID   int
			User string
		}
		if err := json.Unmarshal(r.Data, &v); err != nil {
			t.Fatalf("record %q: %v", r.Data, err)
		}
		seen[v.ID]++
		key := aws.ToString(r.PartitionKey)
		if v.User != "" && key != v.User {
			t.Errorf("id %d: partition key %q, want the user field %q", v.ID, key, v.User)
		}
		if v.User == "" {
			randomKeys[key] = true
		}
	}
	for i := 0; i < n; i++ {
		if seen[i] != 1 {
			t.Errorf("id %d arrived %d times", i, seen[i])
		}
	}
	if len(randomKeys) < n/2-5 {
		t.Errorf("%d distinct random partition keys for %d records without the field", len(randomKeys), n/2)
	}
}
