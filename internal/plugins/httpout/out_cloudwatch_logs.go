package httpout

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/awsauth"
	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// CloudWatchLogs is fluent-plugin-cloudwatch-logs' cloudwatch_logs output.
// A chunk's events are grouped by log group and stream, sorted by time,
// and sent with PutLogEvents in batches within the API's limits: 10,000
// events (max_events_per_batch), 1,048,576 bytes counting 26 bytes per
// event, and a span under 24 hours. The events a batch delivered are kept
// with the chunk, so that a retry sends only the rest.
//
// The call is the documented JSON protocol, signed with the SDK's SigV4
// signer and credentials, on the HTTP output core: no SDK serialisation.
type CloudWatchLogs struct {
	AWSKeyID                  string            `conf:"aws_key_id" desc:"An access key id; the SDK's credential chain when unset."`
	AWSSecKey                 string            `conf:"aws_sec_key" desc:"The secret of aws_key_id."`
	AWSUseSTS                 bool              `conf:"aws_use_sts" desc:"Assume aws_sts_role_arn through STS."`
	AWSSTSRoleARN             string            `conf:"aws_sts_role_arn" desc:"The role aws_use_sts assumes."`
	AWSSTSSessionName         string            `conf:"aws_sts_session_name" desc:"The session name of the assumed role."`
	AWSSTSExternalID          string            `conf:"aws_sts_external_id" desc:"The external id the role's trust policy asks for."`
	AWSSTSEndpointURL         string            `conf:"aws_sts_endpoint_url" desc:"The STS endpoint, instead of the region's."`
	AWSECSAuthentication      bool              `conf:"aws_ecs_authentication" desc:"Accepted for compatibility: the SDK's chain takes the ECS task role on its own." ignored:"the SDK's credential chain reads the ECS task role"`
	AWSInstanceProfileRetries int               `conf:"aws_instance_profile_credentials_retries" desc:"Accepted for compatibility." ignored:"the SDK's credential providers retry on their own"`
	Region                    string            `conf:"region" desc:"The AWS region; AWS_REGION when unset."`
	Endpoint                  string            `conf:"endpoint" desc:"The CloudWatch Logs endpoint URL, instead of the region's (AWS_ENDPOINT_URL_CLOUDWATCH_LOGS works too)."`
	SSLVerifyPeer             bool              `conf:"ssl_verify_peer" desc:"Verify the endpoint's certificate."`
	HTTPProxy                 string            `conf:"http_proxy" desc:"An HTTP proxy URL."`
	LogGroupName              string            `conf:"log_group_name" desc:"The log group; ${tag} and chunk-key placeholders take the chunk's values."`
	LogStreamName             string            `conf:"log_stream_name" desc:"The log stream; placeholders as log_group_name."`
	UseTagAsGroup             bool              `conf:"use_tag_as_group" desc:"The tag is the log group."`
	UseTagAsStream            bool              `conf:"use_tag_as_stream" desc:"The tag is the log stream."`
	LogGroupNameKey           string            `conf:"log_group_name_key" desc:"The record field holding the log group."`
	LogStreamNameKey          string            `conf:"log_stream_name_key" desc:"The record field holding the log stream."`
	RemoveLogGroupNameKey     bool              `conf:"remove_log_group_name_key" desc:"Leave log_group_name_key's field out of the message."`
	RemoveLogStreamNameKey    bool              `conf:"remove_log_stream_name_key" desc:"Leave log_stream_name_key's field out of the message."`
	AutoCreateStream          bool              `conf:"auto_create_stream" desc:"Create the log group and stream when they do not exist; otherwise their events are dropped (and counted), as in the Ruby plugin."`
	RetentionInDays           int               `conf:"retention_in_days" desc:"The retention set on a log group this output creates."`
	RetentionInDaysKey        string            `conf:"retention_in_days_key" desc:"The record field holding retention_in_days."`
	RemoveRetentionInDaysKey  bool              `conf:"remove_retention_in_days_key" desc:"Leave retention_in_days_key's field out of the message."`
	LogGroupAWSTags           map[string]string `conf:"log_group_aws_tags" desc:"Tags of a log group this output creates, as a hash."`
	LogGroupAWSTagsKey        string            `conf:"log_group_aws_tags_key" desc:"The record field holding the tags (a map)."`
	RemoveLogGroupAWSTagsKey  bool              `conf:"remove_log_group_aws_tags_key" desc:"Leave log_group_aws_tags_key's field out of the message."`
	MessageKeys               []string          `conf:"message_keys" desc:"The fields whose values, joined by spaces, are the message; the whole record as JSON when unset."`
	MaxMessageLength          int               `conf:"max_message_length" desc:"Cut messages to this many bytes (0: no cut)."`
	MaxEventsPerBatch         int               `conf:"max_events_per_batch" desc:"The most events in one PutLogEvents call (the API's limit is 10,000)."`
	PutLogEventsRetryWait     time.Duration     `conf:"put_log_events_retry_wait" desc:"The first wait before a throttled call is made again within the write."`
	PutLogEventsRetryLimit    int               `conf:"put_log_events_retry_limit" desc:"How many times a throttled call is made again within the write before the chunk is left to the <buffer> retries."`
	PutLogEventsDisableLimit  bool              `conf:"put_log_events_disable_retry_limit" desc:"Make throttled calls again within the write until they succeed."`
	Concurrency               int               `conf:"concurrency" desc:"Accepted for compatibility: flush_thread_count sets how many chunks are sent at once." ignored:"flush_thread_count sets the concurrency"`
	JSONHandler               string            `conf:"json_handler" enum:"yajl,json" desc:"Accepted for compatibility: one JSON encoder serves both." ignored:"one JSON encoder serves both"`
	LogRejectedRequest        bool              `conf:"log_rejected_request" desc:"Log the events PutLogEvents rejected (too old, too new, expired)."`
	Format                    *config.Element   `section:"format" desc:"Accepted for compatibility: the message is JSON or message_keys." ignored:"the message is the record as JSON, or message_keys"`
	awsauth.Options

	core
	log      *slog.Logger
	loc      *time.Location
	group    *buffer.Template
	stream   *buffer.Template
	remove   [][]string
	endpoint string
	region   string

	mu      sync.Mutex
	tokens  map[[2]string]string // sequence tokens, for the services that still ask
	created map[[2]string]bool   // groups and streams known to exist

	rejected, missing, throttled atomic.Int64
}

