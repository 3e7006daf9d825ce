package kinesis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"

	"github.com/sluice-log/sluice/internal/awsauth"
	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// The services' documented limits.
const (
	firehoseMaxCount  = 500
	firehoseMaxBytes  = 4 << 20
	firehoseMaxRecord = 1000 << 10
	streamsMaxCount   = 500
	streamsMaxBytes   = 5 << 20
	streamsMaxRecord  = 1 << 20
	// pluginMaxRecord is aws-fluent-plugin-kinesis's max_record_size
	// default and bound.
	pluginMaxRecord = 1 << 20
)

// Shared holds the parameters both outputs share.
type Shared struct {
	Region                string          `conf:"region" desc:"The stream's region; defaults to AWS_REGION."`
	Endpoint              string          `conf:"endpoint" desc:"An endpoint instead of AWS's (a VPC endpoint, a local test server)."`
	AWSKeyID              string          `conf:"aws_key_id" desc:"The access key ID; without it credentials come from the credential sections, the environment, or the instance's role."`
	AWSSecKey             string          `conf:"aws_sec_key" desc:"The secret access key that goes with aws_key_id."`
	AWSSesToken           string          `conf:"aws_ses_token" desc:"The session token of temporary credentials."`
	HTTPProxy             string          `conf:"http_proxy" desc:"An HTTP proxy for the API requests."`
	SSLVerifyPeer         bool            `conf:"ssl_verify_peer" desc:"Verify the endpoint's TLS certificate."`
	AppendNewLine         bool            `conf:"append_new_line" desc:"End each record's data with a newline, so that records concatenated downstream (S3 from Firehose) stay one per line."`
	DataKey               string          `conf:"data_key" desc:"Send only this field's value as the record's data, instead of the formatted event."`
	LogTruncateMaxSize    int             `conf:"log_truncate_max_size" desc:"Accepted for aws-fluent-plugin-kinesis compatibility (it truncates the records its error lines quote)." ignored:"Sluice's error lines name records by count and size, never quote them"`
	MaxRecordSize         config.Size     `conf:"max_record_size" desc:"The largest record sent; a larger one goes to <label @ERROR>. At most 1MB, and never more than the service takes (Firehose 1000KB)."`
	BatchRequestMaxCount  int             `conf:"batch_request_max_count" desc:"The most records one batch call carries (500 for both services)."`
	BatchRequestMaxSize   config.Size     `conf:"batch_request_max_size" desc:"The most bytes one batch call carries (4MB for Firehose, 5MB for Streams)."`
	RetriesOnBatchRequest int             `conf:"retries_on_batch_request" desc:"How many times the records a batch call failed are sent again, with backoff, before the chunk is retried."`
	ResetBackoffIfSuccess bool            `conf:"reset_backoff_if_success" desc:"Start the backoff again from its first wait after a batch call in which every record succeeded."`
	Compression           string          `conf:"compression" desc:"zlib or gzip compressed each record in aws-fluent-plugin-kinesis; Sluice refuses it rather than send data the consumers do not expect."`
	ChompRecord           bool            `conf:"chomp_record" desc:"Accepted for aws-fluent-plugin-kinesis compatibility." ignored:"the formatter's trailing newline is always removed before append_new_line"`
	Debug                 bool            `conf:"debug" desc:"Accepted for aws-fluent-plugin-kinesis compatibility." ignored:"run Sluice with -v for the requests"`
	AWSIAMRetries         int             `conf:"aws_iam_retries" desc:"Deprecated in aws-fluent-plugin-kinesis." ignored:"the SDK's credential providers retry on their own"`
	Format                *config.Element `section:"format" desc:"How each event becomes a record's data: a formatter, json unless @type says otherwise."`
	awsauth.Options

	f        plugin.Formatter
	dataPath []string
	errorOut plugin.Emitter
	log      *slog.Logger
	id       string
	sender   sender

	Stats Stats
}

func defaultShared(maxCount int, maxBytes int64) Shared {
	return Shared{SSLVerifyPeer: true, AppendNewLine: true, BatchRequestMaxCount: maxCount,
		BatchRequestMaxSize: config.Size(maxBytes), RetriesOnBatchRequest: 8, ResetBackoffIfSuccess: true,
		LogTruncateMaxSize: 1024, MaxRecordSize: pluginMaxRecord}
}

