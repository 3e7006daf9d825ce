package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Output is kafka2 (and rdkafka2).
type Output struct {
	Topic                     string            `conf:"topic" desc:"The topic, with the buffer's placeholders (${tag}, ${topic}, time); unset: the chunk's topic_key value, else default_topic, else the tag."`
	TopicKey                  string            `conf:"topic_key" desc:"The record field (and chunk key) holding each record's topic."`
	DefaultTopic              string            `conf:"default_topic" desc:"The topic of records without a topic_key field."`
	UseDefaultForUnknownTopic bool              `conf:"use_default_for_unknown_topic" desc:"Send to default_topic the records whose topic does not exist."`
	MessageKeyKey             string            `conf:"message_key_key" desc:"The record field holding the message key."`
	DefaultMessageKey         string            `conf:"default_message_key" desc:"The message key of records without a message_key_key field."`
	PartitionKeyKey           string            `conf:"partition_key_key" desc:"The record field holding the partition key, hashed to choose the partition (instead of the message key)."`
	DefaultPartitionKey       string            `conf:"default_partition_key" desc:"The partition key of records without a partition_key_key field."`
	PartitionKey              string            `conf:"partition_key" desc:"The record field holding an explicit partition number."`
	DefaultPartition          int               `conf:"default_partition" desc:"The partition of records without a partition_key field (-1: none, the key or the partitioner chooses)."`
	ExcludeTopicKey           bool              `conf:"exclude_topic_key" desc:"Leave the topic_key field out of the message."`
	ExcludePartitionKey       bool              `conf:"exclude_partition_key" desc:"Leave the partition_key_key field out of the message."`
	ExcludePartition          bool              `conf:"exclude_partition" desc:"Leave the partition_key field out of the message."`
	ExcludeMessageKey         bool              `conf:"exclude_message_key" desc:"Leave the message_key_key field out of the message."`
	UseEventTime              bool              `conf:"use_event_time" desc:"Give each message the event's time as its Kafka timestamp (otherwise the time it is produced)."`
	Headers                   map[string]string `conf:"headers" desc:"Headers on every message, as a hash."`
	HeadersFromRecord         map[string]string `conf:"headers_from_record" desc:"Headers whose values are record fields, as a hash of header name to record accessor ($.a.b or a)."`
	RequiredAcks              int               `conf:"required_acks" desc:"The acknowledgements a write waits for: -1 all in-sync replicas, 1 the leader, 0 none."`
	AckTimeout                time.Duration     `conf:"ack_timeout" desc:"How long the brokers may take to acknowledge a produce request (10s when unset)."`
	CompressionCodec          string            `conf:"compression_codec" desc:"gzip, snappy, lz4 or zstd compress each batch of messages; unset: none."`
	MaxSendRetries            int               `conf:"max_send_retries" desc:"How many times a failed message is sent again before the chunk fails and the buffer retries it (only its undelivered messages)."`
	Idempotent                bool              `conf:"idempotent" desc:"Produce idempotently: the brokers drop the duplicates a retry would make. Needs required_acks -1."`
	MaxSendLimitBytes         config.Size       `conf:"max_send_limit_bytes" desc:"Messages larger than this go to <label @ERROR> instead of the broker (fluent-plugin-kafka skips them)."`
	DiscardDeliveryFailed     bool              `conf:"discard_kafka_delivery_failed" desc:"Drop, count and log the messages the brokers refuse for good, instead of sending them to <label @ERROR>."`
	PartitionerHashFunction   string            `conf:"partitioner_hash_function" desc:"crc32 (ruby-kafka's default) or murmur2 (the Java client's) hashes the partition key."`
	IgnoreExceptions          []string          `conf:"ignore_exceptions" desc:"Ruby exception classes fluent-plugin-kafka drops chunks for." ignored:"Sluice retries what can succeed and sends what cannot to @ERROR, by the broker's error code"`
	ExceptionBackup           bool              `conf:"exception_backup" desc:"With ignore_exceptions, keep the dropped chunk as a backup." ignored:"see ignore_exceptions"`
	ActiveSupportRegex        string            `conf:"active_support_notification_regex" desc:"ruby-kafka's instrumentation events as records." ignored:"Sluice's metrics carry the producer's counts"`
	ShareProducer             bool              `conf:"share_producer" desc:"One producer for all flush threads." ignored:"one franz-go client serves every flush thread already"`
	Format                    *config.Element   `section:"format" desc:"How each event becomes a message value: a formatter, json unless @type says otherwise."`
	Connection

	f          plugin.Formatter
	jsonValue  bool // json and ltsv values end without the formatter's newline, as the plugin writes them
	topic      *buffer.Template
	topicChunk int // topic_key's index among the chunk keys, or -1
	headers    []kgo.RecordHeader
	fromRecord []recordHeader
	skip       [][]string // top-level fields left out of the message
	opts       []kgo.Opt
	giveUp     time.Duration // how long one Write waits for its messages
	client     *kgo.Client
	errorOut   plugin.Emitter
	log        *slog.Logger
	id         string
	loc        *time.Location

	stats Stats
}