// PutLogEvents' documented limits.
const (
	cwlMaxBatchBytes = 1_048_576
	cwlEventOverhead = 26
	cwlMaxEventBytes = 256 * 1024
	cwlMaxSpan       = 24 * time.Hour
)

const cwlMetaDone = "cloudwatch_done"

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "cloudwatch_logs", Summary: "send events to Amazon CloudWatch Logs",
		DoneWithDataOnReturn: true,
		Inject:               true,
		Sections: map[string]plugin.Section{
			"format": {Kind: plugin.KindFormatter, Default: "json"},
		},
		New: func() any {
			return &CloudWatchLogs{SSLVerifyPeer: true, MaxEventsPerBatch: 10000, PutLogEventsRetryWait: time.Second,
				PutLogEventsRetryLimit: 17, Concurrency: 1, JSONHandler: "yajl"}
		}})
}

var (
	_ plugin.BufferedOutput = (*CloudWatchLogs)(nil)
	_ plugin.Measured       = (*CloudWatchLogs)(nil)
)

// Configure implements plugin.Configurer.
func (o *CloudWatchLogs) Configure(c *plugin.Context) error {
	o.log = c.Logger
	o.loc = c.Location
	if n := countSet(o.LogGroupName != "", o.UseTagAsGroup, o.LogGroupNameKey != ""); n != 1 {
		return errors.New("set only one of log_group_name, use_tag_as_group and log_group_name_key")
	}
	if n := countSet(o.LogStreamName != "", o.UseTagAsStream, o.LogStreamNameKey != ""); n != 1 {
		return errors.New("set only one of log_stream_name, use_tag_as_stream and log_stream_name_key")
	}
	var err error
	if o.LogGroupName != "" {
		if o.group, err = buffer.NewTemplate(o.LogGroupName, c.ChunkKeys); err != nil {
			return fmt.Errorf("log_group_name: %w", err)
		}
	}
	if o.LogStreamName != "" {
		if o.stream, err = buffer.NewTemplate(o.LogStreamName, c.ChunkKeys); err != nil {
			return fmt.Errorf("log_stream_name: %w", err)
		}
	}
	if o.MaxEventsPerBatch < 1 || o.MaxEventsPerBatch > 10000 {
		return fmt.Errorf("max_events_per_batch %d: the API takes 1 to 10,000", o.MaxEventsPerBatch)
	}
	for _, r := range []struct {
		on  bool
		key string
	}{{o.RemoveLogGroupNameKey, o.LogGroupNameKey}, {o.RemoveLogStreamNameKey, o.LogStreamNameKey},
		{o.RemoveRetentionInDaysKey, o.RetentionInDaysKey}, {o.RemoveLogGroupAWSTagsKey, o.LogGroupAWSTagsKey}} {
		if r.on && r.key != "" {
			o.remove = append(o.remove, []string{r.key})
		}
	}
	o.region = awsauth.Region(o.Region)
	o.endpoint = cmp.Or(o.Endpoint, os.Getenv("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"), os.Getenv("AWS_ENDPOINT_URL"), regionEndpoint(o.region))
	o.endpoint = strings.TrimSuffix(o.endpoint, "/") + "/"
	if o.AWSUseSTS && o.AWSSTSRoleARN == "" {
		return errors.New("aws_use_sts needs aws_sts_role_arn")
	}
	o.clientCfg = ClientConfig{TLS: transport.Client{Insecure: !o.SSLVerifyPeer}, Proxy: o.HTTPProxy, AnswerTimeout: 60 * time.Second}
	o.tokens = map[[2]string]string{}
	o.created = map[[2]string]bool{}
	return nil
}

