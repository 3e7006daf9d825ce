package kafka_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// The tests produce to kfake, franz-go's in-process Kafka cluster, which
// speaks the Kafka wire protocol; what landed is read back with IBM's
// sarama, a client by other authors, so that the producer is not checked
// only against its own library's idea of the protocol.

func cluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func conf(brokers, extra, bufferArgs string) string {
	return fmt.Sprintf(`
<match app.**>
  @type kafka2
  brokers %s
  %s
  <buffer %s>
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
</label>`, brokers, extra, bufferArgs)
}

func start(t *testing.T, c string) (*engine.Engine, func(ev event.Stream)) {
	t.Helper()
	plugintest.Reset()
	e := plugintest.Build(t, c)
	stop := plugintest.Start(t, e)
	t.Cleanup(stop)
	return e, func(ev event.Stream) { plugintest.Must(t, e.Root().Emit(context.Background(), ev)) }
}

// consume reads every partition of topic from the start with sarama until
// want messages came, or fails after 20 s.
func consume(t *testing.T, brokers []string, topic string, want int) []*sarama.ConsumerMessage {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Consumer.Return.Errors = true
	consumer, err := sarama.NewConsumer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make(chan *sarama.ConsumerMessage, want+100)
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
	var out []*sarama.ConsumerMessage
	deadline := time.After(20 * time.Second)
	for len(out) < want {
		select {
		case m := <-msgs:
			out = append(out, m)
		case <-deadline:
			t.Fatalf("%s: %d of %d messages after 20 s", topic, len(out), want)
		}
	}
	// Anything more would be a duplicate: give it a moment to show.
	select {
	case m := <-msgs:
		t.Fatalf("%s: more than %d messages: %s", topic, want, m.Value)
	case <-time.After(300 * time.Millisecond):
	}
	return out
}

func header(m *sarama.ConsumerMessage, key string) (string, bool) {
	for _, h := range m.Headers {
		if string(h.Key) == key {
			return string(h.Value), true
		}
	}
	return "", false
}

// Records land in the topic, partition, key and headers fluent-plugin-kafka
// would choose, with the event time as timestamp and the chunk-key field
// left out, in every compression.
func TestMessagesLandWhereThePluginPutsThem(t *testing.T) {
	for _, codec := range []string{"", "gzip", "snappy", "lz4", "zstd"} {
		t.Run("codec="+codec, func(t *testing.T) {
			c := cluster(t, kfake.SeedTopics(3, "orders", "clicks", "app.misc"))
			brokers := c.ListenAddrs()
			extra := `headers {"env":"test"}
  headers_from_record {"trace":"$.trace.id"}
  exclude_topic_key true
  use_event_time true`
			if codec != "" {
				extra += "\n  compression_codec " + codec
			}
			_, emit := start(t, conf(strings.Join(brokers, ","), extra, "topic,tag"))
			const n = 60
			var b event.Builder
			// Events from long ago, as a backlog or a buffer that waited
			// out an outage holds: use_event_time puts their time on the
			// message, and they are delivered all the same.
			at := time.Date(2024, 2, 29, 10, 0, 0, 123456000, time.UTC)
			for i := 0; i < n; i++ {
				r := map[string]any{"id": i, "trace": map[string]any{"id": "t" + strconv.Itoa(i)}}
				switch i % 3 {
				case 0:
					r["topic"] = "orders"
					r["partition_key"] = "customer-" + strconv.Itoa(i%5)
					r["message_key"] = "order-" + strconv.Itoa(i)
				case 1:
					r["topic"] = "clicks"
					r["partition"] = 2
				case 2: // no topic field: the tag
				}
				rec, err := event.EncodeRecord(r)
				plugintest.Must(t, err)
				b.Append(event.Time(at.Add(time.Duration(i)*time.Second).UnixNano()), rec)
			}
			ev := b.Stream("app.misc")
			emit(ev)
			for topic, want := range map[string]int{"orders": n / 3, "clicks": n / 3, "app.misc": n / 3} {
				for _, m := range consume(t, brokers, topic, want) {
					var v map[string]any
					if err := json.Unmarshal(m.Value, &v); err != nil {
						t.Fatalf("%s: value %q is not JSON: %v", topic, m.Value, err)
					}
					if strings.HasSuffix(string(m.Value), "\n") {
						t.Errorf("%s: value %q ends in a newline; the plugin's json values do not", topic, m.Value)
					}
					if _, ok := v["topic"]; ok {
						t.Errorf("%s: value %s keeps the topic field (exclude_topic_key)", topic, m.Value)
					}
					id := int(v["id"].(float64))
					if env, _ := header(m, "env"); env != "test" {
						t.Errorf("%s: header env = %q", topic, env)
					}
					if tr, _ := header(m, "trace"); tr != "t"+strconv.Itoa(id) {
						t.Errorf("%s: header trace = %q, want t%d", topic, tr, id)
					}
					if want := at.Add(time.Duration(id) * time.Second).Truncate(time.Millisecond); !m.Timestamp.Equal(want) {
						t.Errorf("%s: timestamp %v, want the event time %v", topic, m.Timestamp, want)
					}
					switch topic {
					case "orders":
						if string(m.Key) != "order-"+strconv.Itoa(id) {
							t.Errorf("orders: key %q", m.Key)
						}
						// ruby-kafka: crc32 of the partition key, modulo the partitions.
						if p := int32(crc32.ChecksumIEEE([]byte("customer-"+strconv.Itoa(id%5))) % 3); m.Partition != p {
							t.Errorf("orders: id %d in partition %d, want %d", id, m.Partition, p)
						}
					case "clicks":
						if m.Partition != 2 {
							t.Errorf("clicks: partition %d, want the record's 2", m.Partition)
						}
						if m.Key != nil {
							t.Errorf("clicks: key %q, want none", m.Key)
						}
					}
				}
			}
		})
	}
}

