package httpout

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/tinylib/msgp/msgp"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// Loki is fluent-plugin-grafana-loki's loki output: each chunk is one
// push to /loki/api/v1/push, its events grouped into streams by label
// set, each stream's entries sorted by time (ties keep their order), as
// Loki requires.
//
// Labels come from extra_labels, the <label> section (record fields or
// record accessors, taken out of the line), the Kubernetes labels with
// extract_kubernetes_labels, and fluentd_thread when there are several
// flush threads. The line is the rest of the record, as key=value pairs
// or JSON.
//
// Answers: 2xx is done; 429 and 5xx are retried. Any other status (400
// for an entry out of order or too old, a line too long) fails the chunk
// for good: Loki took the stream's other entries, so sending it again
// would duplicate them. The Ruby plugin logs and drops such a chunk;
// Sluice sends it to <secondary> (or the backup directory).
type Loki struct {
	URL                     string            `conf:"url" desc:"Loki's base URL; pushes go to URL/loki/api/v1/push."`
	Username                string            `conf:"username" desc:"The user of basic authentication."`
	Password                string            `conf:"password" desc:"The password of basic authentication."`
	BearerTokenFile         string            `conf:"bearer_token_file" desc:"A file holding a bearer token for the Authorization header; read before each push, so a rotated token is picked up."`
	Cert                    string            `conf:"cert" desc:"A PEM client certificate, for servers that ask for one."`
	Key                     string            `conf:"key" desc:"The PEM private key of cert."`
	CACert                  string            `conf:"ca_cert" desc:"The PEM CA certificates to trust instead of the system's."`
	Ciphers                 string            `conf:"ciphers" desc:"Accepted for compatibility (OpenSSL cipher names)." ignored:"Go's cipher suites for the TLS version are used"`
	MinVersion              string            `conf:"min_version" desc:"The lowest TLS version (TLS1_2 or TLS1_3; older ones are raised to TLS1_2)."`
	InsecureTLS             bool              `conf:"insecure_tls" desc:"Do not verify the server's certificate."`
	CustomHeaders           map[string]string `conf:"custom_headers" desc:"Headers added to every push, as a hash."`
	Compress                string            `conf:"compress" enum:"gzip,snappy" desc:"gzip compresses the JSON body; snappy sends the protobuf body Loki's own clients send (snappy-compressed PushRequest), which Loki decodes with less work."`
	Tenant                  string            `conf:"tenant" desc:"The tenant (X-Scope-OrgID header); ${tag} and chunk-key placeholders take the chunk's values."`
	ExtraLabels             map[string]string `conf:"extra_labels" desc:"Labels added to every stream, as a hash; they win over labels from records."`
	LineFormat              string            `conf:"line_format" enum:"json,key_value" desc:"How the record becomes the log line: key=value pairs or JSON."`
	ExtractKubernetesLabels bool              `conf:"extract_kubernetes_labels" desc:"Make the record's kubernetes.labels stream labels (. - / in names become _)."`
	RemoveKeys              []string          `conf:"remove_keys" desc:"Fields (or record accessors) left out of the line."`
	DropSingleKey           bool              `conf:"drop_single_key" desc:"When the record has one field left, the line is its value alone."`
	IncludeThreadLabel      bool              `conf:"include_thread_label" desc:"With several flush threads, label each stream with the thread that sends it (fluentd_thread), so that one thread's pushes stay in order."`
	Label                   *config.Element   `section:"label" desc:"Stream labels from record fields: one line per label, the label name then a field or record accessor ($.kubernetes.pod_name); the name alone takes the field of that name. The fields are left out of the line."`

	core
	log     *slog.Logger
	push    string
	tenant  *buffer.Template
	loc     *time.Location
	labels  []lokiLabel
	remove  [][]string // remove_keys, and the label fields
	threads chan int   // a slot per flush thread, for fluentd_thread
}

