package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tinylib/msgp/msgp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/sluice-log/sluice/internal/backoff"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/strftime"
)

// Group is the kafka_group input: a member of a Kafka consumer group that
// emits what it fetches and commits offsets only for records the next
// stage (an output's buffer) has taken.
type Group struct {
	ConsumerGroup         string          `conf:"consumer_group,required" desc:"The consumer group; instances in one group share the topics' partitions."`
	Topics                string          `conf:"topics,required" desc:"The topics, comma-separated; /regex/ subscribes to every topic that matches."`
	Format                string          `conf:"format" desc:"How a message value becomes a record: json, text (the value in message_key), ltsv, msgpack, or any parser type; a <parse> section instead takes precedence."`
	MessageKey            string          `conf:"message_key" desc:"With format text, the field that holds the value."`
	AddHeaders            bool            `conf:"add_headers" desc:"Add the message's headers to the record as fields."`
	AddPrefix             string          `conf:"add_prefix" desc:"Put this and a dot before the tag."`
	AddSuffix             string          `conf:"add_suffix" desc:"Put a dot and this after the tag."`
	RetryEmitLimit        int             `conf:"retry_emit_limit" desc:"How many waits (50 ms growing to 1 s) for a full buffer before logging an error (-1: wait without limit, quietly); fetching stays paused meanwhile either way, so nothing is dropped."`
	UseRecordTime         bool            `conf:"use_record_time" desc:"Deprecated: time_source record."`
	TimeSource            string          `conf:"time_source" desc:"The event time: now, kafka (the message's timestamp) or record (record_time_key)."`
	RecordTimeKey         string          `conf:"record_time_key" desc:"With time_source record, the field holding the time."`
	TimeFormat            string          `conf:"time_format" desc:"With time_source record, the strptime format of the time field; unset: the field is seconds since the epoch."`
	TagSource             string          `conf:"tag_source" desc:"The tag: topic, or record (record_tag_key)."`
	RecordTagKey          string          `conf:"record_tag_key" desc:"With tag_source record, the field holding the tag."`
	KafkaMessageKey       string          `conf:"kafka_message_key" desc:"Put the message's key into this field."`
	StartFromBeginning    bool            `conf:"start_from_beginning" desc:"With no committed offset, start at the oldest message (false: at the newest)."`
	OffsetCommitInterval  time.Duration   `conf:"offset_commit_interval" desc:"How often the offsets of records already taken are committed (and always at a rebalance and at shutdown)."`
	OffsetCommitThreshold int             `conf:"offset_commit_threshold" desc:"Commit after this many records." ignored:"offsets are committed per interval, rebalance and shutdown, never before the records are taken"`
	MaxBytes              int             `conf:"max_bytes" desc:"The most bytes one fetch takes from one partition."`
	MaxWaitTime           time.Duration   `conf:"max_wait_time" desc:"How long a broker holds a fetch waiting for min_bytes."`
	MinBytes              int             `conf:"min_bytes" desc:"The least data a broker answers a fetch with, unless max_wait_time passes."`
	SessionTimeout        time.Duration   `conf:"session_timeout" desc:"How long the group waits for a silent member before it gives the member's partitions to others."`
	FetcherMaxQueueSize   int             `conf:"fetcher_max_queue_size" desc:"ruby-kafka's fetched-batch queue per partition." ignored:"one fetch per broker is held until taken; memory is bounded by max_bytes"`
	RefreshTopicInterval  time.Duration   `conf:"refresh_topic_interval" desc:"How often the topic list is refreshed, for /regex/ topics."`
	RetryWaitSeconds      int             `conf:"retry_wait_seconds" desc:"ruby-kafka's wait before reconnecting." ignored:"the client reconnects on its own, with backoff"`
	RetryLimit            int             `conf:"retry_limit" desc:"ruby-kafka's reconnect limit." ignored:"the client reconnects without limit: an outage holds the input, it does not end it"`
	DisableRetryLimit     bool            `conf:"disable_retry_limit" desc:"ruby-kafka's unlimited reconnects." ignored:"always so (retry_limit)"`
	MaxWaitMS             int             `conf:"max_wait_ms" desc:"Deprecated: max_wait_time, in milliseconds."`
	Parse                 *config.Element `section:"parse" desc:"How a message value becomes a record, as a parser."`
	Connection

	parser   plugin.Parser
	opts     []kgo.Opt
	log      *slog.Logger
	id       string
	errorOut plugin.Emitter
	loc      *time.Location

	Stats GroupStats
}

