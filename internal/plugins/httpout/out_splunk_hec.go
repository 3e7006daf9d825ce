package httpout

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// SplunkHEC is fluent-plugin-splunk-hec's splunk_hec output: each event
// becomes one HEC event object ({"host", "time", "index", "source",
// "sourcetype", "fields", "event"}), formatted when it is buffered, and a
// chunk is one POST to /services/collector.
//
// Answers: 2xx is done; 429 and 5xx are retried; other 4xx answers are
// logged and the chunk dropped (counted), as the Ruby plugin consumes
// them, or retried with consume_chunk_on_4xx_errors false.
//
// With use_ack (a Sluice addition) the token's indexer acknowledgement is
// used: each POST carries a channel, and the chunk is done only once
// /services/collector/ack says the indexers hold its events.
type SplunkHEC struct {
	Protocol              string          `conf:"protocol" enum:"http,https" desc:"The scheme of the HEC URL."`
	HECHost               string          `conf:"hec_host" desc:"The HEC host or load balancer (required unless full_url is set)."`
	HECPort               int             `conf:"hec_port" desc:"The HEC port."`
	HECToken              string          `conf:"hec_token,required" desc:"The HEC token (Authorization: Splunk TOKEN)."`
	FullURL               string          `conf:"full_url" desc:"The whole collector URL, instead of protocol, hec_host and hec_port."`
	IdleTimeout           time.Duration   `conf:"idle_timeout" desc:"How long an unused connection is kept open."`
	ReadTimeout           time.Duration   `conf:"read_timeout" desc:"How long the answer may take once the request is sent (0: 60 s)."`
	OpenTimeout           time.Duration   `conf:"open_timeout" desc:"How long opening a connection may take (0: 30 s)."`
	ClientCert            string          `conf:"client_cert" desc:"A PEM client certificate."`
	ClientKey             string          `conf:"client_key" desc:"The PEM private key of client_cert."`
	CAFile                string          `conf:"ca_file" desc:"A PEM file of CA certificates to trust instead of the system's."`
	CAPath                string          `conf:"ca_path" desc:"A directory of PEM CA certificates to trust instead of the system's."`
	SSLCiphers            []string        `conf:"ssl_ciphers" desc:"Accepted for compatibility (OpenSSL cipher names)." ignored:"Go's cipher suites for the TLS version are used"`
	InsecureSSL           bool            `conf:"insecure_ssl" desc:"Do not verify the server's certificate."`
	DataType              string          `conf:"data_type" enum:"event,metric" desc:"event, or metric for a metrics index."`
	Index                 string          `conf:"index" desc:"The index events go to (${tag} for the tag); HEC decides when unset."`
	IndexKey              string          `conf:"index_key" desc:"The record field (a.b for nested) holding the index."`
	Host                  string          `conf:"host" desc:"The host field of events (${tag} for the tag); the machine's host name when unset."`
	HostKey               string          `conf:"host_key" desc:"The record field holding the host."`
	Source                string          `conf:"source" desc:"The source field of events (${tag} for the tag)."`
	SourceKey             string          `conf:"source_key" desc:"The record field holding the source."`
	Sourcetype            string          `conf:"sourcetype" desc:"The sourcetype field of events (${tag} for the tag)."`
	SourcetypeKey         string          `conf:"sourcetype_key" desc:"The record field holding the sourcetype."`
	TimeKey               string          `conf:"time_key" desc:"The record field holding the event time, instead of the event's own."`
	MetricsFromEvent      bool            `conf:"metrics_from_event" desc:"With data_type metric: every field of a record is a metric (name and value)."`
	MetricNameKey         string          `conf:"metric_name_key" desc:"With data_type metric: the field holding the metric name."`
	MetricValueKey        string          `conf:"metric_value_key" desc:"With data_type metric: the field holding the metric value."`
	KeepKeys              bool            `conf:"keep_keys" desc:"Keep the fields the *_key parameters read in the event."`
	AppName               string          `conf:"app_name" desc:"Sent as the __splunk_app_name header."`
	AppVersion            string          `conf:"app_version" desc:"Sent as the __splunk_app_version header."`
	GzipCompression       bool            `conf:"gzip_compression" desc:"gzip request bodies (Content-Encoding: gzip)."`
	ConsumeChunkOn4xx     bool            `conf:"consume_chunk_on_4xx_errors" desc:"Drop (and count) a chunk HEC refuses with a 4xx other than 429, as the Ruby plugin does; false retries it."`
	CoerceToUTF8          bool            `conf:"coerce_to_utf8" desc:"Replace bytes that are not UTF-8 with non_utf8_replacement_string."`
	NonUTF8Replacement    string          `conf:"non_utf8_replacement_string" desc:"What coerce_to_utf8 puts in place of bytes that are not UTF-8."`
	UseAck                bool            `conf:"use_ack" desc:"Use the token's indexer acknowledgement: a chunk is done when /services/collector/ack confirms it (a Sluice addition)."`
	Channel               string          `conf:"channel" desc:"The HEC channel (a UUID) sent with use_ack; a random one per start when unset."`
	AckQueryInterval      time.Duration   `conf:"ack_query_interval" desc:"How often the acknowledgement of a chunk is asked for."`
	AckTimeout            time.Duration   `conf:"ack_timeout" desc:"How long a chunk waits for its acknowledgement before it is sent again (and counted as possibly duplicated)."`
	Fields                *config.Element `section:"fields" desc:"Index-time fields (metric dimensions for metrics): one line per field, its name then the record field; the name alone takes the field of that name. The fields are taken out of the event."`
	Format                *config.Element `section:"format" desc:"How the event is written; json (without a newline) unless @type says otherwise."`
	fieldNames, fieldFrom []string
	core
	log                   *slog.Logger
	hostname              string
	formatter             plugin.Formatter
	api, ackURL           string
	keyFields             map[string][]string // index, host, source, sourcetype, time, metric_name, metric_value → path
	removeKeys            [][]string
	ackWaits, ackTimeouts atomic.Int64
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "splunk_hec", Summary: "send events to Splunk's HTTP Event Collector",
		DoneWithDataOnReturn: true,
		Inject:               true,
		Sections: map[string]plugin.Section{
			"fields": {},
			"format": {Kind: plugin.KindFormatter, Default: "json"},
		},
		New: func() any {
			return &SplunkHEC{Protocol: "https", HECPort: 8088, IdleTimeout: 5 * time.Second, DataType: "event",
				MetricsFromEvent: true, AppName: "hec_plugin_gem", AppVersion: "1.3.3", ConsumeChunkOn4xx: true,
				CoerceToUTF8: true, NonUTF8Replacement: " ", AckQueryInterval: time.Second, AckTimeout: 60 * time.Second}
		}})
}