// lokiLabel is one <label> line: the label's name and the field it comes
// from.
type lokiLabel struct {
	name string
	path []string
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "loki", Summary: "push events to Grafana Loki",
		DoneWithDataOnReturn: true,
		Inject:               true,
		Sections:             map[string]plugin.Section{"label": {}},
		New: func() any {
			return &Loki{URL: "https://logs-prod-us-central1.grafana.net", LineFormat: "key_value", IncludeThreadLabel: true}
		}})
}

var (
	_ plugin.BufferedOutput = (*Loki)(nil)
	_ plugin.Measured       = (*Loki)(nil)
)

// Configure implements plugin.Configurer.
func (l *Loki) Configure(c *plugin.Context) error {
	l.log = c.Logger
	l.loc = c.Location
	u, err := url.Parse(strings.TrimSuffix(l.URL, "/") + "/loki/api/v1/push")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q: want an http or https URL", l.URL)
	}
	l.push = u.String()
	if l.Tenant != "" {
		if l.tenant, err = buffer.NewTemplate(l.Tenant, c.ChunkKeys); err != nil {
			return fmt.Errorf("tenant: %w", err)
		}
	}
	if l.Label != nil {
		l.Label.MarkAllUsed()
		for _, p := range l.Label.Params {
			field := strings.TrimSpace(p.Value)
			if field == "" {
				field = p.Key
			}
			path, err := buffer.RecordPath(field)
			if err != nil {
				return config.Errorf(p.Pos, "<label> %s: %v", p.Key, err)
			}
			l.labels = append(l.labels, lokiLabel{name: labelName(p.Key), path: path})
			l.remove = append(l.remove, path)
		}
	}
	for _, k := range l.RemoveKeys {
		path, err := buffer.RecordPath(strings.TrimSpace(k))
		if err != nil {
			return fmt.Errorf("remove_keys: %w", err)
		}
		l.remove = append(l.remove, path)
	}
	if n := flushThreads(c.Element); l.IncludeThreadLabel && n > 1 {
		l.threads = make(chan int, n)
		for i := range n {
			l.threads <- i
		}
	}
	header := http.Header{}
	for k, v := range l.CustomHeaders {
		header.Set(k, v)
	}
	l.clientCfg = ClientConfig{
		TLS: transport.Client{MinVersion: TLSVersion(cmp.Or(l.MinVersion, "TLS1_2")), CertPath: l.Cert, KeyPath: l.Key,
			Insecure: l.InsecureTLS},
		Gzip: l.Compress == "gzip", Header: header, BearerFile: l.BearerTokenFile, AnswerTimeout: 60 * time.Second,
	}
	if l.CACert != "" {
		l.clientCfg.TLS.CAPaths = []string{l.CACert}
	}
	if l.Username != "" {
		l.clientCfg.Basic = &[2]string{l.Username, l.Password}
	}
	if l.BearerTokenFile != "" {
		if _, err := readToken(l.BearerTokenFile); err != nil {
			return err
		}
	}
	return nil
}

// flushThreads reads the output's <buffer> flush_thread_count (1 unless
// set).
func flushThreads(e *config.Element) int {
	if e == nil {
		return 1
	}
	for _, b := range e.Sections("buffer") {
		if v, ok := b.Get("flush_thread_count"); ok {
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				return n
			}
		}
	}
	return 1
}

// labelName makes a valid Prometheus label name: . - / (what the Ruby
// plugin replaces) and any other byte outside [a-zA-Z0-9_] become _, and a
// leading digit gets a _ before it.
func labelName(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' {
		b = append([]byte{'_'}, b...)
	}
	return string(b)
}

// Init implements plugin.Initer.
func (l *Loki) Init(context.Context) error {
	return l.startClient()
}

// lokiStream is one label set's entries.
type lokiStream struct {
	labels  []string // name, value, ... sorted by name
	key     string   // labels joined, to group by
	entries []lokiEntry
}

type lokiEntry struct {
	ts   int64
	line []byte
}