// GroupStats are the input's counters.
type GroupStats struct {
	Records    atomic.Int64 // emitted
	Bytes      atomic.Int64 // message value bytes emitted
	Unparsable atomic.Int64 // to @ERROR
	EmitWaits  atomic.Int64 // waits for the buffer
	FetchErrs  atomic.Int64
}

var _ plugin.Input = (*Group)(nil)

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "kafka_group", Summary: "consume Apache Kafka topics as a member of a consumer group",
		Sections: map[string]plugin.Section{"parse": {Kind: plugin.KindParser, Default: "json"}},
		New: func() any {
			c := defaultConnection()
			c.ClientID = "kafka"
			return &Group{Format: "json", MessageKey: "message", RetryEmitLimit: -1, TimeSource: "now", RecordTimeKey: "time",
				TagSource: "topic", RecordTagKey: "tag", StartFromBeginning: true, OffsetCommitInterval: 5 * time.Second,
				MaxBytes: 1048576, RetryWaitSeconds: 30, RetryLimit: 10, Connection: c}
		}})
}

// Configure implements plugin.Configurer.
func (g *Group) Configure(c *plugin.Context) error {
	g.log, g.id, g.errorOut, g.loc = c.Logger, c.ID, c.ErrorOut, c.Location
	if err := g.Connection.check(); err != nil {
		return err
	}
	var err error
	if g.Parse != nil {
		g.parser, err = c.Build.Parser(g.Parse, "json")
	} else {
		sec := &config.Element{Name: "parse", Pos: c.Element.Pos}
		typ := g.Format
		if typ == "text" {
			typ = "none"
			sec.Params = append(sec.Params, &config.Param{Key: "message_key", Value: g.MessageKey, Pos: c.Element.Pos})
		}
		sec.Params = append(sec.Params, &config.Param{Key: "@type", Value: typ, Pos: c.Element.Pos})
		if typ == "json" || typ == "ltsv" || typ == "msgpack" {
			// The plugin decodes these itself, keeping every field (a time
			// field too, which time_source record reads).
			sec.Params = append(sec.Params, &config.Param{Key: "keep_time_key", Value: "true", Pos: c.Element.Pos})
		}
		g.parser, err = c.Build.Parser(sec, "json")
	}
	if err != nil {
		return err
	}
	if g.UseRecordTime {
		g.TimeSource = "record"
	}
	switch g.TimeSource {
	case "now", "kafka", "record":
	default:
		return fmt.Errorf("time_source %q: want now, kafka or record", g.TimeSource)
	}
	switch g.TagSource {
	case "topic", "record":
	default:
		return fmt.Errorf("tag_source %q: want topic or record", g.TagSource)
	}
	if g.MaxWaitMS > 0 && g.MaxWaitTime == 0 {
		g.log.Warn("'max_wait_ms' parameter is deprecated. Use second unit 'max_wait_time' instead", "input", g.id)
		g.MaxWaitTime = time.Duration(g.MaxWaitMS) * time.Millisecond
	}
	opts, err := g.Connection.options(g.log)
	if err != nil {
		return err
	}
	var names, patterns []string
	for _, t := range strings.Split(g.Topics, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
		case len(t) > 2 && t[0] == '/' && t[len(t)-1] == '/':
			if _, err := regexp.Compile(t[1 : len(t)-1]); err != nil {
				return fmt.Errorf("topics: %s: %w", t, err)
			}
			patterns = append(patterns, t[1:len(t)-1])
		default:
			names = append(names, t)
		}
	}
	topics := names
	if len(patterns) > 0 {
		// franz-go takes regex topics all or none: a plain name among them
		// is the anchored regex of itself.
		topics = patterns
		for _, n := range names {
			topics = append(topics, "^"+regexp.QuoteMeta(n)+"$")
		}
		opts = append(opts, kgo.ConsumeRegex())
	}
	if len(topics) == 0 {
		return fmt.Errorf("topics: no topic given")
	}
	start := kgo.NewOffset().AtStart()
	if !g.StartFromBeginning {
		start = kgo.NewOffset().AtEnd()
	}
	opts = append(opts, kgo.ConsumerGroup(g.ConsumerGroup), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(start),
		// At least once: offsets advance only past records the buffer
		// took (marked), and a rebalance waits for the batch in hand.
		kgo.AutoCommitMarks(), kgo.AutoCommitInterval(g.OffsetCommitInterval), kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxPartitionBytes(int32(g.MaxBytes)))
	if g.MaxWaitTime > 0 {
		opts = append(opts, kgo.FetchMaxWait(g.MaxWaitTime))
	}
	if g.MinBytes > 0 {
		opts = append(opts, kgo.FetchMinBytes(int32(g.MinBytes)))
	}
	if g.SessionTimeout > 0 {
		opts = append(opts, kgo.SessionTimeout(g.SessionTimeout))
	}
	if g.RefreshTopicInterval > 0 {
		opts = append(opts, kgo.MetadataMaxAge(g.RefreshTopicInterval))
	}
	g.opts = opts
	g.log.Info(fmt.Sprintf("Will watch for topics %s at brokers %s and '%s' group", g.Topics, strings.Join(g.Brokers, ","), g.ConsumerGroup), "input", g.id)
	return nil
}