var (
	_ plugin.BufferedOutput = (*SplunkHEC)(nil)
	_ plugin.EntryFormatter = (*SplunkHEC)(nil)
	_ plugin.Measured       = (*SplunkHEC)(nil)
)

// Configure implements plugin.Configurer.
func (s *SplunkHEC) Configure(c *plugin.Context) error {
	s.log = c.Logger
	s.hostname = c.Hostname
	api := s.FullURL
	if api == "" {
		if s.HECHost == "" {
			return fmt.Errorf("hec_host (or full_url) is required")
		}
		api = s.Protocol + "://" + net.JoinHostPort(s.HECHost, strconv.Itoa(s.HECPort)) + "/services/collector"
	}
	u, err := url.Parse(api)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("hec_host (%s) and/or hec_port (%d) are invalid", s.HECHost, s.HECPort)
	}
	s.api = u.String()
	ack := *u
	ack.Path = strings.TrimSuffix(strings.TrimSuffix(ack.Path, "/"), "/event") + "/ack"
	s.ackURL = ack.String()
	s.keyFields = map[string][]string{}
	for _, f := range []struct {
		name, value, key string
	}{{"index", s.Index, s.IndexKey}, {"host", s.Host, s.HostKey}, {"source", s.Source, s.SourceKey},
		{"sourcetype", s.Sourcetype, s.SourcetypeKey}, {"metric_name", "", s.MetricNameKey}, {"metric_value", "", s.MetricValueKey}} {
		if f.value != "" && f.key != "" {
			return fmt.Errorf("can not set %s and %s_key at the same time", f.name, f.name)
		}
		if f.key != "" {
			path := strings.Split(f.key, ".")
			s.keyFields[f.name] = path
			if !s.KeepKeys {
				s.removeKeys = append(s.removeKeys, path)
			}
		}
	}
	if s.TimeKey != "" {
		s.keyFields["time"] = strings.Split(s.TimeKey, ".")
	}
	if s.DataType == "metric" {
		if s.MetricNameKey != "" {
			s.MetricsFromEvent = false
		}
		if !s.MetricsFromEvent && (s.MetricNameKey == "" || s.MetricValueKey == "") {
			return fmt.Errorf("data_type metric: metric_name_key and metric_value_key are required when metrics_from_event is false")
		}
	}
	if s.Fields != nil {
		s.Fields.MarkAllUsed()
		for _, p := range s.Fields.Params {
			from := strings.TrimSpace(p.Value)
			if from == "" {
				from = p.Key
			}
			s.fieldNames = append(s.fieldNames, p.Key)
			s.fieldFrom = append(s.fieldFrom, from)
			s.removeKeys = append(s.removeKeys, []string{from})
		}
	}
	f, err := c.Build.Formatter(s.Format, "json")
	if err != nil {
		return err
	}
	s.formatter = f
	if s.UseAck && s.Channel == "" {
		s.Channel = newUUID()
	}
	header := http.Header{
		"Authorization":        {"Splunk " + s.HECToken},
		"User-Agent":           {"sluice-splunk_hec"},
		"__splunk_app_name":    {s.AppName},
		"__splunk_app_version": {s.AppVersion},
	}
	if s.UseAck {
		header.Set("X-Splunk-Request-Channel", s.Channel)
	}
	s.clientCfg = ClientConfig{
		TLS:            transport.Client{CertPath: s.ClientCert, KeyPath: s.ClientKey, Insecure: s.InsecureSSL},
		ConnectTimeout: s.OpenTimeout, AnswerTimeout: orDefault(s.ReadTimeout, 60*time.Second),
		Gzip: s.GzipCompression, Header: header,
	}
	if s.CAFile != "" {
		s.clientCfg.TLS.CAPaths = append(s.clientCfg.TLS.CAPaths, s.CAFile)
	}
	if s.CAPath != "" {
		paths, err := transport.PEMFiles(s.CAPath)
		if err != nil {
			return fmt.Errorf("ca_path: %w", err)
		}
		s.clientCfg.TLS.CAPaths = append(s.clientCfg.TLS.CAPaths, paths...)
	}
	return nil
}