func countSet(flags ...bool) int {
	n := 0
	for _, f := range flags {
		if f {
			n++
		}
	}
	return n
}

// regionEndpoint is the region's CloudWatch Logs endpoint.
func regionEndpoint(region string) string {
	if strings.HasPrefix(region, "cn-") {
		return "https://logs." + region + ".amazonaws.com.cn"
	}
	return "https://logs." + region + ".amazonaws.com"
}

// Init implements plugin.Initer: it loads the credentials.
func (o *CloudWatchLogs) Init(ctx context.Context) error {
	opts := o.Options
	if o.AWSUseSTS {
		opts.AssumeRole = &awsauth.AssumeRole{RoleARN: o.AWSSTSRoleARN, RoleSessionName: cmp.Or(o.AWSSTSSessionName, "fluentd"),
			ExternalID: o.AWSSTSExternalID, STSEndpointURL: o.AWSSTSEndpointURL}
	}
	cfg, err := awsauth.Load(ctx, o.region, awsauth.Static{KeyID: o.AWSKeyID, Secret: o.AWSSecKey}, opts,
		awsauth.HTTP{Proxy: o.HTTPProxy, VerifyPeer: o.SSLVerifyPeer}, o.log)
	if err != nil {
		return err
	}
	o.clientCfg.Signer = awsauth.NewSigner(cfg.Credentials, "logs", o.region)
	return o.startClient()
}

// Measure implements plugin.Measured.
func (o *CloudWatchLogs) Measure(report plugin.Report) {
	o.stats.Measure(report)
	report("cloudwatch_rejected_events_total", "Events PutLogEvents rejected as too old, too new or expired (not retried).", o.rejected.Load(), false)
	report("cloudwatch_missing_target_events_total", "Events dropped because their log group or stream does not exist (auto_create_stream false) or an event was over 256 KiB.", o.missing.Load(), false)
	report("cloudwatch_throttled_calls_total", "PutLogEvents calls throttled and made again.", o.throttled.Load(), false)
}

// cwlEvent is one event bound for a stream.
type cwlEvent struct {
	index   int // in the chunk, for the delivered set
	ms      int64
	message []byte
}

type cwlTarget struct {
	group, stream string
	retention     int
	tags          map[string]string
	events        []cwlEvent
}

// Write implements plugin.BufferedOutput.
func (o *CloudWatchLogs) Write(ctx context.Context, c *plugin.Chunk) error {
	done := plugin.LoadEntrySet(c, cwlMetaDone)
	targets, err := o.targets(c, done)
	if err != nil {
		return err
	}
	markDone := func(evs []cwlEvent) error {
		for _, e := range evs {
			done.Add(e.index)
		}
		plugin.Delivered(ctx, done.Count())
		return done.Save(c, cwlMetaDone)
	}
	for _, t := range targets {
		slices.SortStableFunc(t.events, func(a, b cwlEvent) int { return cmp.Compare(a.ms, b.ms) })
		exists, err := o.ensure(ctx, t)
		if err != nil {
			return err
		}
		if !exists {
			o.log.Warn("log group or stream does not exist and auto_create_stream is false; its events are dropped",
				"log_group", t.group, "log_stream", t.stream, "events", len(t.events))
			o.missing.Add(int64(len(t.events)))
			o.stats.Dropped.Add(int64(len(t.events)))
			if err := markDone(t.events); err != nil {
				return err
			}
			continue
		}
		for _, batch := range o.batches(t.events) {
			if err := o.put(ctx, t, batch); err != nil {
				return err
			}
			if err := markDone(batch); err != nil {
				return err
			}
		}
	}
	return nil
}