// Stats are the output's counters.
type Stats struct {
	Messages  atomic.Int64 // acknowledged
	Bytes     atomic.Int64 // value bytes acknowledged
	Refused   atomic.Int64 // refused for good: to @ERROR
	Discarded atomic.Int64 // refused for good and dropped (discard_kafka_delivery_failed)
	Oversized atomic.Int64 // over max_send_limit_bytes: to @ERROR
	Retried   atomic.Int64 // failed for now: the buffer sends them again
}

type recordHeader struct {
	name string
	path []string
}

const metaDone = "kafka_done"

var (
	_ plugin.BufferedOutput = (*Output)(nil)
	_ plugin.Measured       = (*Output)(nil)
)

func init() {
	info := plugin.Info{Kind: plugin.KindOutput, Type: "kafka2", Aliases: []string{"rdkafka2"},
		Summary:  "produce records to Apache Kafka topics",
		Sections: map[string]plugin.Section{"format": {Kind: plugin.KindFormatter, Default: "json"}},
		// fluent-plugin-kafka chunks by topic unless <buffer> says otherwise.
		BufferDefaults:       map[string]string{"": "topic"},
		DoneWithDataOnReturn: true, Inject: true,
		New: func() any {
			return &Output{TopicKey: "topic", MessageKeyKey: "message_key", PartitionKeyKey: "partition_key",
				PartitionKey: "partition", DefaultPartition: -1, RequiredAcks: -1, MaxSendRetries: 2,
				ExceptionBackup: true, PartitionerHashFunction: "crc32", Connection: defaultConnection()}
		}}
	plugin.Register(info)
}

