package httpout

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// Datadog is fluent-plugin-datadog's datadog output. Each event is
// enriched as the plugin does (ddsource, ddsourcecategory, ddtags with
// the Kubernetes and Docker container tags, service, hostname, the tag,
// @timestamp) and written as JSON when it is buffered. Over HTTP a chunk
// is sent to /api/v2/logs as JSON arrays within the intake's limits (1,000
// entries and 5,000,000 bytes a request); the entries a request delivered
// are kept with the chunk, so that a retry after a later request failed
// sends only the rest. With use_http false, events go to the TCP intake
// as "API_KEY JSON" lines.
//
// Answers: 2xx is done; 408, 429 and 5xx are retried; any other status is
// logged and the batch dropped (counted), as the Ruby plugin does.
type Datadog struct {
	APIKey           string `conf:"api_key,required" desc:"The Datadog API key."`
	Host             string `conf:"host" desc:"The intake host (the TCP intake's when use_http is false and host is not set)."`
	UseSSL           bool   `conf:"use_ssl" desc:"Use TLS (https, or TLS on the TCP intake)."`
	Port             int    `conf:"port" desc:"The port without TLS."`
	SSLPort          int    `conf:"ssl_port" desc:"The port with TLS."`
	MaxRetries       int    `conf:"max_retries" desc:"Accepted for compatibility; the <buffer> retry parameters apply." ignored:"the <buffer> retry parameters apply"`
	MaxBackoff       int    `conf:"max_backoff" desc:"Accepted for compatibility; retry_max_interval applies." ignored:"the <buffer> retry_max_interval applies"`
	UseHTTP          bool   `conf:"use_http" desc:"Send over HTTP to /api/v2/logs; false sends lines to the TCP intake."`
	UseCompression   bool   `conf:"use_compression" desc:"gzip HTTP request bodies."`
	CompressionLevel int    `conf:"compression_level" desc:"The gzip level, 1 (fastest) to 9 (smallest)."`
	NoSSLValidation  bool   `conf:"no_ssl_validation" desc:"Do not verify the intake's certificate."`
	UseJSON          bool   `conf:"use_json" desc:"Accepted for compatibility: the TCP intake gets JSON either way (Ruby's false sends its own print of the record)." ignored:"events are always sent as JSON"`
	IncludeTagKey    bool   `conf:"include_tag_key" desc:"Add the tag to each event under tag_key."`
	TagKey           string `conf:"tag_key" desc:"The field include_tag_key writes the tag to."`
	TimestampKey     string `conf:"timestamp_key" desc:"The field the event time is written to (ISO 8601, milliseconds, UTC) unless the record has it."`
	Service          string `conf:"service" desc:"The service of events that have none."`
	DDSourcecategory string `conf:"dd_sourcecategory" desc:"The ddsourcecategory of events that have none."`
	DDSource         string `conf:"dd_source" desc:"The ddsource (integration) of events that have none."`
	DDTags           string `conf:"dd_tags" desc:"The ddtags (k:v,k:v) of events that have none."`
	DDHostname       string `conf:"dd_hostname" desc:"The hostname of events that have none; this machine's name when unset."`
	HTTPProxy        string `conf:"http_proxy" desc:"An HTTP proxy URL for the HTTP intake."`
	ForceV1Routes    bool   `conf:"force_v1_routes" desc:"Send to the old /v1/input/API_KEY route instead of /api/v2/logs."`

	core
	log      *slog.Logger
	endpoint string
	tcp      *tcpIntake
	split    atomic.Int64 // chunks sent in more than one request
	tooLarge atomic.Int64 // events over the request size limit, dropped
}

// The HTTP intake's documented limits.
const (
	ddMaxEntries = 1000
	ddMaxBytes   = 5_000_000
)

const ddMetaDone = "datadog_done"

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "datadog", Summary: "send events to Datadog's log intake",
		DoneWithDataOnReturn: true,
		Inject:               true,
		New: func() any {
			return &Datadog{UseSSL: true, Port: 80, SSLPort: 443, MaxRetries: -1, MaxBackoff: 30, UseHTTP: true,
				UseCompression: true, CompressionLevel: 6, UseJSON: true, TagKey: "tag", TimestampKey: "@timestamp"}
		}})
}