// A message the broker refuses for good (larger than its
// message.max.bytes) goes to @ERROR, as does one over
// max_send_limit_bytes; the rest of the chunk is delivered once.
func TestRefusedMessagesGoToError(t *testing.T) {
	for _, discard := range []bool{false, true} {
		t.Run(fmt.Sprintf("discard_kafka_delivery_failed=%v", discard), func(t *testing.T) { testRefused(t, discard) })
	}
}

// With discard_kafka_delivery_failed, what the broker refuses is dropped
// and counted instead; max_send_limit_bytes still sends to @ERROR.
func testRefused(t *testing.T, discard bool) {
	c := cluster(t, kfake.SeedTopics(1, "logs"), kfake.BrokerConfigs(map[string]string{"message.max.bytes": "2000"}))
	brokers := c.ListenAddrs()
	e, emit := start(t, conf(strings.Join(brokers, ","), fmt.Sprintf("default_topic logs\n  max_send_limit_bytes 5000\n  discard_kafka_delivery_failed %v", discard), "tag"))
	emit(plugintest.Stream(t, "app.x",
		map[string]any{"id": "small-1"},
		map[string]any{"id": "too-big-for-the-broker", "pad": strings.Repeat("b", 3000)},
		map[string]any{"id": "over-the-limit", "pad": strings.Repeat("l", 6000)},
		map[string]any{"id": "small-2"}))
	got := consume(t, brokers, "logs", 2)
	for _, m := range got {
		if !strings.Contains(string(m.Value), "small-") {
			t.Errorf("delivered %.60s", m.Value)
		}
	}
	want := 2
	if discard {
		want = 1
		var discarded int64
		out := e.Outputs()[0].Plugin.(plugin.Measured)
		plugintest.WaitFor(t, "one message discarded", func() bool {
			out.Measure(func(name, _ string, v int64, _ bool) {
				if name == "kafka_discarded_total" {
					discarded = v
				}
			})
			return discarded == 1
		})
	}
	plugintest.WaitFor(t, fmt.Sprintf("%d events in @ERROR", want), func() bool { return len(plugintest.Captured("errors")) == want })
	for _, e := range plugintest.Captured("errors") {
		if id := e.Record["id"]; id != "over-the-limit" && (discard || id != "too-big-for-the-broker") {
			t.Errorf("@ERROR got %v", id)
		}
	}
}