// Configure implements plugin.Configurer.
func (o *Output) Configure(c *plugin.Context) error {
	o.log, o.id, o.errorOut, o.loc = c.Logger, c.ID, c.ErrorOut, c.Location
	if err := o.Connection.check(); err != nil {
		return err
	}
	f, err := c.Build.Formatter(o.Format, "json")
	if err != nil {
		return err
	}
	o.f = f
	formatType := "json"
	if o.Format != nil && o.Format.Param("@type") != nil {
		formatType = o.Format.Param("@type").Value
	}
	o.jsonValue = formatType == "json" || formatType == "ltsv"
	o.topicChunk = -1
	for i, name := range c.ChunkKeys.Names {
		if name == o.TopicKey {
			o.topicChunk = i
		}
	}
	if o.Topic != "" {
		if o.topic, err = buffer.NewTemplate(o.Topic, c.ChunkKeys); err != nil {
			return fmt.Errorf("topic: %w", err)
		}
	}
	if o.UseDefaultForUnknownTopic && o.DefaultTopic == "" {
		return fmt.Errorf("default_topic must be set when use_default_for_unknown_topic is true")
	}
	if o.DefaultTopic == "" && o.Topic == "" && o.topicChunk >= 0 && !c.ChunkKeys.Tag {
		o.log.Warn("records without a topic field have no topic: their chunks go to <secondary> or the backup directory; set default_topic or chunk by tag too (<buffer topic,tag>)", "output", o.id)
	}
	o.skip = nil
	for _, f := range []struct {
		exclude bool
		key     string
	}{{o.ExcludeTopicKey, o.TopicKey}, {o.ExcludePartitionKey, o.PartitionKeyKey}, {o.ExcludePartition, o.PartitionKey}, {o.ExcludeMessageKey, o.MessageKeyKey}} {
		if f.exclude {
			o.skip = append(o.skip, []string{f.key})
		}
	}
	for k, v := range o.Headers {
		o.headers = append(o.headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	for name, accessor := range o.HeadersFromRecord {
		path, err := buffer.RecordPath(accessor)
		if err != nil {
			return fmt.Errorf("headers_from_record %s: %w", name, err)
		}
		o.fromRecord = append(o.fromRecord, recordHeader{name: name, path: path})
	}
	opts, err := o.Connection.options(o.log)
	if err != nil {
		return err
	}
	switch o.RequiredAcks {
	case -1:
		opts = append(opts, kgo.RequiredAcks(kgo.AllISRAcks()))
	case 0:
		opts = append(opts, kgo.RequiredAcks(kgo.NoAck()))
	case 1:
		opts = append(opts, kgo.RequiredAcks(kgo.LeaderAck()))
	default:
		return fmt.Errorf("required_acks %d: want -1 (all in-sync replicas), 1 (the leader) or 0 (none)", o.RequiredAcks)
	}
	if o.Idempotent && o.RequiredAcks != -1 {
		return fmt.Errorf("idempotent needs required_acks -1")
	}
	if !o.Idempotent {
		opts = append(opts, kgo.DisableIdempotentWrite())
	}
	switch o.CompressionCodec {
	case "":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "snappy":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.SnappyCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	default:
		return fmt.Errorf("compression_codec %q: want gzip, snappy, lz4 or zstd", o.CompressionCodec)
	}
	if o.MaxSendRetries < 0 {
		return fmt.Errorf("max_send_retries must not be negative")
	}
	// Tries, in franz-go's terms: the first send and the retries.
	opts = append(opts, kgo.RecordRetries(o.MaxSendRetries+1))
	ack := 10 * time.Second // franz-go's ProduceRequestTimeout default
	if o.AckTimeout > 0 {
		ack = o.AckTimeout
		opts = append(opts, kgo.ProduceRequestTimeout(o.AckTimeout))
	}
	// A write gives up on a message after about the time ruby-kafka's
	// retries take (each try up to ack_timeout, a second's backoff between
	// them), also when no broker answers at all, so that the buffer's own
	// retries and backoff take over. Not with kgo.RecordDeliveryTimeout:
	// franz-go measures that from the record's timestamp, which
	// use_event_time sets to the event's time, so that every event older
	// than the timeout would fail at once, forever.
	o.giveUp = time.Duration(o.MaxSendRetries+1) * (ack + time.Second)
	switch o.PartitionerHashFunction {
	case "crc32", "murmur2":
	default:
		return fmt.Errorf("partitioner_hash_function %q: want crc32 or murmur2", o.PartitionerHashFunction)
	}
	opts = append(opts, kgo.RecordPartitioner(newPartitioner(o.PartitionerHashFunction, placementOf)))
	o.opts = opts
	return nil
}

// Init starts the client. It connects lazily: brokers that are down at
// start hold the buffer, as they would later, instead of failing the run.
func (o *Output) Init(context.Context) error {
	client, err := kgo.NewClient(o.opts...)
	if err != nil {
		return err
	}
	o.client = client
	return nil
}

// Close flushes nothing (every Write waits for its records) and closes the
// client's connections.
func (o *Output) Close(context.Context) error {
	if o.client != nil {
		o.client.Close()
	}
	return nil
}

// Measure implements plugin.Measured.
func (o *Output) Measure(report plugin.Report) {
	s := &o.stats
	report("kafka_messages_total", "Messages the brokers acknowledged.", s.Messages.Load(), false)
	report("kafka_bytes_total", "Value bytes of the messages the brokers acknowledged.", s.Bytes.Load(), false)
	report("kafka_refused_total", "Messages the brokers refused for good, sent to @ERROR.", s.Refused.Load(), false)
	report("kafka_discarded_total", "Messages the brokers refused for good, dropped (discard_kafka_delivery_failed).", s.Discarded.Load(), false)
	report("kafka_oversized_total", "Messages over max_send_limit_bytes, sent to @ERROR.", s.Oversized.Load(), false)
	report("kafka_retried_total", "Messages that failed for now; the buffer sends them again.", s.Retried.Load(), false)
}

// recordContext is a record's context while it is produced: the write's,
// with what the partitioner and the promise need.
type recordContext struct {
	context.Context
	placement
	entry int
	raw   []byte // the entry, for @ERROR
}

var noPlacement = placement{partition: -1}

func placementOf(r *kgo.Record) *placement {
	if rc, ok := r.Context.(*recordContext); ok {
		return &rc.placement
	}
	return &noPlacement
}

// Write produces the chunk's undelivered entries and waits for every one
// to be acknowledged or refused. The ones acknowledged are kept with the
// chunk, so that the buffer's retry of a chunk that partly failed sends
// only the rest.
func (o *Output) Write(ctx context.Context, ch *plugin.Chunk) error {
	done := plugin.LoadEntrySet(ch, metaDone)
	if n := done.Count(); n > 0 {
		plugin.Delivered(ctx, n)
	}
	topic, err := o.chunkTopic(ch)
	if err != nil {
		return err
	}
	w := &write{o: o, done: &done}
	var values []byte // one arena for the chunk's values: every promise is in before Write returns
	var pending []*kgo.Record
	r := event.NewReader(ch.Data)
	for i := 0; r.Next(); i++ {
		if done.Has(i) {
			continue
		}
		e := r.Entry()
		rec, err := o.record(ctx, ch.Key.Tag, topic, e, i, &values)
		if err != nil {
			o.log.Warn("event cannot become a Kafka message; sent to @ERROR", "output", o.id, "err", err)
			w.refused.AppendRaw(e.Raw)
			done.Add(i)
			continue
		}
		if o.MaxSendLimitBytes > 0 && int64(len(rec.Value)) > int64(o.MaxSendLimitBytes) {
			o.stats.Oversized.Add(1)
			o.log.Warn("record size exceeds max_send_limit_bytes; sent to @ERROR", "output", o.id, "bytes", len(rec.Value), "limit", int64(o.MaxSendLimitBytes))
			w.refused.AppendRaw(e.Raw)
			done.Add(i)
			continue
		}
		pending = append(pending, rec)
	}
	if err := r.Err(); err != nil {
		return err
	}
	// franz-go fails a message whose context is done as it would one timed
	// out: at a point where no copy can still land.
	sendCtx, cancel := context.WithTimeout(ctx, o.giveUp)
	defer cancel()
	w.produce(sendCtx, pending)
	if len(w.redirect) > 0 {
		// use_default_for_unknown_topic: once more, to default_topic. The
		// chunk's messages share one topic, so one line says it.
		o.log.Warn(fmt.Sprintf("'%s' topic not found. Retry with '%s' topic", topic, o.DefaultTopic), "output", o.id, "messages", len(w.redirect))
		for _, rec := range w.redirect {
			rec.Topic = o.DefaultTopic
		}
		again := w.redirect
		w.redirect = nil
		w.produce(sendCtx, again)
	}
	if len(w.tooLarge) > 1 {
		// A broker refuses a whole batch over its message.max.bytes: each
		// message goes again alone, so that only one too large by itself is
		// refused.
		again := w.tooLarge
		w.tooLarge, w.alone = nil, true
		for _, rec := range again {
			w.produce(sendCtx, []*kgo.Record{rec})
		}
	}
	for _, rec := range w.tooLarge {
		w.refuse(rec, kerr.MessageTooLarge)
	}
	if n := done.Count(); n > 0 {
		plugin.Delivered(ctx, n)
	}
	if err := done.Save(ch, metaDone); err != nil {
		return fmt.Errorf("keeping the delivered messages with the chunk: %w", err)
	}
	if w.refused.Len() > 0 {
		if err := o.errorOut.Emit(ctx, w.refused.Stream(ch.Key.Tag)); err != nil {
			return err
		}
	}
	if w.failed > 0 {
		o.stats.Retried.Add(int64(w.failed))
		return fmt.Errorf("%s: %d of %d messages not acknowledged, left for the buffer to send again: %w", topic, w.failed, ch.Records, w.lastErr)
	}
	return nil
}

// write is the outcome of one Write's messages, filled in by their
// promises (which franz-go calls one at a time, but not on Write's
// goroutine).
type write struct {
	o        *Output
	mu       sync.Mutex
	done     *plugin.EntrySet
	refused  event.Builder // to @ERROR
	redirect []*kgo.Record // unknown topic, for default_topic
	tooLarge []*kgo.Record // in a batch over the broker's limit
	alone    bool          // each message is sent in a batch of its own
	failed   int
	lastErr  error
}

// produce sends recs and waits for all their promises.
func (w *write) produce(ctx context.Context, recs []*kgo.Record) {
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for _, rec := range recs {
		w.o.client.Produce(ctx, rec, func(rec *kgo.Record, err error) {
			defer wg.Done()
			w.settle(rec, err)
		})
	}
	wg.Wait()
}

func (w *write) settle(rec *kgo.Record, err error) {
	o := w.o
	rc := rec.Context.(*recordContext)
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case err == nil:
		w.done.Add(rc.entry)
		o.stats.Messages.Add(1)
		o.stats.Bytes.Add(int64(len(rec.Value)))
	case o.UseDefaultForUnknownTopic && rec.Topic != o.DefaultTopic && errors.Is(err, kerr.UnknownTopicOrPartition):
		w.redirect = append(w.redirect, rec)
	case errors.Is(err, kerr.MessageTooLarge) && !w.alone:
		w.tooLarge = append(w.tooLarge, rec)
	case permanent(err):
		w.refuse(rec, err)
	default:
		w.failed++
		w.lastErr = err
	}
}

// refuse settles a message the broker refused for good. Called with w.mu
// held or after every promise is in.
func (w *write) refuse(rec *kgo.Record, err error) {
	o := w.o
	w.done.Add(rec.Context.(*recordContext).entry)
	if o.DiscardDeliveryFailed {
		o.stats.Discarded.Add(1)
		o.log.Warn("message refused by the broker; discarded (discard_kafka_delivery_failed)", "output", o.id, "topic", rec.Topic, "err", err)
		return
	}
	o.stats.Refused.Add(1)
	o.log.Warn("message refused by the broker for good; sent to @ERROR", "output", o.id, "topic", rec.Topic, "bytes", len(rec.Value), "err", err)
	w.refused.AppendRaw(rec.Context.(*recordContext).raw)
}

// permanent: the broker will refuse the message whatever is tried again.
// Unknown topics are not: the topic may be created (or auto-created) yet.
func permanent(err error) bool {
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return false
	}
	switch ke {
	case kerr.MessageTooLarge, kerr.InvalidTopicException, kerr.RecordListTooLarge, kerr.CorruptMessage,
		kerr.InvalidRecord, kerr.TopicAuthorizationFailed, kerr.InvalidRequiredAcks, kerr.UnsupportedCompressionType:
		return true
	}
	return false
}