func (c *Shared) configure(ctx *plugin.Context, maxCount int, maxBytes int64) error {
	c.log, c.id, c.errorOut = ctx.Logger, ctx.ID, ctx.ErrorOut
	if c.Compression != "" {
		return fmt.Errorf("compression %s is not supported: the records would not be what Sluice's other outputs and your consumers expect; compress in the delivery stream (Firehose) instead", c.Compression)
	}
	f, err := ctx.Build.Formatter(c.Format, "json")
	if err != nil {
		return err
	}
	c.f = f
	if c.DataKey != "" {
		if c.dataPath, err = buffer.RecordPath(c.DataKey); err != nil {
			return err
		}
	}
	if c.BatchRequestMaxCount < 1 || c.BatchRequestMaxCount > maxCount {
		return fmt.Errorf("batch_request_max_count must be between 1 and %d", maxCount)
	}
	if c.BatchRequestMaxSize < 1 || int64(c.BatchRequestMaxSize) > maxBytes {
		return fmt.Errorf("batch_request_max_size must be between 1 and %d", maxBytes)
	}
	if c.MaxRecordSize < 1 || c.MaxRecordSize > pluginMaxRecord {
		return fmt.Errorf("max_record_size must be between 1 and %d", pluginMaxRecord)
	}
	if c.RetriesOnBatchRequest < 0 {
		return fmt.Errorf("retries_on_batch_request must not be negative")
	}
	c.sender = sender{maxCount: c.BatchRequestMaxCount, maxBytes: int(c.BatchRequestMaxSize), retries: c.RetriesOnBatchRequest,
		resetBackoff: c.ResetBackoffIfSuccess, log: c.log, id: c.id, stats: &c.Stats, backoffBase: 300 * time.Millisecond}
	return nil
}

func (c *Shared) awsConfig(ctx context.Context) (aws.Config, error) {
	return awsauth.Load(ctx, awsauth.Region(c.Region), awsauth.Static{KeyID: c.AWSKeyID, Secret: c.AWSSecKey, SessionToken: c.AWSSesToken},
		c.Options, awsauth.HTTP{Proxy: c.HTTPProxy, VerifyPeer: c.SSLVerifyPeer}, c.log)
}

// maxRecord is the largest record to send: max_record_size, within what
// the service takes.
func (c *Shared) maxRecord(service int) int {
	return min(int(c.MaxRecordSize), service)
}

// data renders one entry as a record's data: the data_key field as it is,
// or the formatter's output, with a newline when append_new_line is on.
func (c *Shared) data(dst []byte, tag string, e *event.Entry) ([]byte, error) {
	if c.dataPath != nil {
		v, ok := e.Record.Lookup(c.dataPath)
		if !ok {
			return dst, fmt.Errorf("no field %q", c.DataKey)
		}
		dst = v.AppendText(dst)
	} else {
		var err error
		if dst, err = c.f.Format(dst, tag, e.Time, e.Record); err != nil {
			return dst, err
		}
		for len(dst) > 0 && dst[len(dst)-1] == '\n' {
			dst = dst[:len(dst)-1]
		}
	}
	if c.AppendNewLine {
		dst = append(dst, '\n')
	}
	return dst, nil
}

// Measure implements plugin.Measured.
func (c *Shared) Measure(report plugin.Report) {
	s := &c.Stats
	report("kinesis_records_total", "Events delivered.", s.Records.Load(), false)
	report("kinesis_bytes_total", "Record bytes delivered.", s.Bytes.Load(), false)
	report("kinesis_calls_total", "Batch calls made.", s.Calls.Load(), false)
	report("ambiguous_retries_total", "Records sent again after a call failed with no answer once it may have reached the service: they may arrive twice.", s.Ambiguous.Load(), false)
	report("kinesis_retried_calls_total", "Batch calls made again for failed records.", s.RetriedCalls.Load(), false)
	report("kinesis_retried_records_total", "Records sent again after a failure.", s.Retried.Load(), false)
	report("kinesis_oversized_records_total", "Records over the per-record limit, sent to @ERROR.", s.Oversized.Load(), false)
}

// write sends a chunk's undelivered entries to stream.
func (c *Shared) write(ctx context.Context, ch *plugin.Chunk, stream string, maxRecord, pack int,
	key func(*event.Entry) string) error {
	done := plugin.LoadEntrySet(ch, metaDone)
	if n := done.Count(); n > 0 {
		plugin.Delivered(ctx, n) // by an earlier write, perhaps before a restart
	}
	recs, err := c.build(ctx, ch, &done, maxRecord, pack, key)
	if err != nil {
		return err
	}
	return c.sender.send(ctx, ch, stream, recs, &done)
}

