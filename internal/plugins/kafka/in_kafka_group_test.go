package kafka_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// produce writes n JSON messages {"id": "<prefix>-i"} to topic with sarama,
// keyed k<i%7>, with a header.
func produce(t *testing.T, brokers []string, topic, prefix string, n int) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	p, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var msgs []*sarama.ProducerMessage
	for i := 0; i < n; i++ {
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("k" + strconv.Itoa(i%7)),
			Value:   sarama.StringEncoder(fmt.Sprintf(`{"id":"%s-%d","n":%d}`, prefix, i, i)),
			Headers: []sarama.RecordHeader{{Key: []byte("origin"), Value: []byte("sarama")}}})
	}
	if err := p.SendMessages(msgs); err != nil {
		t.Fatal(err)
	}
}

func groupConf(brokers []string, group, capture, extra string) string {
	return fmt.Sprintf(`
<source>
  @type kafka_group
  brokers %s
  consumer_group %s
  topics events
  add_prefix kafka
  offset_commit_interval 0.2
  session_timeout 6
  %s
</source>
<match kafka.**>
  @type capture
  name %s
</match>`, strings.Join(brokers, ","), group, extra, capture)
}

func ids(capture string) map[string]int {
	out := map[string]int{}
	for _, e := range plugintest.Captured(capture) {
		if id, ok := e.Record["id"].(string); ok {
			out[id]++
		}
	}
	return out
}

// Messages become events tagged by topic with add_prefix, the message key
// and headers in the record; a member that stops commits what it took, so
// the next member of the group starts after it: nothing twice, nothing
// lost.
func TestGroupConsumesAndCommits(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(3, "events"))
	brokers := c.ListenAddrs()
	produce(t, brokers, "events", "a", 300)
	plugintest.Reset()
	e := plugintest.Build(t, groupConf(brokers, "g1", "got", "kafka_message_key key\n  add_headers true"))
	stop := plugintest.Start(t, e)
	plugintest.WaitFor(t, "300 events", func() bool { return len(plugintest.Captured("got")) >= 300 })
	for _, ev := range plugintest.Captured("got")[:5] {
		if ev.Tag != "kafka.events" || !strings.HasPrefix(fmt.Sprint(ev.Record["key"]), "k") || ev.Record["origin"] != "sarama" {
			t.Fatalf("event %s %v: want tag kafka.events, the message key and the header", ev.Tag, ev.Record)
		}
	}
	stop()
	produce(t, brokers, "events", "b", 200)
	e2 := plugintest.Build(t, groupConf(brokers, "g1", "got", ""))
	stop2 := plugintest.Start(t, e2)
	defer stop2()
	plugintest.WaitFor(t, "500 events", func() bool { return len(plugintest.Captured("got")) >= 500 })
	time.Sleep(500 * time.Millisecond) // room for a redelivery to show
	seen := ids("got")
	for p, n := range map[string]int{"a": 300, "b": 200} {
		for i := 0; i < n; i++ {
			if c := seen[fmt.Sprintf("%s-%d", p, i)]; c != 1 {
				t.Errorf("%s-%d consumed %d times, want once", p, i, c)
			}
		}
	}
}

// Two members of one group share the partitions; when one leaves, the
// other takes its partitions over, and every message is consumed.
func TestGroupMembersSharePartitions(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(6, "events"))
	brokers := c.ListenAddrs()
	plugintest.Reset()
	a := plugintest.Build(t, groupConf(brokers, "g2", "a", ""))
	stopA := plugintest.Start(t, a)
	b := plugintest.Build(t, groupConf(brokers, "g2", "b", ""))
	stopB := plugintest.Start(t, b)
	defer stopB()
	// Both in the group: wait until each consumes.
	deadline := time.Now().Add(30 * time.Second)
	for round := 0; len(plugintest.Captured("a")) == 0 || len(plugintest.Captured("b")) == 0; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("after 30 s: a took %d, b took %d; both should share the partitions", len(plugintest.Captured("a")), len(plugintest.Captured("b")))
		}
		produce(t, brokers, "events", "r"+strconv.Itoa(round), 60)
		time.Sleep(300 * time.Millisecond)
	}
	stopA()
	produce(t, brokers, "events", "after", 300)
	plugintest.WaitFor(t, "b takes a's partitions over", func() bool {
		got := ids("b")
		for i := 0; i < 300; i++ {
			if got[fmt.Sprintf("after-%d", i)] == 0 {
				return false
			}
		}
		return true
	})
}