// With the brokers down, the buffer holds the events; once a broker
// listens, every event arrives exactly once.
func TestBrokerOutageHoldsTheBuffer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // nothing listens: the brokers are down
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	e, emit := start(t, conf(addr, "default_topic logs\n  max_send_retries 1\n  connect_timeout 0.2\n  ack_timeout 0.5", "tag"))
	const n = 200
	for i := 0; i < n; i++ {
		emit(plugintest.Stream(t, "app.x", map[string]any{"id": i}))
	}
	plugintest.WaitFor(t, "a failed flush", func() bool { return e.Outputs()[0].Runtime.Stats.NumErrors.Load() > 0 })
	cluster(t, kfake.Ports(port), kfake.SeedTopics(2, "logs"))
	expectOnce(t, messageIDs(t, consume(t, []string{addr}, "logs", n)), n)
}

// A produce request the broker applies but answers with a timeout (a
// response lost to a broken connection looks the same to the client) is
// retried. With idempotent, the broker drops the retry's copies: every
// event arrives exactly once. Without it the retry duplicates, which is
// why idempotent exists; the test shows that too, so that it could fail.
func TestIdempotentRetryAfterAnAppliedRequest(t *testing.T) {
	for _, idempotent := range []bool{true, false} {
		t.Run(fmt.Sprintf("idempotent=%v", idempotent), func(t *testing.T) {
			c := cluster(t, kfake.SeedTopics(1, "logs"))
			brokers := c.ListenAddrs()
			c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "logs", Err: kerr.RequestTimedOut, Count: 3})
			_, emit := start(t, conf(strings.Join(brokers, ","), fmt.Sprintf("default_topic logs\n  idempotent %v\n  max_send_retries 5", idempotent), "tag"))
			const n = 50
			for i := 0; i < n; i++ {
				emit(plugintest.Stream(t, "app.x", map[string]any{"id": i}))
			}
			want := n
			if !idempotent {
				// At least one applied request was sent again.
				plugintest.WaitFor(t, "a duplicate", func() bool { return offsets(t, brokers, "logs") > int64(n) })
				for last := int64(-1); last != offsets(t, brokers, "logs"); time.Sleep(500 * time.Millisecond) {
					last = offsets(t, brokers, "logs") // until the retries are over
				}
				want = int(offsets(t, brokers, "logs"))
			}
			seen := messageIDs(t, consume(t, brokers, "logs", want))
			dups := 0
			for i := 0; i < n; i++ {
				if seen[i] == 0 {
					t.Errorf("id %d never arrived", i)
				}
				dups += max(0, seen[i]-1)
			}
			if idempotent && dups > 0 {
				t.Errorf("%d duplicates with idempotent on", dups)
			}
			if !idempotent && dups == 0 {
				t.Errorf("no duplicates without idempotent: the fault did not apply the requests it timed out")
			}
		})
	}
}

// offsets is the sum of the topic's partitions' end offsets, by sarama.
func offsets(t *testing.T, brokers []string, topic string) int64 {
	t.Helper()
	client, err := sarama.NewClient(brokers, sarama.NewConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range parts {
		off, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		sum += off
	}
	return sum
}

// Chunked by topic alone, records without a topic field have no topic:
// fluent-plugin-kafka fails such chunks again and again; Sluice gives
// them up to the buffer's secondary path (here: the backup directory, and
// the drop is counted) at once, and delivers the rest.
func TestNoTopicIsPermanent(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(1, "orders"))
	brokers := c.ListenAddrs()
	e, emit := start(t, conf(strings.Join(brokers, ","), "", "topic"))
	emit(plugintest.Stream(t, "app.x", map[string]any{"id": 1, "topic": "orders"}, map[string]any{"id": 2}))
	consume(t, brokers, "orders", 1)
	rt := e.Outputs()[0].Runtime
	plugintest.WaitFor(t, "the topic-less chunk given up", func() bool {
		return rt.Stats.DroppedRecords.Load()+rt.Stats.BackupRecords.Load() == 1
	})
	if rt.Stats.RetryCount.Load() > 0 {
		t.Errorf("retried %d times; a chunk without a topic cannot succeed", rt.Stats.RetryCount.Load())
	}
}