var (
	_ plugin.BufferedOutput = (*Datadog)(nil)
	_ plugin.EntryFormatter = (*Datadog)(nil)
	_ plugin.Measured       = (*Datadog)(nil)
)

// Configure implements plugin.Configurer.
func (d *Datadog) Configure(c *plugin.Context) error {
	d.log = c.Logger
	if d.DDHostname == "" {
		d.DDHostname = c.Hostname
	}
	if d.Host == "" {
		d.Host = "http-intake.logs.datadoghq.com"
		if !d.UseHTTP {
			d.Host = "intake.logs.datadoghq.com"
		}
	}
	if d.CompressionLevel < 1 || d.CompressionLevel > 9 {
		return fmt.Errorf("compression_level %d: want 1 to 9", d.CompressionLevel)
	}
	port, scheme := d.Port, "http"
	if d.UseSSL {
		port, scheme = d.SSLPort, "https"
	}
	addr := net.JoinHostPort(d.Host, strconv.Itoa(port))
	if !d.UseHTTP {
		d.tcp = &tcpIntake{addr: addr, tls: d.UseSSL, insecure: d.NoSSLValidation, host: d.Host}
		return nil
	}
	path := "/api/v2/logs"
	header := http.Header{"Dd-Api-Key": {d.APIKey}, "Dd-Evp-Origin": {"fluent"}}
	if d.ForceV1Routes {
		path = "/v1/input/" + url.PathEscape(d.APIKey)
		header = nil
	}
	d.endpoint = scheme + "://" + addr + path
	level := d.CompressionLevel
	if level == 6 {
		level = 0 // the library's default, from a pool
	}
	d.clientCfg = ClientConfig{TLS: transport.Client{Insecure: d.NoSSLValidation}, Proxy: d.HTTPProxy,
		AnswerTimeout: 60 * time.Second, Gzip: d.UseCompression, GzipLevel: level, Header: header}
	return nil
}

// Init implements plugin.Initer.
func (d *Datadog) Init(context.Context) error {
	if d.tcp != nil {
		return nil
	}
	return d.startClient()
}

// Close implements plugin.Closer.
func (d *Datadog) Close(ctx context.Context) error {
	_ = d.core.Close(ctx)
	if d.tcp != nil {
		d.tcp.close()
	}
	return nil
}

// Measure implements plugin.Measured.
func (d *Datadog) Measure(report plugin.Report) {
	d.stats.Measure(report)
	report("datadog_split_chunks_total", "Chunks sent in more than one request (over 1,000 events or 5,000,000 bytes).", d.split.Load(), false)
	report("datadog_oversized_events_total", "Events larger than a whole request (5,000,000 bytes), dropped.", d.tooLarge.Load(), false)
}