// A message the parser cannot read goes to @ERROR with its topic,
// partition and offset; the others are consumed.
func TestGroupUnparsableToError(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(1, "events"))
	brokers := c.ListenAddrs()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(brokers, cfg)
	plugintest.Must(t, err)
	for _, v := range []string{`{"id":"ok-1"}`, `not json {`, `{"id":"ok-2"}`} {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "events", Value: sarama.StringEncoder(v)})
		plugintest.Must(t, err)
	}
	p.Close()
	plugintest.Reset()
	e := plugintest.Build(t, groupConf(brokers, "g3", "got", "")+`
<label @ERROR>
  <match **>
    @type capture
    name errors
  </match>
</label>`)
	stop := plugintest.Start(t, e)
	defer stop()
	plugintest.WaitFor(t, "two events and one error", func() bool {
		return len(plugintest.Captured("got")) == 2 && len(plugintest.Captured("errors")) == 1
	})
	bad := plugintest.Captured("errors")[0].Record
	if bad["message"] != "not json {" || bad["topic"] != "events" || fmt.Sprint(bad["offset"]) != "1" {
		t.Errorf("@ERROR record %v", bad)
	}
	_ = context.Background
}

// A full buffer (overflow_action throw_exception) refuses the input's
// emits: fetching pauses and nothing is dropped or skipped; once the
// destination recovers, every message arrives once.
func TestGroupBackpressurePausesFetching(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(2, "events"))
	brokers := c.ListenAddrs()
	produce(t, brokers, "events", "bp", 3000)
	plugintest.Reset()
	e := plugintest.Build(t, fmt.Sprintf(`
<source>
  @type kafka_group
  brokers %s
  consumer_group g4
  topics events
  max_bytes 4096
</source>
<match events>
  @type capture
  name got
  fail 30
  <buffer>
    chunk_limit_size 2k
    total_limit_size 8k
    overflow_action throw_exception
    flush_interval 0.01
    flush_thread_interval 0.01
    retry_wait 0.05
    retry_max_interval 0.1
    retry_forever true
  </buffer>
</match>`, strings.Join(brokers, ",")))
	stop := plugintest.Start(t, e)
	defer stop()
	plugintest.WaitFor(t, "3000 events", func() bool { return len(plugintest.Captured("got")) >= 3000 })
	seen := ids("got")
	for i := 0; i < 3000; i++ {
		if c := seen[fmt.Sprintf("bp-%d", i)]; c != 1 {
			t.Errorf("bp-%d arrived %d times, want once", i, c)
		}
	}
	var waits int64
	for _, in := range e.Inputs() {
		if g, ok := in.(plugin.Measured); ok {
			g.Measure(func(name, _ string, v int64, _ bool) {
				if name == "kafka_emit_waits_total" {
					waits = v
				}
			})
		}
	}
	if waits == 0 {
		t.Errorf("the input never waited for the buffer: the test did not fill it")
	}
	if d := e.Outputs()[0].Runtime.Stats.DroppedRecords.Load(); d != 0 {
		t.Errorf("%d records dropped", d)
	}
}

// A /regex/ entry subscribes to the topics it matches, beside a plain name;
// time_source record with time_format takes the event time from the record,
// and format text puts the whole value in message_key.
func TestGroupRegexTopicsRecordTimeAndText(t *testing.T) {
	c := cluster(t, kfake.SeedTopics(1, "audit-eu", "audit-us", "other", "plain"))
	brokers := c.ListenAddrs()
	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(brokers, cfg)
	plugintest.Must(t, err)
	for _, topic := range []string{"audit-eu", "audit-us", "other", "plain"} {
		_, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic,
			Value: sarama.StringEncoder(`{"id":"` + topic + `","time":"2026-12-04 10:20:30"}`)})
		plugintest.Must(t, err)
	}
	p.Close()
	plugintest.Reset()
	e := plugintest.Build(t, fmt.Sprintf(`
<source>
  @type kafka_group
  brokers %s
  consumer_group g5
  topics /audit-.*/,plain
  time_source record
  time_format %%Y-%%m-%%d %%H:%%M:%%S
  add_suffix in
</source>
<source>
  @type kafka_group
  brokers %s
  consumer_group g6
  topics other
  format text
  message_key raw
</source>
<match **>
  @type capture
  name got
</match>`, strings.Join(brokers, ","), strings.Join(brokers, ",")))
	stop := plugintest.Start(t, e)
	defer stop()
	plugintest.WaitFor(t, "four events", func() bool { return len(plugintest.Captured("got")) >= 4 })
	time.Sleep(300 * time.Millisecond)
	want := time.Date(2026, 12, 4, 10, 20, 30, 0, time.Local)
	tags := map[string]bool{}
	for _, ev := range plugintest.Captured("got") {
		tags[ev.Tag] = true
		if ev.Tag == "other" {
			if raw, _ := ev.Record["raw"].(string); !strings.Contains(raw, `"id":"other"`) {
				t.Errorf("format text: record %v, want the value in raw", ev.Record)
			}
			continue
		}
		if got := ev.Time.Std(); !got.Equal(want) {
			t.Errorf("%s: time %v, want the record's %v", ev.Tag, got, want)
		}
	}
	for _, tag := range []string{"audit-eu.in", "audit-us.in", "plain.in", "other"} {
		if !tags[tag] {
			t.Errorf("no event tagged %s (got %v)", tag, tags)
		}
	}
	if len(plugintest.Captured("got")) != 4 {
		t.Errorf("%d events, want 4", len(plugintest.Captured("got")))
	}
}