// Write implements plugin.BufferedOutput.
func (l *Loki) Write(ctx context.Context, c *plugin.Chunk) error {
	var header http.Header
	if l.tenant != nil {
		tenant, err := l.tenant.Expand(c.Key, l.loc)
		if err != nil {
			return &plugin.Permanent{Err: fmt.Errorf("tenant: %w", err)}
		}
		header = http.Header{"X-Scope-Orgid": {tenant}}
	}
	thread := -1
	if l.threads != nil {
		thread = <-l.threads
		defer func() { l.threads <- thread }()
	}
	streams, err := l.streams(c, thread)
	if err != nil {
		return &plugin.Permanent{Err: err}
	}
	req := Request{Method: http.MethodPost, URL: l.push, Header: header, Records: c.Records}
	if l.Compress == "snappy" {
		req.Body = snappy.Encode(nil, pushProtobuf(streams))
		req.ContentType = "application/x-protobuf"
	} else {
		req.Body = pushJSON(streams)
		req.ContentType = "application/json"
	}
	a, err := l.client.Do(ctx, req)
	if err != nil {
		return err
	}
	if err := Outcome(a, retryLoki); err != nil {
		l.log.Warn("Loki refused the push", "status", a.Status, "records", c.Records, "err", err)
		return err
	}
	return nil
}

// retryLoki: the Ruby plugin retries 429 and 5xx only.
func retryLoki(status int) bool { return status == http.StatusTooManyRequests || status >= 500 }

// streams groups the chunk's events by label set, in the order the sets
// first appear, each stream's entries sorted by time.
func (l *Loki) streams(c *plugin.Chunk, thread int) ([]*lokiStream, error) {
	byKey := map[string]*lokiStream{}
	var order []*lokiStream
	r := c.Entries()
	var scratch []byte
	for r.Next() {
		e := r.Entry()
		labels := l.labelsOf(e.Record, thread)
		key := strings.Join(labels, "\x00")
		s := byKey[key]
		if s == nil {
			s = &lokiStream{labels: labels, key: key}
			byKey[key] = s
			order = append(order, s)
		}
		var err error
		scratch, err = event.AppendWithout(scratch[:0], e.Record, l.remove)
		if err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		line, err := l.line(event.Record(scratch))
		if err != nil {
			return nil, err
		}
		s.entries = append(s.entries, lokiEntry{ts: int64(e.Time), line: line})
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	for _, s := range order {
		slices.SortStableFunc(s.entries, func(a, b lokiEntry) int { return cmp.Compare(a.ts, b.ts) })
	}
	return order, nil
}

// labelsOf returns an event's labels, sorted by name: the record's, then
// extra_labels over them. Only string values make labels, as in the Ruby
// plugin.
func (l *Loki) labelsOf(rec event.Record, thread int) []string {
	m := map[string]string{}
	for _, lb := range l.labels {
		if v, ok := rec.Lookup(lb.path); ok {
			if s, ok := v.Bytes(); ok && msgp.NextType(v) == msgp.StrType {
				m[lb.name] = string(s)
			}
		}
	}
	if l.ExtractKubernetesLabels {
		if v, ok := rec.Lookup([]string{"kubernetes", "labels"}); ok && msgp.NextType(v) == msgp.MapType {
			_ = event.Record(v).Each(func(k []byte, v event.Value) bool {
				if s, ok := v.Bytes(); ok && msgp.NextType(v) == msgp.StrType {
					m[labelName(string(k))] = string(s)
				}
				return true
			})
		}
	}
	if thread >= 0 {
		m["fluentd_thread"] = "flush_thread_" + strconv.Itoa(thread)
	}
	for k, v := range l.ExtraLabels {
		m[labelName(k)] = v
	}
	out := make([]string, 0, 2*len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k, m[k])
	}
	return out
}