// targets groups the chunk's undelivered events by log group and stream,
// in the order they first appear.
func (o *CloudWatchLogs) targets(c *plugin.Chunk, done plugin.EntrySet) ([]*cwlTarget, error) {
	fixedGroup, fixedStream := c.Key.Tag, c.Key.Tag
	var err error
	if o.group != nil {
		if fixedGroup, err = o.group.Expand(c.Key, o.loc); err != nil {
			return nil, &plugin.Permanent{Err: fmt.Errorf("log_group_name: %w", err)}
		}
	}
	if o.stream != nil {
		if fixedStream, err = o.stream.Expand(c.Key, o.loc); err != nil {
			return nil, &plugin.Permanent{Err: fmt.Errorf("log_stream_name: %w", err)}
		}
	}
	byName := map[[2]string]*cwlTarget{}
	var order []*cwlTarget
	r := c.Entries()
	var scratch []byte
	for i := 0; r.Next(); i++ {
		if done.Has(i) {
			continue
		}
		e := r.Entry()
		group, stream := fixedGroup, fixedStream
		if o.LogGroupNameKey != "" {
			group = textField(e.Record, o.LogGroupNameKey)
		}
		if o.LogStreamNameKey != "" {
			stream = textField(e.Record, o.LogStreamNameKey)
		}
		key := [2]string{group, stream}
		t := byName[key]
		if t == nil {
			t = &cwlTarget{group: group, stream: stream, retention: o.RetentionInDays, tags: o.LogGroupAWSTags}
			if o.RetentionInDaysKey != "" {
				if n, err := strconv.Atoi(textField(e.Record, o.RetentionInDaysKey)); err == nil {
					t.retention = n
				}
			}
			if o.LogGroupAWSTagsKey != "" {
				if v, ok := e.Record.Get(o.LogGroupAWSTagsKey); ok && msgp.NextType(v) == msgp.MapType {
					t.tags = map[string]string{}
					_ = event.Record(v).Each(func(k []byte, v event.Value) bool { t.tags[string(k)] = v.String(); return true })
				}
			}
			byName[key] = t
			order = append(order, t)
		}
		rec := e.Record
		if len(o.remove) > 0 {
			if scratch, err = event.AppendWithout(scratch[:0], rec, o.remove); err != nil {
				return nil, &plugin.Permanent{Err: err}
			}
			rec = event.Record(scratch)
		}
		msg, err := o.message(rec)
		if err != nil {
			return nil, &plugin.Permanent{Err: err}
		}
		t.events = append(t.events, cwlEvent{index: i, ms: int64(e.Time) / 1e6, message: msg})
	}
	return order, r.Err()
}

func textField(r event.Record, key string) string {
	if v, ok := r.Get(key); ok && msgp.NextType(v) != msgp.NilType {
		return v.String()
	}
	return ""
}

// message is the record as JSON, or the message_keys' values joined by
// spaces (empty ones left out), cut at max_message_length.
func (o *CloudWatchLogs) message(rec event.Record) ([]byte, error) {
	var msg []byte
	if len(o.MessageKeys) == 0 {
		var err error
		if msg, err = rec.AppendJSON(nil); err != nil {
			return nil, err
		}
	} else {
		for _, k := range o.MessageKeys {
			s := textField(rec, strings.TrimSpace(k))
			if s == "" {
				continue
			}
			if len(msg) > 0 {
				msg = append(msg, ' ')
			}
			msg = append(msg, s...)
		}
	}
	if o.MaxMessageLength > 0 && len(msg) > o.MaxMessageLength {
		msg = msg[:o.MaxMessageLength]
	}
	return validUTF8(msg, "\uFFFD"), nil
}