// Measure implements plugin.Measured.
func (g *Group) Measure(report plugin.Report) {
	s := &g.Stats
	report("kafka_records_total", "Records emitted.", s.Records.Load(), false)
	report("kafka_bytes_total", "Message value bytes emitted.", s.Bytes.Load(), false)
	report("kafka_unparsable_total", "Messages the parser could not read, sent to @ERROR.", s.Unparsable.Load(), false)
	report("kafka_emit_waits_total", "Waits for a full buffer, fetching paused.", s.EmitWaits.Load(), false)
	report("kafka_fetch_errors_total", "Fetch errors (the client retries them).", s.FetchErrs.Load(), false)
}

// Run consumes until ctx ends, then commits what was taken and leaves the
// group, so that its partitions move to the other members at once.
func (g *Group) Run(ctx context.Context, out plugin.Emitter) error {
	client, err := kgo.NewClient(g.opts...)
	if err != nil {
		return err
	}
	defer func() {
		// A poll that ctx ended leaves the rebalance blocked; leaving the
		// group is one.
		client.AllowRebalance()
		// Commit what the buffer took, within a bound: the brokers may be
		// the reason for the shutdown.
		cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := client.CommitMarkedOffsets(cctx); err != nil {
			g.log.Warn("committing the last offsets at shutdown failed; the group will deliver those records again", "input", g.id, "err", err)
		}
		// Close leaves the group, and leaving waits for a join in progress,
		// which a dead member's session can hold for its whole timeout: the
		// wait is bounded, and past it the close finishes on its own.
		closed := make(chan struct{})
		go func() { client.Close(); close(closed) }()
		select {
		case <-closed:
		case <-cctx.Done():
			g.log.Warn("leaving the consumer group is taking too long; shutting down without waiting (the others get this member's partitions when its session times out)", "input", g.id)
		}
	}()
	for {
		fetches := client.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			if errors.Is(err, context.Canceled) {
				return
			}
			g.Stats.FetchErrs.Add(1)
			g.log.Warn("fetch failed; the client retries", "input", g.id, "topic", topic, "partition", partition, "err", err)
		})
		var stopped bool
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			// A partition's batch at a time, in pieces of about max_bytes,
			// as the plugin emits: a buffer smaller than a whole poll can
			// still take it piece by piece.
			for recs := p.Records; len(recs) > 0 && !stopped; {
				n, size := 0, 0
				for n < len(recs) && (n == 0 || size+len(recs[n].Value) <= g.MaxBytes) {
					size += len(recs[n].Value)
					n++
				}
				if err := g.emit(ctx, out, recs[:n]); err != nil {
					stopped = true // only ctx ends an emit: what is unmarked, the group delivers again
					return
				}
				client.MarkCommitRecords(recs[:n]...)
				recs = recs[n:]
			}
		})
		if stopped {
			return nil
		}
		client.AllowRebalance()
	}
}