// line renders what is left of the record as the log line.
func (l *Loki) line(rec event.Record) ([]byte, error) {
	if l.DropSingleKey && rec.Len() == 1 {
		var line []byte
		_ = rec.Each(func(_ []byte, v event.Value) bool {
			line = v.AppendText(nil)
			return false
		})
		return line, nil
	}
	if l.LineFormat == "json" {
		return rec.AppendJSON(nil)
	}
	var line []byte
	var err error
	_ = rec.Each(func(k []byte, v event.Value) bool {
		if len(line) > 0 {
			line = append(line, ' ')
		}
		line = append(line, k...)
		line = append(line, '=')
		var text []byte
		switch msgp.NextType(v) {
		case msgp.MapType, msgp.ArrayType:
			// Ruby prints its own inspect form here; JSON is the nearest
			// that other tools read.
			if text, err = v.AppendJSON(nil); err != nil {
				return false
			}
		case msgp.NilType:
		default:
			text = v.AppendText(nil)
		}
		line = appendKeyValue(line, text)
		return true
	})
	return line, err
}

// appendKeyValue writes a key_value value: backslashes and quotes escaped,
// in quotes when it holds a space or '='.
func appendKeyValue(dst, v []byte) []byte {
	quote := strings.ContainsAny(string(v), " =")
	if quote {
		dst = append(dst, '"')
	}
	for _, c := range v {
		if c == '"' || c == '\\' {
			dst = append(dst, '\\')
		}
		dst = append(dst, c)
	}
	if quote {
		dst = append(dst, '"')
	}
	return dst
}

// pushJSON is the JSON push body:
// {"streams":[{"stream":{labels},"values":[["<ns>","<line>"],...]},...]}.
func pushJSON(streams []*lokiStream) []byte {
	b := append([]byte(nil), `{"streams":[`...)
	for i, s := range streams {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"stream":{`...)
		for j := 0; j < len(s.labels); j += 2 {
			if j > 0 {
				b = append(b, ',')
			}
			b = event.AppendJSONString(b, []byte(s.labels[j]))
			b = append(b, ':')
			b = event.AppendJSONString(b, []byte(s.labels[j+1]))
		}
		b = append(b, `},"values":[`...)
		for j, e := range s.entries {
			if j > 0 {
				b = append(b, ',')
			}
			b = append(b, `["`...)
			b = strconv.AppendInt(b, e.ts, 10)
			b = append(b, `",`...)
			b = event.AppendJSONString(b, e.line)
			b = append(b, ']')
		}
		b = append(b, "]}"...)
	}
	return append(b, "]}"...)
}

// pushProtobuf is logproto.PushRequest: streams (1) of StreamAdapter
// {labels (1) string, entries (2) of EntryAdapter {timestamp (1)
// google.protobuf.Timestamp {seconds (1), nanos (2)}, line (2)}}. The
// labels are a label selector: {name="value", ...}.
func pushProtobuf(streams []*lokiStream) []byte {
	var out, stream, entry, ts []byte
	for _, s := range streams {
		stream = protowire.AppendTag(stream[:0], 1, protowire.BytesType)
		stream = protowire.AppendString(stream, selector(s.labels))
		for _, e := range s.entries {
			ts = protowire.AppendTag(ts[:0], 1, protowire.VarintType)
			ts = protowire.AppendVarint(ts, uint64(e.ts/1e9))
			if nanos := e.ts % 1e9; nanos != 0 {
				ts = protowire.AppendTag(ts, 2, protowire.VarintType)
				ts = protowire.AppendVarint(ts, uint64(nanos))
			}
			entry = protowire.AppendTag(entry[:0], 1, protowire.BytesType)
			entry = protowire.AppendBytes(entry, ts)
			entry = protowire.AppendTag(entry, 2, protowire.BytesType)
			entry = protowire.AppendBytes(entry, e.line)
			stream = protowire.AppendTag(stream, 2, protowire.BytesType)
			stream = protowire.AppendBytes(stream, entry)
		}
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendBytes(out, stream)
	}
	return out
}

// selector writes labels as Loki's protobuf wants them: {a="x", b="y"},
// values quoted as Go (and PromQL) strings.
func selector(labels []string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i < len(labels); i += 2 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(labels[i])
		b.WriteByte('=')
		b.WriteString(strconv.Quote(labels[i+1]))
	}
	b.WriteByte('}')
	return b.String()
}