// FormatEntry implements plugin.EntryFormatter: the enriched event as
// JSON, one per line.
func (d *Datadog) FormatEntry(dst []byte, tag string, t event.Time, r event.Record) ([]byte, error) {
	// One pass over the record finds what the enrichment depends on; the
	// added fields are then written after the record's own JSON, without
	// building a new record, unless one would replace a field it has.
	defaults := [...]struct{ key, value string }{
		{"ddsourcecategory", d.DDSourcecategory}, {"ddsource", d.DDSource}, {"service", d.Service}, {"hostname", d.DDHostname},
	}
	const tagsField, timeField, tagKeyField = len(defaults), len(defaults) + 1, len(defaults) + 2
	var keys [tagKeyField + 1]string
	for i, f := range defaults {
		keys[i] = f.key
	}
	keys[tagsField], keys[timeField] = "ddtags", d.TimestampKey
	if d.IncludeTagKey {
		keys[tagKeyField] = d.TagKey
	}
	var has, set uint8 // the record has field keys[i]; with a value other than nil
	var ddtags, kube, docker event.Value
	if err := r.Each(func(k []byte, v event.Value) bool {
		switch string(k) {
		case "kubernetes":
			if kube == nil {
				kube = v
			}
		case "docker":
			if docker == nil {
				docker = v
			}
		}
		for i, key := range keys {
			if bit := uint8(1) << i; key != "" && has&bit == 0 && string(k) == key {
				has |= bit
				if msgp.NextType(v) != msgp.NilType {
					set |= bit
					if i == tagsField {
						ddtags = v
					}
				}
			}
		}
		return true
	}); err != nil {
		return dst, err
	}
	type field struct {
		key   string
		value []byte
	}
	var added [tagKeyField + 1]field
	fields := added[:0]
	var adds uint8 // which keys fields sets
	for i, f := range defaults {
		if f.value != "" && set&(1<<i) == 0 {
			fields = append(fields, field{f.key, []byte(f.value)})
			adds |= 1 << i
		}
	}
	if d.IncludeTagKey {
		fields = append(fields, field{d.TagKey, []byte(tag)})
		adds |= 1 << tagKeyField
	}
	if d.TimestampKey != "" && set&(1<<timeField) == 0 {
		var ts [32]byte
		fields = append(fields, field{d.TimestampKey, time.Unix(0, int64(t)).UTC().AppendFormat(ts[:0], "2006-01-02T15:04:05.000Z07:00")})
		adds |= 1 << timeField
	}
	var tagBuf [256]byte
	tags := tagBuf[:0]
	if ddtags != nil {
		tags = ddtags.AppendText(tags)
	} else {
		tags = append(tags, d.DDTags...)
	}
	tags = appendContainerTags(tags, kube, docker)
	if len(tags) > 0 {
		fields = append(fields, field{"ddtags", tags})
		adds |= 1 << tagsField
	}
	start := len(dst)
	if !d.UseHTTP {
		dst = append(dst, d.APIKey...)
		dst = append(dst, ' ')
	}
	if has&adds != 0 {
		// A field replaced: Fluentd's record[key] = value, as a new record.
		kv := make([]string, 0, 2*len(fields))
		for _, f := range fields {
			kv = append(kv, f.key, string(f.value))
		}
		b, err := event.AppendRecordFields(nil, r, kv...)
		if err != nil {
			return dst[:start], err
		}
		r, fields = event.Record(b), nil
	}
	dst, err := r.AppendJSON(dst)
	if err != nil {
		return dst[:start], err
	}
	if len(fields) > 0 {
		dst = dst[:len(dst)-1] // the record's closing brace
		for i, f := range fields {
			if i > 0 || dst[len(dst)-1] != '{' {
				dst = append(dst, ',')
			}
			dst = event.AppendJSONString(dst, []byte(f.key))
			dst = append(dst, ':')
			dst = event.AppendJSONString(dst, f.value)
		}
		dst = append(dst, '}')
	}
	return append(dst, '\n'), nil
}

// appendContainerTags appends the Kubernetes and Docker tags the Ruby
// plugin adds (image_name, container_name, kube_namespace, pod_name,
// container_id) to tags, comma-separated.
func appendContainerTags(tags []byte, kube, docker event.Value) []byte {
	for _, t := range [...]struct {
		name   string
		parent event.Value
		key    string
	}{
		{"image_name", kube, "container_image"}, {"container_name", kube, "container_name"},
		{"kube_namespace", kube, "namespace_name"}, {"pod_name", kube, "pod_name"},
		{"container_id", docker, "container_id"},
	} {
		if t.parent == nil || msgp.NextType(t.parent) != msgp.MapType {
			continue
		}
		if v, ok := event.Record(t.parent).Get(t.key); ok && msgp.NextType(v) == msgp.StrType {
			if len(tags) > 0 {
				tags = append(tags, ',')
			}
			tags = append(tags, t.name...)
			tags = append(tags, ':')
			tags = v.AppendText(tags)
		}
	}
	return tags
}