// batches splits a stream's sorted events at the API's limits. An event
// over 256 KiB is dropped (counted), as the Ruby plugin discards it.
func (o *CloudWatchLogs) batches(events []cwlEvent) [][]cwlEvent {
	var out [][]cwlEvent
	var cur []cwlEvent
	size := 0
	for _, e := range events {
		n := len(e.message) + cwlEventOverhead
		if n > cwlMaxEventBytes {
			o.log.Warn("a log event is larger than CloudWatch Logs takes (256 KiB with its 26-byte header); dropped", "bytes", n)
			o.missing.Add(1)
			o.stats.Dropped.Add(1)
			continue
		}
		if len(cur) > 0 && (len(cur) >= o.MaxEventsPerBatch || size+n > cwlMaxBatchBytes ||
			time.Duration(e.ms-cur[0].ms)*time.Millisecond >= cwlMaxSpan) {
			out = append(out, cur)
			cur, size = nil, 0
		}
		cur = append(cur, e)
		size += n
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// cwlError is an error answer: {"__type": "...#Code", "message": ...}.
type cwlError struct {
	status   int
	code     string
	message  string
	expected string // expectedSequenceToken
}

func (e *cwlError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message) }

// call makes one API call; a non-2xx answer comes back as *cwlError.
func (o *CloudWatchLogs) call(ctx context.Context, action string, body []byte, records int) ([]byte, error) {
	a, err := o.client.Do(ctx, Request{Method: http.MethodPost, URL: o.endpoint, Body: body,
		ContentType: "application/x-amz-json-1.1", Header: http.Header{"X-Amz-Target": {"Logs_20140328." + action}}, Records: records})
	if err != nil {
		return nil, err
	}
	if a.Status >= 200 && a.Status < 300 {
		return a.Body, nil
	}
	var e struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		Expected string `json:"expectedSequenceToken"`
	}
	_ = json.Unmarshal(a.Body, &e)
	code := e.Type
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	return nil, &cwlError{status: a.Status, code: cmp.Or(code, http.StatusText(a.Status)), message: e.Message, expected: e.Expected}
}

func isCode(err error, code string) (*cwlError, bool) {
	var e *cwlError
	if errors.As(err, &e) && e.code == code {
		return e, true
	}
	return nil, false
}

// ensure makes sure the target's group and stream exist (creating them
// with auto_create_stream); it reports whether they do.
func (o *CloudWatchLogs) ensure(ctx context.Context, t *cwlTarget) (bool, error) {
	key := [2]string{t.group, t.stream}
	o.mu.Lock()
	known := o.created[key]
	o.mu.Unlock()
	if known || !o.AutoCreateStream {
		return true, nil // PutLogEvents says when they do not exist
	}
	group := map[string]any{"logGroupName": t.group}
	if len(t.tags) > 0 {
		group["tags"] = t.tags
	}
	if err := o.create(ctx, "CreateLogGroup", group); err != nil {
		return false, err
	}
	if t.retention > 0 {
		body, _ := json.Marshal(map[string]any{"logGroupName": t.group, "retentionInDays": t.retention})
		if _, err := o.call(ctx, "PutRetentionPolicy", body, 0); err != nil {
			return false, o.classify(err)
		}
	}
	if err := o.create(ctx, "CreateLogStream", map[string]any{"logGroupName": t.group, "logStreamName": t.stream}); err != nil {
		return false, err
	}
	o.mu.Lock()
	o.created[key] = true
	o.mu.Unlock()
	return true, nil
}

// create calls a Create action; one that exists already is fine.
func (o *CloudWatchLogs) create(ctx context.Context, action string, args map[string]any) error {
	body, _ := json.Marshal(args)
	_, err := o.call(ctx, action, body, 0)
	if _, exists := isCode(err, "ResourceAlreadyExistsException"); exists {
		return nil
	}
	return o.classify(err)
}

