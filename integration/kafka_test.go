//go:build integration

package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
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
	cmd := exec.Command(kfakeBin, "-ports", portList, "-topics", topics)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "brokers ") {
		t.Fatalf("sluice-kfake: %q, %v", line, err)
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

func kafkaConf(fwdPort int, brokers []string, bufferDir string) string {
	return fmt.Sprintf(`<source>
  @type forward
  bind 127.0.0.1
  port %d
</source>
<filter app.**>
  @type record_transformer
  <record>
    message_key ${record["container_name"]}
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
`, fwdPort, strings.Join(brokers, ","), bufferDir)
}

// TestKafka2ThroughAKafkaServer: acked PackedForward from the load
// generator → Sluice (file buffer) → kafka2 → a three-broker cluster, and
// sarama reads back every tracer exactly once, each message key in one
// partition.
func TestKafka2ThroughAKafkaServer(t *testing.T) {
	brokers := startKfake(t, "logs:6")
	dir := t.TempDir()
	port := freePort(t)
	in := startSluiceIn(t, dir, kafkaConf(port, brokers, filepath.Join(dir, "buffer")))
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
	conf := kafkaConf(port, brokers, filepath.Join(dir, "buffer"))
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