// newUUID is a random (version 4) UUID.
func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Init implements plugin.Initer.
func (s *SplunkHEC) Init(context.Context) error {
	return s.startClient()
}

// Measure implements plugin.Measured.
func (s *SplunkHEC) Measure(report plugin.Report) {
	s.stats.Measure(report)
	report("splunk_ack_waits_total", "Chunks that waited for their indexer acknowledgement (use_ack).", s.ackWaits.Load(), false)
	report("splunk_ack_timeouts_total", "Chunks whose acknowledgement did not come within ack_timeout: sent again, possibly twice.", s.ackTimeouts.Load(), false)
}

// FormatEntry implements plugin.EntryFormatter: the chunk holds HEC
// event objects, one after the other, which HEC takes as one body.
func (s *SplunkHEC) FormatEntry(dst []byte, tag string, t event.Time, r event.Record) ([]byte, error) {
	value := func(name, fixed string) (event.Value, string, bool) {
		if path, ok := s.keyFields[name]; ok {
			v, ok := r.Lookup(path)
			return v, "", ok && msgp.NextType(v) != msgp.NilType
		}
		switch fixed {
		case "":
			return nil, "", false
		case "${tag}":
			return nil, tag, true
		}
		return nil, fixed, true
	}
	var head []byte
	appendField := func(name string, v event.Value, text string) error {
		head = append(head, ',', '"')
		head = append(head, name...)
		head = append(head, '"', ':')
		if v == nil {
			head = event.AppendJSONString(head, []byte(text))
			return nil
		}
		var err error
		head, err = v.AppendJSON(head)
		return err
	}
	if v, text, ok := value("host", s.Host); ok {
		if err := appendField("host", v, text); err != nil {
			return dst, err
		}
	} else {
		_ = appendField("host", nil, s.hostname)
	}
	if v, _, ok := value("time", ""); ok {
		if err := appendField("time", v, ""); err != nil {
			return dst, err
		}
	} else {
		_ = appendField("time", nil, rubyFloat(t))
	}
	for _, f := range []struct{ name, fixed string }{{"index", s.Index}, {"source", s.Source}, {"sourcetype", s.Sourcetype}} {
		if v, text, ok := value(f.name, f.fixed); ok {
			if err := appendField(f.name, v, text); err != nil {
				return dst, err
			}
		}
	}
	rest := r
	if len(s.removeKeys) > 0 {
		b, err := event.AppendWithout(nil, r, s.removeKeys)
		if err != nil {
			return dst, err
		}
		rest = event.Record(b)
	}
	if s.DataType == "metric" {
		return s.formatMetric(dst, head, r, rest, value)
	}
	start := len(dst)
	dst = append(dst, '{')
	dst = append(dst, head[1:]...)
	if len(s.fieldNames) > 0 {
		var err error
		if dst, err = s.appendFields(append(dst, `,"fields":`...), r, nil); err != nil {
			return dst[:start], err
		}
	}
	dst = append(dst, `,"event":`...)
	text, err := s.formatter.Format(nil, tag, t, rest)
	if err != nil {
		return dst[:start], err
	}
	dst = event.AppendJSONString(dst, s.utf8(text))
	return append(dst, '}'), nil
}