// put sends one batch: throttled calls are made again within the write
// (put_log_events_retry_limit), a stale sequence token is replaced by the
// one the service expects, a missing group or stream is created once (with
// auto_create_stream), and a batch the service says it has is delivered.
func (o *CloudWatchLogs) put(ctx context.Context, t *cwlTarget, batch []cwlEvent) error {
	key := [2]string{t.group, t.stream}
	wait := o.PutLogEventsRetryWait
	for attempt := 0; ; attempt++ {
		o.mu.Lock()
		token := o.tokens[key]
		o.mu.Unlock()
		answer, err := o.call(ctx, "PutLogEvents", putLogEventsBody(t.group, t.stream, token, batch), len(batch))
		if err == nil {
			o.afterPut(key, answer, batch)
			return nil
		}
		if e, ok := isCode(err, "InvalidSequenceTokenException"); ok && e.expected != "" && attempt < 5 {
			o.setToken(key, e.expected)
			continue
		}
		if e, ok := isCode(err, "DataAlreadyAcceptedException"); ok {
			o.setToken(key, e.expected)
			return nil
		}
		if _, ok := isCode(err, "ResourceNotFoundException"); ok && o.AutoCreateStream && attempt < 2 {
			o.mu.Lock()
			delete(o.created, key)
			o.mu.Unlock()
			if _, err := o.ensure(ctx, t); err != nil {
				return err
			}
			continue
		}
		if _, ok := isCode(err, "ResourceNotFoundException"); ok {
			o.log.Warn("log group or stream does not exist and auto_create_stream is false; its events are dropped",
				"log_group", t.group, "log_stream", t.stream, "events", len(batch))
			o.missing.Add(int64(len(batch)))
			o.stats.Dropped.Add(int64(len(batch)))
			return nil
		}
		if _, ok := isCode(err, "ThrottlingException"); ok && (o.PutLogEventsDisableLimit || attempt < o.PutLogEventsRetryLimit) {
			o.throttled.Add(1)
			plugin.CountRetry(ctx)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			wait = min(2*wait, 30*time.Second)
			continue
		}
		return o.classify(err)
	}
}

// classify makes an answer the write's outcome: throttling and server
// faults are retried by the buffer; other client errors are permanent.
func (o *CloudWatchLogs) classify(err error) error {
	var e *cwlError
	if !errors.As(err, &e) {
		return err // no answer: retried
	}
	switch {
	case e.status >= 500, e.code == "ThrottlingException", e.code == "ServiceUnavailableException",
		e.code == "OperationAbortedException", e.code == "LimitExceededException":
		return err
	}
	return &plugin.Permanent{Err: err}
}

func (o *CloudWatchLogs) setToken(key [2]string, token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if token == "" {
		delete(o.tokens, key)
	} else {
		o.tokens[key] = token
	}
}

// afterPut keeps the next sequence token and counts rejected events.
func (o *CloudWatchLogs) afterPut(key [2]string, answer []byte, batch []cwlEvent) {
	var a struct {
		Next     string `json:"nextSequenceToken"`
		Rejected *struct {
			TooNewStart *int `json:"tooNewLogEventStartIndex"`
			TooOldEnd   *int `json:"tooOldLogEventEndIndex"`
			ExpiredEnd  *int `json:"expiredLogEventEndIndex"`
		} `json:"rejectedLogEventsInfo"`
	}
	_ = json.Unmarshal(answer, &a)
	o.setToken(key, a.Next)
	if a.Rejected == nil {
		return
	}
	n := 0
	if r := a.Rejected.TooNewStart; r != nil {
		n += len(batch) - *r
	}
	if r := max(ptrOr(a.Rejected.TooOldEnd, -1), ptrOr(a.Rejected.ExpiredEnd, -1)); r >= 0 {
		n += r + 1
	}
	n = min(n, len(batch))
	o.rejected.Add(int64(n))
	o.stats.Dropped.Add(int64(n))
	if o.LogRejectedRequest {
		o.log.Warn("CloudWatch Logs rejected events", "log_group", key[0], "log_stream", key[1], "events", n, "info", string(answer))
	}
}

func ptrOr(p *int, def int) int {
	if p == nil {
		return def
	}
	return *p
}

// putLogEventsBody is {"logGroupName", "logStreamName", "logEvents":
// [{"timestamp", "message"}], "sequenceToken"?}.
func putLogEventsBody(group, stream, token string, batch []cwlEvent) []byte {
	size := 96 + len(group) + len(stream) + len(token)
	for _, e := range batch {
		size += len(e.message) + 40
	}
	b := make([]byte, 0, size)
	b = append(b, `{"logGroupName":`...)
	b = event.AppendJSONString(b, []byte(group))
	b = append(b, `,"logStreamName":`...)
	b = event.AppendJSONString(b, []byte(stream))
	if token != "" {
		b = append(b, `,"sequenceToken":`...)
		b = event.AppendJSONString(b, []byte(token))
	}
	b = append(b, `,"logEvents":[`...)
	for i, e := range batch {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"timestamp":`...)
		b = strconv.AppendInt(b, e.ms, 10)
		b = append(b, `,"message":`...)
		b = event.AppendJSONString(b, e.message)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}