// build turns a chunk's undelivered entries into records, joining entries
// into records of up to pack bytes when pack > 0. An entry too big
// for one record goes to <label @ERROR> (splitting a JSON line would give
// the destination two broken halves), is counted, and is marked delivered
// so that it is not sent there twice.
func (c *Shared) build(ctx context.Context, ch *plugin.Chunk, done *plugin.EntrySet, maxRecord, pack int,
	key func(*event.Entry) string) ([]record, error) {
	var recs []record
	var oversized event.Builder
	// Local: flush threads run Write concurrently.
	var scratch []byte
	r := event.NewReader(ch.Data)
	for i := 0; r.Next(); i++ {
		if done.Has(i) {
			continue
		}
		e := r.Entry()
		var err error
		scratch, err = c.data(scratch[:0], ch.Key.Tag, e)
		if err != nil {
			oversized.AppendRaw(e.Raw)
			done.Add(i)
			c.log.Warn("record has no data; sent to @ERROR", "output", c.id, "err", err)
			continue
		}
		k := ""
		if key != nil {
			k = key(e)
		}
		if len(scratch)+len(k) > maxRecord {
			c.Stats.Oversized.Add(1)
			oversized.AppendRaw(e.Raw)
			done.Add(i)
			c.log.Warn("record larger than the service's per-record limit; sent to @ERROR", "output", c.id,
				"bytes", len(scratch), "limit", maxRecord)
			continue
		}
		if pack > 0 && len(recs) > 0 {
			last := &recs[len(recs)-1]
			if len(last.data)+len(scratch) <= pack {
				last.data = append(last.data, scratch...)
				last.entries = append(last.entries, i)
				continue
			}
		}
		recs = append(recs, record{data: append([]byte(nil), scratch...), key: k, entries: []int{i}})
	}
	if oversized.Len() > 0 {
		if err := c.errorOut.Emit(ctx, oversized.Stream(ch.Key.Tag)); err != nil {
			return nil, err
		}
		if err := done.Save(ch, metaDone); err != nil {
			return nil, err
		}
	}
	return recs, r.Err()
}

// Firehose is the kinesis_firehose output.
type Firehose struct {
	DeliveryStreamName string `conf:"delivery_stream_name,required" desc:"The Firehose delivery stream (placeholders allowed)."`
	// PackRecords joins newline-delimited events into records of up to the
	// per-record limit: Firehose bills each record rounded up to 5 KB.
	PackRecords bool `conf:"pack_records" desc:"Join newline-delimited events into records of up to max_record_size (1000KB), as Firehose bills each record rounded up to 5KB."`
	// AggregatedRecordSize is aws-fluent-plugin-kinesis's form of the same.
	AggregatedRecordSize int `conf:"aggregated_record_size" desc:"Join events into records of up to this many bytes (0: one event per record), as aws-fluent-plugin-kinesis does; at most max_record_size."`
	Shared

	stream *buffer.Template
	loc    *time.Location
	direct *jsonAPI // PutRecordBatch, without the SDK's serialisation
	pack   int      // join events into records of up to this many bytes
}

// Streams is the kinesis_streams output.
type Streams struct {
	StreamName   string `conf:"stream_name,required" desc:"The Kinesis data stream (placeholders allowed)."`
	PartitionKey string `conf:"partition_key" desc:"The record field whose value is the partition key; without it a random key spreads records over the shards."`
	Shared

	stream  *buffer.Template
	keyPath []string
	loc     *time.Location
	direct  *jsonAPI // PutRecords, without the SDK's serialisation
}

var (
	_ plugin.BufferedOutput = (*Firehose)(nil)
	_ plugin.BufferedOutput = (*Streams)(nil)
)

func init() {
	format := map[string]plugin.Section{"format": {Kind: plugin.KindFormatter, Default: "json"}}
	// aws-fluent-plugin-kinesis's <inject> writes times as strings with
	// nanoseconds, where the inject helper's default is a float.
	inject := map[string]string{"time_type": "string", "time_format": "%Y-%m-%dT%H:%M:%S.%N%z"}
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "kinesis_firehose", Summary: "send records to Amazon Kinesis Data Firehose",
		Sections: format, Inject: true, InjectDefaults: inject, New: func() any { return &Firehose{Shared: defaultShared(firehoseMaxCount, firehoseMaxBytes)} }})
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "kinesis_streams", Summary: "send records to Amazon Kinesis Data Streams",
		Sections: format, Inject: true, InjectDefaults: inject, New: func() any { return &Streams{Shared: defaultShared(streamsMaxCount, streamsMaxBytes)} }})
}

