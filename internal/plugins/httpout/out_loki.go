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
	index   int      // among the chunk's streams
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
// first appear, each stream's entries sorted by time. The label values'
// bytes, as the record holds them, find an event's stream without building
// its labels: those are built once per distinct set of values.
func (l *Loki) streams(c *plugin.Chunk, thread int) ([]*lokiStream, error) {
	bySet := map[string]*lokiStream{}    // by the sorted labels, joined
	byValues := map[string]*lokiStream{} // by labelValues
	var order []*lokiStream
	var values, scratch, text []byte
	lines := make([]byte, 0, len(c.Data)) // rendered lines take about what the records did
	type span struct{ start, end int }
	var spans [][]span // per stream in order, where its entries' lines are
	r := c.Entries()
	for r.Next() {
		e := r.Entry()
		values = l.labelValues(values[:0], e.Record)
		s := byValues[string(values)]
		if s == nil {
			labels := l.labelsOf(e.Record, thread)
			key := strings.Join(labels, "\x00")
			if s = bySet[key]; s == nil {
				s = &lokiStream{labels: labels, key: key, index: len(order)}
				bySet[key] = s
				order = append(order, s)
				spans = append(spans, nil)
			}
			byValues[string(values)] = s
		}
		var err error
		scratch, err = event.AppendWithout(scratch[:0], e.Record, l.remove)
		if err != nil {
			return nil, fmt.Errorf("record: %w", err)
		}
		start := len(lines)
		if lines, text, err = l.line(lines, text, event.Record(scratch)); err != nil {
			return nil, err
		}
		s.entries = append(s.entries, lokiEntry{ts: int64(e.Time)})
		spans[s.index] = append(spans[s.index], span{start, len(lines)})
	}
	if err := r.Err(); err != nil {
		return nil, err
	}
	for _, s := range order {
		// The lines' arena is final now: the entries can point into it.
		for i, sp := range spans[s.index] {
			s.entries[i].line = lines[sp.start:sp.end:sp.end]
		}
		slices.SortStableFunc(s.entries, func(a, b lokiEntry) int { return cmp.Compare(a.ts, b.ts) })
	}
	return order, nil
}

// labelValues appends what decides an event's labels as the record holds
// it: each label field's string value (or its absence) and, with
// extract_kubernetes_labels, kubernetes.labels. Two events with the same
// bytes here have the same labels.
func (l *Loki) labelValues(dst []byte, rec event.Record) []byte {
	for _, lb := range l.labels {
		if v, ok := rec.Lookup(lb.path); ok && msgp.NextType(v) == msgp.StrType {
			dst = append(dst, 1)
			dst = append(dst, v...) // a msgpack string carries its length
		} else {
			dst = append(dst, 0)
		}
	}
	if l.ExtractKubernetesLabels {
		if v, ok := rec.Lookup([]string{"kubernetes", "labels"}); ok && msgp.NextType(v) == msgp.MapType {
			dst = append(dst, v...) // one msgpack value: its own extent
		}
	}
	return dst
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

// line appends what is left of the record, as the log line, to dst; text
// is scratch space, returned for the next line.
func (l *Loki) line(dst, text []byte, rec event.Record) ([]byte, []byte, error) {
	if l.DropSingleKey && rec.Len() == 1 {
		_ = rec.Each(func(_ []byte, v event.Value) bool {
			dst = v.AppendText(dst)
			return false
		})
		return dst, text, nil
	}
	if l.LineFormat == "json" {
		dst, err := rec.AppendJSON(dst)
		return dst, text, err
	}
	start := len(dst)
	var err error
	_ = rec.Each(func(k []byte, v event.Value) bool {
		if len(dst) > start {
			dst = append(dst, ' ')
		}
		dst = append(dst, k...)
		dst = append(dst, '=')
		text = text[:0]
		switch msgp.NextType(v) {
		case msgp.MapType, msgp.ArrayType:
			// Ruby prints its own inspect form here; JSON is the nearest
			// that other tools read.
			if text, err = v.AppendJSON(text); err != nil {
				return false
			}
		case msgp.NilType:
		default:
			text = v.AppendText(text)
		}
		dst = appendKeyValue(dst, text)
		return true
	})
	return dst, text, err
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
	size := 16
	for _, s := range streams {
		size += 32 + len(s.key)
		for _, e := range s.entries {
			size += len(e.line) + 26 // the time, quotes and brackets
		}
	}
	b := make([]byte, 0, size+size/16) // and some escaping
	b = append(b, `{"streams":[`...)
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
// Lengths come first in protobuf, so each message's size is worked out
// before it is written: the body is written once, into one allocation.
func pushProtobuf(streams []*lokiStream) []byte {
	tsSize := func(e lokiEntry) int {
		n := protowire.SizeTag(1) + protowire.SizeVarint(uint64(e.ts/1e9))
		if nanos := e.ts % 1e9; nanos != 0 {
			n += protowire.SizeTag(2) + protowire.SizeVarint(uint64(nanos))
		}
		return n
	}
	entrySize := func(e lokiEntry) int {
		return protowire.SizeTag(1) + protowire.SizeBytes(tsSize(e)) + protowire.SizeTag(2) + protowire.SizeBytes(len(e.line))
	}
	selectors := make([]string, len(streams))
	sizes := make([]int, len(streams))
	total := 0
	for i, s := range streams {
		selectors[i] = selector(s.labels)
		n := protowire.SizeTag(1) + protowire.SizeBytes(len(selectors[i]))
		for _, e := range s.entries {
			n += protowire.SizeTag(2) + protowire.SizeBytes(entrySize(e))
		}
		sizes[i] = n
		total += protowire.SizeTag(1) + protowire.SizeBytes(n)
	}
	out := make([]byte, 0, total)
	for i, s := range streams {
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendVarint(out, uint64(sizes[i]))
		out = protowire.AppendTag(out, 1, protowire.BytesType)
		out = protowire.AppendString(out, selectors[i])
		for _, e := range s.entries {
			out = protowire.AppendTag(out, 2, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(entrySize(e)))
			out = protowire.AppendTag(out, 1, protowire.BytesType)
			out = protowire.AppendVarint(out, uint64(tsSize(e)))
			out = protowire.AppendTag(out, 1, protowire.VarintType)
			out = protowire.AppendVarint(out, uint64(e.ts/1e9))
			if nanos := e.ts % 1e9; nanos != 0 {
				out = protowire.AppendTag(out, 2, protowire.VarintType)
				out = protowire.AppendVarint(out, uint64(nanos))
			}
			out = protowire.AppendTag(out, 2, protowire.BytesType)
			out = protowire.AppendBytes(out, e.line)
		}
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
