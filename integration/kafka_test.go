//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/sluice-log/sluice/internal/loadgen"
)

var (
	kfakeOnce sync.Once
	kfakeBin  string
	kfakeErr  error
)

// startKfake runs cmd/sluice-kfake (franz-go's kfake, a Kafka-protocol
// cluster; no Apache Kafka can run here) with three brokers on loopback
// and returns their addresses.
func startKfake(t *testing.T, topics string, ports ...int) []string {
	t.Helper()
	if len(ports) == 0 {
		ports = []int{0, 0, 0}
	}
	portList := strings.Trim(strings.Join(strings.Fields(fmt.Sprint(ports)), ","), "[]")
	kfakeOnce.Do(func() {
		kfakeBin = filepath.Join(filepath.Dir(sluiceBinary(t)), "sluice-kfake")
		if out, err := exec.Command("go", "build", "-o", kfakeBin, "../cmd/sluice-kfake").CombinedOutput(); err != nil {
			kfakeErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if kfakeErr != nil {
		t.Fatal(kfakeErr)
	}
	// Fixed ports were chosen free earlier, but a connection's ephemeral
	// source port (Sluice dialling the brokers that are not up yet, say)
	// can hold one for a moment: the start is tried again, for a while.
	var line string
	for attempt := 0; ; attempt++ {
		cmd := exec.Command(kfakeBin, "-ports", portList, "-topics", topics)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err = bufio.NewReader(stdout).ReadString('\n')
		if err == nil && strings.HasPrefix(line, "brokers ") {
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			break
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if attempt == 50 || !strings.Contains(stderr.String(), "address already in use") {
			t.Fatalf("sluice-kfake: %q, %v\n%s", line, err, stderr.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return strings.Split(strings.TrimSpace(strings.TrimPrefix(line, "brokers ")), ",")
}

// kafkaTracers reads every partition of topic with sarama (a client by
// other authors than the producer's) until want messages have come or 30 s
// pass, and counts the tracer ids and the partitions each message key
// landed in.
func kafkaTracers(t *testing.T, brokers []string, topic string, want int) (seen map[string]int, keyParts map[string]map[int32]bool) {
	t.Helper()
	consumer, err := sarama.NewConsumer(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *sarama.ConsumerMessage, 1024)
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		go func() {
			for m := range pc.Messages() {
				msgs <- m
			}
		}()
	}
	seen, keyParts = map[string]int{}, map[string]map[int32]bool{}
	total := 0
	deadline := time.After(30 * time.Second)
	quiet := time.NewTimer(time.Hour)
	for {
		select {
		case m := <-msgs:
			var v struct{ Tracer string }
			if err := json.Unmarshal(m.Value, &v); err != nil {
				t.Fatalf("%s: value %q: %v", topic, m.Value, err)
			}
			seen[v.Tracer]++
			if keyParts[string(m.Key)] == nil {
				keyParts[string(m.Key)] = map[int32]bool{}
			}
			keyParts[string(m.Key)][m.Partition] = true
			if total++; total >= want {
				quiet.Reset(500 * time.Millisecond) // then anything more is a duplicate
			}
		case <-quiet.C:
			return seen, keyParts
		case <-deadline:
			if total >= want {
				return seen, keyParts
			}
			t.Fatalf("%s: %d of %d messages after 30 s", topic, total, want)
		}
	}
}

// kafkaConf is forward → kafka2 with a file buffer; the message key is
// the record's keyField.
func kafkaConf(fwdPort int, brokers []string, bufferDir, keyField string) string {
	return fmt.Sprintf(`<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
<filter app.**>
  @type record_transformer
  <record>
    message_key ${record["%s"]}
  </record>
</filter>
<match app.**>
  @type kafka2
  brokers %s
  default_topic logs
  compression_codec zstd
  idempotent true
  <buffer>
    @type file
    path %s
    flush_interval 0.2
    chunk_limit_size 256k
    retry_wait 0.2
    retry_forever true
  </buffer>
</match>
`, fwdPort, keyField, strings.Join(brokers, ","), bufferDir)
}

// TestKafka2ThroughAKafkaServer: acked PackedForward from the load
// generator → Sluice (file buffer) → kafka2 → a three-broker cluster, and
// sarama reads back every tracer exactly once, each message key in one
// partition.
func TestKafka2ThroughAKafkaServer(t *testing.T) {
	brokers := startKfake(t, "logs:6")
	dir := t.TempDir()
	port := freePort(t)
	in := startSluiceIn(t, dir, kafkaConf(port, brokers, filepath.Join(dir, "buffer"), "container_name"))
	const n = 30000
	cfg := loadgen.SendConfig{Addr: fmt.Sprintf("127.0.0.1:%d", port), Mode: loadgen.ModePacked, Conns: 3, Batch: 500,
		Events: n, Ack: true, Tag: "app.web", TracerEvery: 1, TracerRun: "k"}
	if _, err := loadgen.Send(context.Background(), cfg); err != nil {
		t.Fatalf("%v\n%s", err, in.Logs())
	}
	// n tracers and each connection's final marker.
	seen, keyParts := kafkaTracers(t, brokers, "logs", n+cfg.Conns)
	in.Stop()
	for _, id := range loadgen.ExpectedTracers(cfg) {
		if seen[id] != 1 {
			t.Errorf("tracer %s arrived %d times, want once", id, seen[id])
		}
	}
	for key, ps := range keyParts {
		if len(ps) != 1 {
			t.Errorf("message key %q in %d partitions, want one", key, len(ps))
		}
	}
}

// TestKafka2KillDuringProduction: Sluice takes every event into its file
// buffer while the brokers are down, then is SIGKILLed while it produces
// the backlog, and started again on the same buffer. Nothing acknowledged
// to the client may be lost; at-least-once allows the messages of chunks
// in flight at the kill to arrive twice.
func TestKafka2KillDuringProduction(t *testing.T) {
	ports := []int{freePort(t), freePort(t), freePort(t)}
	var brokers []string
	for _, p := range ports {
		brokers = append(brokers, fmt.Sprintf("127.0.0.1:%d", p))
	}
	dir := t.TempDir()
	port := freePort(t)
	conf := kafkaConf(port, brokers, filepath.Join(dir, "buffer"), "container_name")
	in := startSluiceIn(t, dir, conf)
	const n = 100000
	cfg := loadgen.SendConfig{Addr: fmt.Sprintf("127.0.0.1:%d", port), Mode: loadgen.ModePacked, Conns: 2, Batch: 500,
		Events: n, Ack: true, Tag: "app.web", TracerEvery: 1, TracerRun: "kill"}
	if _, err := loadgen.Send(context.Background(), cfg); err != nil {
		t.Fatalf("%v\n%s", err, in.Logs())
	}
	startKfake(t, "logs:3", ports...)
	client, err := sarama.NewClient(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	produced := func() int64 {
		var sum int64
		_ = client.RefreshMetadata("logs")
		for p := int32(0); p < 3; p++ {
			if off, err := client.GetOffset("logs", p, sarama.OffsetNewest); err == nil {
				sum += off
			}
		}
		return sum
	}
	deadline := time.Now().Add(60 * time.Second)
	for produced() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing produced after 60 s\n%s", in.Logs())
		}
		time.Sleep(2 * time.Millisecond)
	}
	in.Kill()
	at := produced()
	t.Logf("killed with %d of %d messages produced", at, n)
	in = startSluiceIn(t, dir, conf)
	seen, _ := kafkaTracers(t, brokers, "logs", n+cfg.Conns)
	in.Stop()
	dups := 0
	for _, id := range loadgen.ExpectedTracers(cfg) {
		switch c := seen[id]; {
		case c == 0:
			t.Errorf("tracer %s was acknowledged and never arrived", id)
		case c > 1:
			dups += c - 1
		}
	}
	t.Logf("%d of %d tracers arrived twice (the at-least-once window of the kill)", dups, n)
}

// sendTracers produces n JSON messages {"tracer": "<run>-i"} to topic with
// sarama, keyed by i modulo 16.
func sendTracers(t *testing.T, brokers []string, topic, run string, n int) []string {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var ids []string
	var msgs []*sarama.ProducerMessage
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("%s-%d", run, i)
		ids = append(ids, id)
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i % 16)),
			Value: sarama.StringEncoder(fmt.Sprintf(`{"tracer":%q,"log":"GET /item/%d HTTP/1.1 200"}`, id, i))})
		if len(msgs) == 1000 || i == n-1 {
			if err := p.SendMessages(msgs); err != nil {
				t.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	return ids
}

// TestKafkaGroupKillDuringConsumption: a kafka_group instance with a file
// buffer is SIGKILLed while it consumes, and started again. Offsets are
// committed only past records its buffer took, so nothing is lost;
// records taken but not yet committed at the kill arrive twice
// (at-least-once).
func TestKafkaGroupKillDuringConsumption(t *testing.T) {
	brokers := startKfake(t, "logs:3")
	const n = 60000
	ids := sendTracers(t, brokers, "logs", "c", n)
	dir := t.TempDir()
	conf := fmt.Sprintf(`<source>
  @type kafka_group
  brokers %s
  consumer_group sink
  topics logs
  offset_commit_interval 0.5
  max_bytes 16384
  # The member killed stays in the group until its session times out.
  session_timeout 6
</source>
<match logs>
  @type file
  path %s/out/events
  append true
  <format>
    @type json
  </format>
  # A small buffer paces the consumer, so that the kill lands mid-way.
  <buffer>
    @type file
    path %s/buffer
    timekey_wait 0
    flush_mode interval
    flush_interval 0.2
    chunk_limit_size 64k
    total_limit_size 256k
    overflow_action throw_exception
    flush_at_shutdown true
  </buffer>
</match>
`, strings.Join(brokers, ","), dir, dir)
	in := startSluiceIn(t, dir, conf)
	glob := filepath.Join(dir, "out", "*")
	deadline := time.Now().Add(60 * time.Second)
	for {
		seen, _ := loadgen.SeenIDs(glob, "tracer")
		if len(seen) > 0 {
			t.Logf("killed with %d of %d records written out", len(seen), n)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing consumed after 60 s\n%s", in.Logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
	in.Kill()
	in = startSluiceIn(t, dir, conf)
	var seen map[string]int
	deadline = time.Now().Add(60 * time.Second)
	for {
		var err error
		if seen, err = loadgen.SeenIDs(glob, "tracer"); err != nil {
			t.Fatal(err)
		}
		if len(seen) == n || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	in.Stop()
	seen, _ = loadgen.SeenIDs(glob, "tracer")
	dups := 0
	for _, id := range ids {
		switch c := seen[id]; {
		case c == 0:
			t.Errorf("%s was in Kafka and never arrived", id)
		case c > 1:
			dups += c - 1
		}
	}
	t.Logf("%d of %d records arrived twice (taken but not yet committed at the kill)", dups, n)
}

// TestKafkaTier: Fluent Bit-style forwarders (the load generator, acked
// PackedForward) → a Sluice aggregator → kafka2 → Kafka → two Sluice
// consumers in one group → S3 (MinIO). Every acknowledged event is in S3
// once, and both consumers wrote some of it.
func TestKafkaTier(t *testing.T) {
	brokers := startKfake(t, "logs:6")
	srv := startS3Server(t)
	dir := t.TempDir()
	port := freePort(t)
	agg := startSluiceIn(t, filepath.Join(dir), kafkaConf(port, brokers, filepath.Join(dir, "agg-buffer"), "tracer"))
	consumer := func(n int) *instance {
		cdir := filepath.Join(dir, fmt.Sprintf("consumer-%d", n))
		return startSluiceIn(t, mkdir(t, cdir), fmt.Sprintf(`<source>
  @type kafka_group
  brokers %s
  consumer_group to-s3
  topics logs
  offset_commit_interval 0.5
</source>
<match **>
  @type s3
  s3_bucket tier-bucket
  s3_region us-east-1
  force_path_style true
  path consumer-%d/
  s3_object_key_format %%{path}%%{time_slice}_%%{index}.%%{file_extension}
  <format>
    @type json
  </format>
  <buffer>
    @type file
    path %s/buffer
    timekey 3600
    timekey_wait 0
    chunk_limit_size 256k
    flush_mode interval
    flush_interval 0.5
    flush_at_shutdown true
  </buffer>
</match>
`, strings.Join(brokers, ","), n, cdir), srv.Env("")...)
	}
	c1, c2 := consumer(1), consumer(2)
	admin, err := sarama.NewClusterAdmin(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		groups, err := admin.DescribeConsumerGroups([]string{"to-s3"})
		if err == nil && len(groups) == 1 && len(groups[0].Members) == 2 && groups[0].State == "Stable" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two consumers did not form a stable group in 60 s: %v %v", groups, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	const events = 40000
	cfg := loadgen.SendConfig{Addr: fmt.Sprintf("127.0.0.1:%d", port), Mode: loadgen.ModePacked, Conns: 4, Batch: 250,
		Events: events, Ack: true, Tag: "app.web", TracerEvery: 1, TracerRun: "tier"}
	if _, err := loadgen.Send(context.Background(), cfg); err != nil {
		t.Fatalf("%v\n%s", err, agg.Logs())
	}
	want := loadgen.ExpectedTracers(cfg)
	count := func() (map[string]int, map[string]int) {
		seen, byConsumer := map[string]int{}, map[string]int{}
		for key, data := range srv.objects(t, "tier-bucket") {
			for _, line := range gunzipLines(t, data) {
				var v struct{ Tracer string }
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					t.Fatalf("%s: %q: %v", key, line, err)
				}
				if v.Tracer != "" {
					seen[v.Tracer]++
				}
				byConsumer[strings.SplitN(key, "/", 2)[0]]++
			}
		}
		return seen, byConsumer
	}
	deadline = time.Now().Add(90 * time.Second)
	for {
		seen, _ := count()
		if len(seen) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	agg.Stop()
	c1.Stop()
	c2.Stop()
	seen, byConsumer := count()
	for _, id := range want {
		if seen[id] != 1 {
			t.Errorf("tracer %s is in S3 %d times, want once", id, seen[id])
		}
	}
	if byConsumer["consumer-1"] == 0 || byConsumer["consumer-2"] == 0 {
		t.Errorf("records per consumer %v: both members of the group should have taken partitions", byConsumer)
	}
}

func mkdir(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