// Configure implements plugin.Configurer.
func (f *Firehose) Configure(c *plugin.Context) error {
	if err := f.configure(c, firehoseMaxCount, firehoseMaxBytes); err != nil {
		return err
	}
	if f.PackRecords && !f.AppendNewLine {
		return fmt.Errorf("pack_records needs append_new_line: the newlines keep packed events apart")
	}
	if f.AggregatedRecordSize < 0 || f.AggregatedRecordSize > int(f.MaxRecordSize) {
		return fmt.Errorf("aggregated_record_size (%d) can't be greater than max_record_size (%d)", f.AggregatedRecordSize, f.MaxRecordSize)
	}
	f.pack = f.AggregatedRecordSize
	if f.PackRecords {
		f.pack = f.maxRecord(firehoseMaxRecord)
	}
	var err error
	if f.stream, err = buffer.NewTemplate(f.DeliveryStreamName, c.ChunkKeys); err != nil {
		return fmt.Errorf("delivery_stream_name: %w", err)
	}
	f.loc = c.Location
	f.sender.put = f.put
	f.sender.sizeOf = func(r record) int { return len(r.data) }
	return nil
}

// Init builds the client; the endpoint is `endpoint` or the SDK's
// AWS_ENDPOINT_URL_FIREHOSE.
func (f *Firehose) Init(ctx context.Context) error {
	cfg, err := f.awsConfig(ctx)
	if err != nil {
		return err
	}
	client := firehose.NewFromConfig(cfg, func(o *firehose.Options) {
		if f.Endpoint != "" {
			o.BaseEndpoint = aws.String(f.Endpoint)
		}
	})
	f.direct, err = newPutRecordBatch(ctx, client)
	return err
}

// Write implements plugin.BufferedOutput.
func (f *Firehose) Write(ctx context.Context, c *plugin.Chunk) error {
	stream, err := f.stream.Expand(c.Key, zone(f.loc))
	if err != nil {
		return fmt.Errorf("delivery_stream_name: %w", err)
	}
	return f.write(ctx, c, stream, f.maxRecord(firehoseMaxRecord), f.pack, nil)
}

func (f *Firehose) put(ctx context.Context, stream string, recs []record) ([]string, error) {
	return f.direct.putRecordBatch(ctx, stream, recs)
}

// Configure implements plugin.Configurer.
func (s *Streams) Configure(c *plugin.Context) error {
	if err := s.configure(c, streamsMaxCount, streamsMaxBytes); err != nil {
		return err
	}
	var err error
	if s.stream, err = buffer.NewTemplate(s.StreamName, c.ChunkKeys); err != nil {
		return fmt.Errorf("stream_name: %w", err)
	}
	if s.PartitionKey != "" {
		if s.keyPath, err = buffer.RecordPath(s.PartitionKey); err != nil {
			return err
		}
	}
	s.loc = c.Location
	s.sender.put = s.put
	s.sender.sizeOf = func(r record) int { return len(r.data) + len(r.key) }
	return nil
}

// Init builds the client; the endpoint is `endpoint` or the SDK's
// AWS_ENDPOINT_URL_KINESIS.
func (s *Streams) Init(ctx context.Context) error {
	cfg, err := s.awsConfig(ctx)
	if err != nil {
		return err
	}
	client := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		if s.Endpoint != "" {
			o.BaseEndpoint = aws.String(s.Endpoint)
		}
	})
	s.direct, err = newPutRecords(ctx, client)
	return err
}

// Write implements plugin.BufferedOutput.
func (s *Streams) Write(ctx context.Context, c *plugin.Chunk) error {
	stream, err := s.stream.Expand(c.Key, zone(s.loc))
	if err != nil {
		return fmt.Errorf("stream_name: %w", err)
	}
	return s.write(ctx, c, stream, s.maxRecord(streamsMaxRecord), 0, s.partitionKey)
}

// partitionKey is the partition_key field, or a random key (an even
// spread over shards) when it is unset or the record lacks it.
func (s *Streams) partitionKey(e *event.Entry) string {
	if s.keyPath != nil {
		if v, ok := e.Record.Lookup(s.keyPath); ok {
			if k := v.String(); k != "" {
				if len(k) > 256 {
					k = k[:256]
				}
				return k
			}
		}
	}
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Streams) put(ctx context.Context, stream string, recs []record) ([]string, error) {
	return s.direct.putRecords(ctx, stream, recs)
}

func zone(loc *time.Location) *time.Location {
	if loc == nil {
		return time.Local
	}
	return loc
}