// chunkTopic is the chunk's topic: the topic template, or the chunk's
// topic_key value, or default_topic, or the tag, as the plugin chooses.
func (o *Output) chunkTopic(ch *plugin.Chunk) (string, error) {
	if o.topic != nil {
		t, err := o.topic.Expand(ch.Key, zone(o.loc))
		if err != nil {
			return "", &plugin.Permanent{Err: fmt.Errorf("topic: %w", err)}
		}
		return t, nil
	}
	if o.topicChunk >= 0 {
		if vs := ch.Key.Values(); o.topicChunk < len(vs) && vs[o.topicChunk] != "" {
			return vs[o.topicChunk], nil
		}
	}
	if o.DefaultTopic != "" {
		return o.DefaultTopic, nil
	}
	if ch.Key.Tag != "" {
		return ch.Key.Tag, nil
	}
	// fluent-plugin-kafka fails such a chunk again and again.
	return "", &plugin.Permanent{Err: fmt.Errorf("no topic: the records have no %s field, and there is no default_topic or tag chunk key (<buffer %s,tag>)", o.TopicKey, o.TopicKey)}
}

// record builds the message of entry i.
func (o *Output) record(ctx context.Context, tag, topic string, e *event.Entry, i int, arena *[]byte) (*kgo.Record, error) {
	rc := &recordContext{Context: ctx, placement: placement{partition: -1}, entry: i, raw: e.Raw}
	rec := &kgo.Record{Topic: topic, Context: rc}
	rec.Headers = o.headers
	if len(o.fromRecord) > 0 {
		rec.Headers = append([]kgo.RecordHeader(nil), o.headers...)
		for _, h := range o.fromRecord {
			if v, ok := e.Record.Lookup(h.path); ok {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.name, Value: v.AppendText(nil)})
			}
		}
	}
	if v, ok := e.Record.Get(o.MessageKeyKey); ok {
		rec.Key = v.AppendText(nil)
	} else if o.DefaultMessageKey != "" {
		rec.Key = []byte(o.DefaultMessageKey)
	}
	if v, ok := e.Record.Get(o.PartitionKeyKey); ok {
		rc.key = v.AppendText(nil)
	} else if o.DefaultPartitionKey != "" {
		rc.key = []byte(o.DefaultPartitionKey)
	}
	if v, ok := e.Record.Get(o.PartitionKey); ok {
		p, err := strconv.ParseInt(v.String(), 10, 32)
		if err != nil || p < 0 {
			return nil, fmt.Errorf("%s %q is not a partition number", o.PartitionKey, v.String())
		}
		rc.partition = int32(p)
	} else if o.DefaultPartition >= 0 {
		rc.partition = int32(o.DefaultPartition)
	}
	if o.UseEventTime {
		rec.Timestamp = e.Time.Std()
	}
	record := e.Record
	if len(o.skip) > 0 {
		kept, err := event.AppendWithout(nil, record, o.skip)
		if err != nil {
			return nil, err
		}
		record = kept
	}
	start := len(*arena)
	out, err := o.f.Format(*arena, tag, e.Time, record)
	if err != nil {
		return nil, err
	}
	if o.jsonValue {
		for len(out) > start && out[len(out)-1] == '\n' {
			out = out[:len(out)-1]
		}
	}
	*arena = out
	rec.Value = out[start:len(out):len(out)]
	return rec, nil
}

func zone(loc *time.Location) *time.Location {
	if loc == nil {
		return time.Local
	}
	return loc
}