// A chunk whose messages partly fail (one partition's leader refuses them
// for a while) fails as a whole, and the buffer's retry sends only the
// messages not yet acknowledged: none of the others twice, even without
// idempotent.
func TestPartialFailureRetriesOnlyTheRest(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(2, "logs"))
	brokers := c.ListenAddrs()
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: "logs", Partitions: []int32{0}, Err: kerr.NotEnoughReplicas, Count: -1})
	e, emit := start(t, conf(strings.Join(brokers, ","), "default_topic logs\n  max_send_retries 0\n  ack_timeout 0.5\n  partition_key_key pk", "tag"))
	const n = 100
	var recs []map[string]any
	for i := 0; i < n; i++ {
		recs = append(recs, map[string]any{"id": i, "pk": "k" + strconv.Itoa(i)})
	}
	emit(plugintest.Stream(t, "app.x", recs...))
	rt := e.Outputs()[0].Runtime
	plugintest.WaitFor(t, "a failed write", func() bool { return rt.Stats.NumErrors.Load() >= 1 })
	fault.Remove()
	expectOnce(t, messageIDs(t, consume(t, brokers, "logs", n)), n)
}

// The broker drops the connection on produce requests (kfake closes it
// before applying them): the client reconnects and sends again, and with
// idempotent every event arrives exactly once.
func TestIdempotentAcrossDisconnects(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(1, "logs"))
	brokers := c.ListenAddrs()
	var drops atomic.Int32
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		if drops.Add(1) <= 3 {
			c.KeepControl()
			return nil, errors.New("injected disconnect"), true
		}
		return nil, nil, false
	})
	_, emit := start(t, conf(strings.Join(brokers, ","), "default_topic logs\n  idempotent true\n  max_send_retries 5", "tag"))
	const n = 50
	for i := 0; i < n; i++ {
		emit(plugintest.Stream(t, "app.x", map[string]any{"id": i}))
	}
	expectOnce(t, messageIDs(t, consume(t, brokers, "logs", n)), n)
	if drops.Load() < 3 {
		t.Errorf("%d produce requests seen; the disconnects did not happen", drops.Load())
	}
}

// messageIDs counts the "id" field of JSON message values.
func messageIDs(t *testing.T, msgs []*sarama.ConsumerMessage) map[int]int {
	t.Helper()
	seen := map[int]int{}
	for _, m := range msgs {
		var v struct{ ID int }
		plugintest.Must(t, json.Unmarshal(m.Value, &v))
		seen[v.ID]++
	}
	return seen
}

// expectOnce fails for each id in 0..n-1 not seen exactly once.
func expectOnce(t *testing.T, seen map[int]int, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if seen[i] != 1 {
			t.Errorf("id %d arrived %d times, want once", i, seen[i])
		}
	}
}

// The partition of a keyed message is the one sarama's partitioners
// (other authors' code) compute for its partition key: ruby-kafka's
// unsigned crc32 by default, the Java client's murmur2 when asked.
func TestPartitionerHashFunctions(t *testing.T) {
	for _, fn := range []struct {
		name   string
		sarama func(string) sarama.Partitioner
	}{{"crc32", sarama.NewConsistentCRCHashPartitioner}, {"murmur2", sarama.NewMurmur2Partitioner}} {
		t.Run(fn.name, func(t *testing.T) {
			c := cluster(t, kfake.SeedTopics(6, "logs"))
			brokers := c.ListenAddrs()
			_, emit := start(t, conf(strings.Join(brokers, ","), "default_topic logs\n  partitioner_hash_function "+fn.name, "tag"))
			const n = 60
			var recs []map[string]any
			for i := 0; i < n; i++ {
				recs = append(recs, map[string]any{"id": i, "partition_key": fmt.Sprintf("tenant-%d", i)})
			}
			emit(plugintest.Stream(t, "app.x", recs...))
			p := fn.sarama("logs")
			for _, m := range consume(t, brokers, "logs", n) {
				var v struct {
					ID  int
					Key string `json:"partition_key"`
				}
				plugintest.Must(t, json.Unmarshal(m.Value, &v))
				want, err := p.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(v.Key)}, 6)
				plugintest.Must(t, err)
				if m.Partition != want {
					t.Errorf("%s: key %s in partition %d, sarama's %s partitioner says %d", fn.name, v.Key, m.Partition, fn.name, want)
				}
			}
		})
	}
}