// emit parses recs into one stream per tag and emits each, waiting while
// the next stage refuses (a full buffer), so that fetching pauses instead
// of dropping. It returns an error only when ctx ends.
func (g *Group) emit(ctx context.Context, out plugin.Emitter, recs []*kgo.Record) error {
	type batch struct {
		tag string
		b   event.Builder
	}
	var batches []*batch
	byTag := map[string]*batch{}
	var bad event.Builder
	now := event.Now()
	for _, r := range recs {
		// The parser's own time is not used: time_source decides, as in the
		// plugin.
		err := g.parser.Parse(r.Value, func(_ event.Time, record []byte) error {
			record = g.decorate(record, r)
			tag := g.tag(r.Topic, record)
			var t event.Time
			switch g.TimeSource {
			case "kafka":
				t = event.Time(r.Timestamp.UnixNano())
			case "record":
				t = g.recordTime(record, now)
			default:
				t = now
			}
			bt := byTag[tag]
			if bt == nil {
				bt = &batch{tag: tag}
				byTag[tag] = bt
				batches = append(batches, bt)
			}
			bt.b.Append(t, record)
			return nil
		})
		if err != nil {
			g.Stats.Unparsable.Add(1)
			g.log.Warn(fmt.Sprintf("parser error in %s/%d", r.Topic, r.Partition), "input", g.id, "offset", r.Offset, "err", err)
			rec := msgp.AppendMapHeader(nil, 4)
			rec = msgp.AppendString(msgp.AppendString(rec, "message"), string(r.Value))
			rec = msgp.AppendString(msgp.AppendString(rec, "topic"), r.Topic)
			rec = msgp.AppendInt32(msgp.AppendString(rec, "partition"), r.Partition)
			rec = msgp.AppendInt64(msgp.AppendString(rec, "offset"), r.Offset)
			bad.Append(now, rec)
			continue
		}
		g.Stats.Bytes.Add(int64(len(r.Value)))
	}
	for _, bt := range batches {
		if err := g.emitOne(ctx, out, bt.b.Stream(bt.tag)); err != nil {
			return err
		}
	}
	if bad.Len() > 0 {
		if err := g.emitOne(ctx, g.errorOut, bad.Stream("kafka_group.unparsable")); err != nil {
			return err
		}
	}
	return nil
}

// emitBackoff is the wait between refused emits: 50 ms doubling to 1 s.
var emitBackoff = backoff.Exponential{Initial: 50 * time.Millisecond, Factor: 2, Max: time.Second}

func (g *Group) emitOne(ctx context.Context, out plugin.Emitter, s event.Stream) error {
	for waits := 0; ; waits++ {
		err := out.Emit(ctx, s)
		if err == nil {
			g.Stats.Records.Add(int64(s.Len))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		g.Stats.EmitWaits.Add(1)
		if g.RetryEmitLimit >= 0 && waits > 0 && waits%max(g.RetryEmitLimit, 1) == 0 {
			g.log.Error("the buffer still refuses records after retry_emit_limit waits; fetching stays paused (nothing is dropped)",
				"input", g.id, "tag", s.Tag, "records", s.Len, "waits", waits, "err", err)
		}
		// The plugin waits a second each time; starting shorter lets a
		// buffer that frees space between flushes take the next piece soon.
		t := time.NewTimer(emitBackoff.Delay(waits+1, 1))
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// tag is the topic (or the record's tag field) with add_prefix/add_suffix.
func (g *Group) tag(topic string, record []byte) string {
	tag := topic
	if g.TagSource == "record" {
		if v, ok := event.Record(record).Get(g.RecordTagKey); ok {
			tag = v.String()
		}
	}
	if g.AddPrefix != "" {
		tag = g.AddPrefix + "." + tag
	}
	if g.AddSuffix != "" {
		tag = tag + "." + g.AddSuffix
	}
	return tag
}

// decorate adds kafka_message_key and the headers to a record.
func (g *Group) decorate(record []byte, r *kgo.Record) []byte {
	extra := 0
	if g.KafkaMessageKey != "" {
		extra++
	}
	if g.AddHeaders {
		extra += len(r.Headers)
	}
	if extra == 0 {
		return record
	}
	n, body, err := msgp.ReadMapHeaderBytes(record)
	if err != nil {
		return record
	}
	out := msgp.AppendMapHeader(make([]byte, 0, len(record)+64), n+uint32(extra))
	out = append(out, body...)
	if g.KafkaMessageKey != "" {
		out = msgp.AppendString(out, g.KafkaMessageKey)
		if r.Key == nil {
			out = msgp.AppendNil(out)
		} else {
			out = msgp.AppendStringFromBytes(out, r.Key)
		}
	}
	if g.AddHeaders {
		for _, h := range r.Headers {
			out = msgp.AppendStringFromBytes(msgp.AppendString(out, h.Key), h.Value)
		}
	}
	return out
}

// recordTime reads record_time_key: with time_format by strptime, else
// as seconds since the epoch; now when it is missing or unreadable.
func (g *Group) recordTime(record []byte, now event.Time) event.Time {
	v, ok := event.Record(record).Get(g.RecordTimeKey)
	if !ok {
		return now
	}
	s := v.String()
	if g.TimeFormat != "" {
		loc := g.loc
		if loc == nil {
			loc = time.Local
		}
		if t, err := strftime.Parse(g.TimeFormat, s, loc); err == nil {
			return event.Time(t.UnixNano())
		}
		return now
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return event.Time(f * 1e9)
	}
	return now
}