// formatMetric writes data_type metric events: one per field with
// metrics_from_event, else one from metric_name_key and metric_value_key
// with the fields (or the rest of the record) as dimensions.
func (s *SplunkHEC) formatMetric(dst, head []byte, r, rest event.Record, value func(string, string) (event.Value, string, bool)) ([]byte, error) {
	start := len(dst)
	if s.MetricsFromEvent {
		var err error
		_ = rest.Each(func(k []byte, v event.Value) bool {
			dst = append(dst, '{')
			dst = append(dst, head[1:]...)
			dst = append(dst, `,"event":"metric","fields":{"metric_name":`...)
			dst = event.AppendJSONString(dst, k)
			dst = append(dst, `,"_value":`...)
			if dst, err = v.AppendJSON(dst); err != nil {
				return false
			}
			dst = append(dst, "}}"...)
			return true
		})
		if err != nil {
			return dst[:start], err
		}
		return dst, nil
	}
	name, _, _ := value("metric_name", "")
	val, _, _ := value("metric_value", "")
	dst = append(dst, '{')
	dst = append(dst, head[1:]...)
	dst = append(dst, `,"event":"metric","fields":{"metric_name":`...)
	var err error
	if dst, err = jsonOrNull(dst, name); err != nil {
		return dst[:start], err
	}
	dst = append(dst, `,"_value":`...)
	if dst, err = jsonOrNull(dst, val); err != nil {
		return dst[:start], err
	}
	if len(s.fieldNames) > 0 {
		dst, err = s.appendFields(dst, r, []byte{','})
	} else {
		dst, err = appendMembers(dst, rest)
	}
	if err != nil {
		return dst[:start], err
	}
	return append(dst, "}}"...), nil
}

func jsonOrNull(dst []byte, v event.Value) ([]byte, error) {
	if v == nil {
		return append(dst, "null"...), nil
	}
	return v.AppendJSON(dst)
}

// appendMembers writes rec's fields as ,"k":v members of an open object,
// leaving out nulls.
func appendMembers(dst []byte, rec event.Record) ([]byte, error) {
	var err error
	_ = rec.Each(func(k []byte, v event.Value) bool {
		if msgp.NextType(v) == msgp.NilType {
			return true
		}
		dst = append(dst, ',')
		dst = event.AppendJSONString(dst, k)
		dst = append(dst, ':')
		dst, err = v.AppendJSON(dst)
		return err == nil
	})
	return dst, err
}