// Write implements plugin.BufferedOutput.
func (d *Datadog) Write(ctx context.Context, c *plugin.Chunk) error {
	if d.tcp != nil {
		return d.tcp.send(ctx, c, &d.stats)
	}
	done := plugin.LoadEntrySet(c, ddMetaDone)
	lines := bytes.SplitAfter(c.Data, []byte("\n"))
	if n := len(lines); n > 0 && len(lines[n-1]) == 0 {
		lines = lines[:n-1]
	}
	var batch []int // entry indexes
	size := 0
	requests := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		body := make([]byte, 0, size+len(batch)+2)
		body = append(body, '[')
		for i, idx := range batch {
			if i > 0 {
				body = append(body, ',')
			}
			body = append(body, bytes.TrimSuffix(lines[idx], []byte("\n"))...)
		}
		body = append(body, ']')
		requests++
		err := d.post(ctx, body, len(batch))
		if err != nil {
			return err
		}
		for _, idx := range batch {
			done.Add(idx)
		}
		plugin.Delivered(ctx, done.Count())
		if err := done.Save(c, ddMetaDone); err != nil {
			return err
		}
		batch, size = batch[:0], 0
		return nil
	}
	for i, line := range lines {
		if done.Has(i) {
			continue
		}
		n := len(line) // the JSON, and its newline stands for the comma
		if n+2 > ddMaxBytes {
			d.tooLarge.Add(1)
			d.log.Warn("an event is larger than a whole Datadog request (5,000,000 bytes); dropped", "bytes", len(line))
			done.Add(i)
			continue
		}
		if len(batch) == ddMaxEntries || size+n+2 > ddMaxBytes {
			if err := flush(); err != nil {
				return err
			}
		}
		batch = append(batch, i)
		size += n
	}
	if err := flush(); err != nil {
		return err
	}
	if requests > 1 {
		d.split.Add(1)
	}
	return nil
}

// post sends one batch; a refusal that is not retried is logged and the
// batch counted as dropped.
func (d *Datadog) post(ctx context.Context, body []byte, records int) error {
	a, err := d.client.Do(ctx, Request{Method: http.MethodPost, URL: d.endpoint, Body: body,
		ContentType: "application/json", Records: records})
	if err != nil {
		return err
	}
	err = Outcome(a, RetryUsual)
	if err != nil && plugin.IsPermanent(err) {
		d.log.Error("Datadog refused a batch; dropped, as the Ruby plugin drops client errors", "status", a.Status,
			"records", records, "answer", strings.TrimSpace(string(a.Body)))
		d.stats.Dropped.Add(int64(records))
		return nil
	}
	return err
}

// tcpIntake is the TCP (or TLS) intake: one connection, reused, each
// event a line; a failed write closes it, and the chunk is sent again
// whole (the intake does not say which lines it read).
type tcpIntake struct {
	addr, host    string
	tls, insecure bool
	mu            sync.Mutex
	conn          net.Conn
	w             *bufio.Writer
}

func (t *tcpIntake) send(ctx context.Context, c *plugin.Chunk, stats *Stats) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	stats.Requests.Add(1)
	stats.BytesSent.Add(int64(len(c.Data)))
	if t.conn == nil {
		if err := t.dial(ctx); err != nil {
			stats.Failed.Add(1)
			return err
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = t.conn.SetWriteDeadline(dl)
	} else {
		_ = t.conn.SetWriteDeadline(time.Now().Add(time.Minute))
	}
	_, err := t.w.Write(c.Data)
	if err == nil {
		err = t.w.Flush()
	}
	if err != nil {
		stats.Failed.Add(1)
		stats.Ambiguous.Add(int64(c.Records))
		t.closeLocked()
		return fmt.Errorf("datadog TCP intake %s: %w", t.addr, err)
	}
	return nil
}

func (t *tcpIntake) dial(ctx context.Context) error {
	d := &net.Dialer{Timeout: 30 * time.Second}
	var conn net.Conn
	var err error
	if t.tls {
		td := &tls.Dialer{NetDialer: d, Config: &tls.Config{ServerName: t.host, InsecureSkipVerify: t.insecure, MinVersion: tls.VersionTLS12}}
		conn, err = td.DialContext(ctx, "tcp", t.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", t.addr)
	}
	if err != nil {
		return fmt.Errorf("datadog TCP intake %s: %w", t.addr, err)
	}
	t.conn, t.w = conn, bufio.NewWriterSize(conn, 64<<10)
	return nil
}

func (t *tcpIntake) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.closeLocked()
}

func (t *tcpIntake) closeLocked() {
	if t.conn != nil {
		_ = t.conn.Close()
		t.conn, t.w = nil, nil
	}
}