// appendFields writes the <fields> of r: as an object, or, with sep, as
// members of an open object each after sep. Fields r lacks or holds null
// are left out.
func (s *SplunkHEC) appendFields(dst []byte, r event.Record, sep []byte) ([]byte, error) {
	if sep == nil {
		dst = append(dst, '{')
	}
	first := true
	for i, name := range s.fieldNames {
		v, ok := r.Get(s.fieldFrom[i])
		if !ok || msgp.NextType(v) == msgp.NilType {
			continue
		}
		if sep != nil {
			dst = append(dst, sep...)
		} else if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = event.AppendJSONString(dst, []byte(name))
		dst = append(dst, ':')
		var err error
		if dst, err = v.AppendJSON(dst); err != nil {
			return dst, err
		}
	}
	if sep == nil {
		dst = append(dst, '}')
	}
	return dst, nil
}

// rubyFloat writes an event time as Ruby's Float#to_s does: the shortest
// decimal that reads back as the same float, with at least one decimal.
func rubyFloat(t event.Time) string {
	sec, nsec := int64(t)/1e9, int64(t)%1e9
	f := float64(sec) + float64(nsec)/1e9 // as Ruby's EventTime#to_f, not one rounded division
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// utf8 replaces invalid bytes with non_utf8_replacement_string when
// coerce_to_utf8 is on.
func (s *SplunkHEC) utf8(b []byte) []byte {
	if !s.CoerceToUTF8 {
		return b
	}
	return validUTF8(b, s.NonUTF8Replacement)
}

// Write implements plugin.BufferedOutput.
func (s *SplunkHEC) Write(ctx context.Context, c *plugin.Chunk) error {
	a, err := s.client.Do(ctx, Request{Method: http.MethodPost, URL: s.api, Body: c.Data,
		ContentType: "application/json", Records: c.Records})
	if err != nil {
		return err
	}
	err = Outcome(a, RetryUsual)
	if err != nil && plugin.IsPermanent(err) {
		if !s.ConsumeChunkOn4xx {
			return &StatusError{Status: a.Status, Body: a.Body} // retried, as the user asked
		}
		s.log.Error("HEC refused the chunk; dropped (consume_chunk_on_4xx_errors)", "status", a.Status,
			"records", c.Records, "answer", strings.TrimSpace(string(a.Body)))
		s.stats.Dropped.Add(int64(c.Records))
		return nil
	}
	if err != nil || !s.UseAck {
		return err
	}
	var answer struct {
		AckID *int64 `json:"ackId"`
	}
	if json.Unmarshal(a.Body, &answer) != nil || answer.AckID == nil {
		return &plugin.Permanent{Err: fmt.Errorf("use_ack: HEC's answer has no ackId (is indexer acknowledgement on for this token?): %.200s", a.Body)}
	}
	return s.waitAck(ctx, *answer.AckID, c.Records)
}

// waitAck asks /services/collector/ack for id until the indexers hold it,
// ack_timeout passes (the chunk is sent again: counted as possibly
// duplicated) or ctx ends.
func (s *SplunkHEC) waitAck(ctx context.Context, id int64, records int) error {
	s.ackWaits.Add(1)
	deadline := time.Now().Add(s.AckTimeout)
	body := []byte(`{"acks":[` + strconv.FormatInt(id, 10) + `]}`)
	timer := time.NewTimer(s.AckQueryInterval)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timer.C:
		}
		a, err := s.client.Do(ctx, Request{Method: http.MethodPost, URL: s.ackURL + "?channel=" + url.QueryEscape(s.Channel),
			Body: body, ContentType: "application/json"})
		if err == nil && a.Status == http.StatusOK {
			var acks struct {
				Acks map[string]bool `json:"acks"`
			}
			if json.Unmarshal(a.Body, &acks) == nil && acks.Acks[strconv.FormatInt(id, 10)] {
				return nil
			}
		}
		if time.Now().After(deadline) {
			s.ackTimeouts.Add(1)
			s.stats.Ambiguous.Add(int64(records))
			return fmt.Errorf("use_ack: no acknowledgement of ackId %d within ack_timeout %s", id, s.AckTimeout)
		}
		timer.Reset(s.AckQueryInterval)
	}
}
