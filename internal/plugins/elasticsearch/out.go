package elasticsearch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/awsauth"
	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/placeholder"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/strftime"
	"github.com/sluice-log/sluice/internal/transport"
)

// Output is one of the five types.
type Output struct {
	Config

	typ        string
	opensearch bool // an OpenSearch type: no _type, _routing spelt routing
	dataStream bool
	log        *slog.Logger
	errorOut   plugin.Emitter

	client        *client
	op            string // the bulk operation
	major         int    // the server's major version
	typeName      string // the _type sent, or ""
	addTimestamp  bool
	dailyIndex    bool // the logstash_format date changes by the day at most
	timestampPath []string
	fields        fields
	skip          map[string]bool // top-level fields left out of documents
	removeUpdate  map[string]bool
	unrecoverable map[string]bool
	indexTmpl     *buffer.Template      // index_name, logstash_prefix or data_stream_name
	dynamic       *placeholder.Template // elasticsearch_dynamic: the same, per event
	hostname      string
	loc           *time.Location
	query         string

	bufs sync.Pool // *writerBufs

	prepMu       sync.Mutex // guards the fields below, and the version fields while unprepared
	prepared     bool
	versionKnown bool

	Stats Stats
}

// Stats are the output's counters (sluice_output_es_*).
type Stats struct {
	Requests       atomic.Int64 // _bulk requests sent
	RequestErrors  atomic.Int64 // requests that failed whole
	Taken          atomic.Int64 // documents the cluster took
	Retried        atomic.Int64 // documents refused for capacity, sent again later
	Refused        atomic.Int64 // documents refused for their content, sent to @ERROR
	Duplicates     atomic.Int64 // of Refused: 409 on create
	BytesSent      atomic.Int64 // request bytes before compression
	TimeParseFails atomic.Int64 // time_key values that could not be read
	Ambiguous      atomic.Int64 // documents sent again after a request failed without an answer
	// ByStatus counts documents by the status their item answered:
	// 2xx, 400, 409, 429, 5xx, other.
	ByStatus [len(statusClasses)]atomic.Int64
}

// statusClasses name Stats.ByStatus.
var statusClasses = [...]string{"2xx", "400", "409", "429", "5xx", "other"}

func statusClass(status int) int {
	switch {
	case status >= 200 && status < 300:
		return 0
	case status == 400:
		return 1
	case status == 409:
		return 2
	case status == 429:
		return 3
	case status >= 500:
		return 4
	}
	return 5
}

// metaDone keeps which entries of a chunk were taken.
const metaDone = "es_done"

var (
	_ plugin.BufferedOutput = (*Output)(nil)
	_ plugin.Measured       = (*Output)(nil)
)

func defaults(typ string) Config {
	c := Config{Host: "localhost", Port: 9200, Scheme: "http", RequestTO: 5 * time.Second, SSLVerify: true,
		SSLVersion: "TLSv1_2", CompressionLevel: "no_compression", ReloadConnections: true, ReloadAfter: 10000,
		ResurrectAfter: 60 * time.Second, HTTPBackend: "excon", ExceptionBackup: true,
		VerifyESVersionAtStartup: true, DefaultElasticsearchVersion: 5, MaxRetryGetESVersion: 15,
		FailOnDetectingESVersionRetryExceed: true,
		IndexName:                           "fluentd", LogstashPrefix: "logstash", LogstashPrefixSeparator: "-",
		LogstashDateformat: "%Y.%m.%d", UTCIndex: true, TypeName: "_doc", TagKey: "tag", TimePrecision: 9,
		TimeParseErrorTag: "Fluent::ElasticsearchOutput::TimeParser.error", WriteOperation: "index",
		FlattenHashesSeparator: "_", MaxRetryPuttingTemplate: 10, FailOnPuttingTemplateRetryExceed: true,
		UseLegacyTemplate: true, ILMPolicyID: "logstash-policy", ApplicationName: "default", IndexDatePattern: "now/d",
		DataStreamTemplateUseIndexPatterns: true,
		BulkMessageRequestThreshold:        20 << 20,
		UnrecoverableErrorTypes:            []string{"out_of_memory_error", "es_rejected_execution_exception"},
	}
	if strings.HasPrefix(typ, "opensearch") {
		c.DefaultElasticsearchVersion = 1
		c.TimeParseErrorTag = "Fluent::OpenSearchOutput::TimeParser.error"
	}
	return c
}

func init() {
	summaries := map[string]string{
		"elasticsearch":             "index events in Elasticsearch through the _bulk API",
		"elasticsearch_dynamic":     "index events in Elasticsearch, with ${record['key']} placeholders per event",
		"elasticsearch_data_stream": "create events in an Elasticsearch data stream",
		"opensearch":                "index events in OpenSearch (or Amazon OpenSearch Service) through the _bulk API",
		"opensearch_data_stream":    "create events in an OpenSearch data stream",
		// fluent-plugin-aws-elasticsearch-service: elasticsearch with <endpoint>.
		"aws-elasticsearch-service": "index events in Amazon Elasticsearch Service, requests signed with SigV4 (<endpoint>)",
	}
	for typ, summary := range summaries {
		plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: typ, Summary: summary,
			// As the plugins: chunks by tag, timekeys in UTC.
			BufferDefaults:       map[string]string{"": "tag", "timekey_use_utc": "true"},
			DoneWithDataOnReturn: true,
			New:                  func() any { return &Output{Config: defaults(typ), typ: typ} }})
	}
}

// Configure implements plugin.Configurer.
func (o *Output) Configure(c *plugin.Context) error {
	o.log, o.errorOut = c.Logger, c.ErrorOut
	o.typ = c.Type
	o.opensearch = strings.HasPrefix(o.typ, "opensearch")
	o.dataStream = strings.HasSuffix(o.typ, "_data_stream")
	o.loc = c.Location
	if o.loc == nil {
		o.loc = time.UTC
	}
	o.op = o.WriteOperation
	if o.dataStream {
		if o.DataStreamName == "" {
			return errors.New("data_stream_name is required")
		}
		if o.DataStreamName != strings.ToLower(o.DataStreamName) || strings.ContainsAny(o.DataStreamName, `\/*?"<>| ,#:`) {
			// The server refuses such names; say so at check.
			if !strings.Contains(o.DataStreamName, "${") {
				return fmt.Errorf("data_stream_name %q: lowercase, without \\ / * ? \" < > | , # : or spaces", o.DataStreamName)
			}
		}
		o.op = "create" // data streams take only create
	}
	if o.TimePrecision < 0 || o.TimePrecision > 9 {
		return fmt.Errorf("time_precision must be 0 to 9")
	}
	if o.BulkMessageRequestThreshold == 0 {
		return fmt.Errorf("bulk_message_request_threshold must be positive, or -1 for no limit")
	}
	if (o.op == "update" || o.op == "upsert") && o.IDKey == "" && o.Hash == nil {
		return fmt.Errorf("write_operation %s needs id_key (or <hash>)", o.op)
	}
	if o.ClientCert != "" && o.ClientKey == "" {
		return fmt.Errorf("client_cert needs client_key")
	}
	var err error
	tmpl := o.IndexName
	switch {
	case o.dataStream:
		tmpl = o.DataStreamName
	case o.LogstashFormat:
		tmpl = o.LogstashPrefix
	}
	o.hostname = c.Hostname
	if o.typ == "elasticsearch_dynamic" {
		// ${record['key']}, ${tag_parts[N]} ... per event; strftime after.
		if o.dynamic, err = placeholder.Parse(tmpl); err != nil {
			return fmt.Errorf("index name: %w", err)
		}
		tmpl = "" // nothing per chunk
	}
	if o.indexTmpl, err = buffer.NewTemplate(tmpl, c.ChunkKeys); err != nil {
		return fmt.Errorf("index name: %w", err)
	}
	for _, f := range []struct {
		key string
		dst *[]string
	}{{o.TargetIndexKey, &o.fields.targetIndex}, {o.TargetTypeKey, &o.fields.targetType}, {o.IDKey, &o.fields.id},
		{o.RoutingKey, &o.fields.routing}, {o.ParentKey, &o.fields.parent}, {o.TimeKey, &o.fields.time},
		{o.RemoveKeysOnUpdateKey, &o.fields.removeOnUpdateKey}} {
		if *f.dst, err = path(f.key); err != nil {
			return err
		}
	}
	o.addTimestamp = o.LogstashFormat || o.IncludeTimestamp || o.dataStream
	o.dailyIndex = dayLevel(o.LogstashDateformat)
	if o.addTimestamp {
		o.timestampPath = []string{"@timestamp"}
	}
	o.skip = map[string]bool{}
	for _, k := range o.RemoveKeys {
		o.skip[k] = true
	}
	if len(o.fields.targetIndex) == 1 {
		o.skip[o.fields.targetIndex[0]] = true // the plugin deletes it from the record
	}
	if o.IncludeTagKey {
		o.skip[o.TagKey] = true // written once, with the tag
	}
	if len(o.fields.removeOnUpdateKey) == 1 {
		o.skip[o.fields.removeOnUpdateKey[0]] = true
	}
	if o.Hash != nil && o.Hash.HashIDKey == "" {
		o.Hash.HashIDKey = "_hash"
	}
	o.removeUpdate = map[string]bool{}
	for _, k := range o.RemoveKeysOnUpdate {
		o.removeUpdate[k] = true
	}
	o.unrecoverable = map[string]bool{}
	for _, t := range o.UnrecoverableErrorTypes {
		o.unrecoverable[t] = true
	}
	q := url.Values{}
	if o.Pipeline != "" {
		q.Set("pipeline", o.Pipeline)
	}
	o.query = bulkQuery
	if enc := q.Encode(); enc != "" {
		o.query += "&" + enc
	}
	if _, err := parseHosts(&o.Config); err != nil {
		return err
	}
	if o.Endpoint != nil && o.Endpoint.AWSServiceName == "" {
		o.Endpoint.AWSServiceName = "es"
	}
	return o.checkTemplates()
}

// Init builds the client. The server is first asked (its version, the
// templates to install) by the first Write, so that a cluster that is down
// when Sluice starts holds back deliveries, not the start: the sources
// take events into the buffer meanwhile.
func (o *Output) Init(ctx context.Context) error {
	cl, err := o.newClient(ctx)
	if err != nil {
		return err
	}
	o.client = cl
	o.major = o.DefaultElasticsearchVersion
	o.setTypeName()
	return nil
}

// prepare learns the server's version and installs the templates and
// policies, once, before the first _bulk request; a failure fails the
// write, which the buffer retries.
func (o *Output) prepare(ctx context.Context) error {
	o.prepMu.Lock()
	defer o.prepMu.Unlock()
	if o.prepared {
		return nil
	}
	if o.VerifyESVersionAtStartup && !o.versionKnown {
		if err := o.detectVersion(ctx); err != nil {
			o.log.Warn("could not learn the server's version; assuming default_elasticsearch_version",
				"version", o.DefaultElasticsearchVersion, "err", err)
		}
		o.versionKnown = true
		o.setTypeName()
	}
	if err := o.putAll(ctx); err != nil {
		return fmt.Errorf("installing templates and policies: %w", err)
	}
	o.prepared = true
	return nil
}

// setTypeName decides the _type documents carry for the server's version.
func (o *Output) setTypeName() {
	switch {
	case o.opensearch || o.major >= 8:
		o.typeName = ""
	case o.major == 7:
		if !o.SuppressTypeName {
			o.typeName = "_doc"
		}
	default:
		o.typeName = o.TypeName
		if o.SuppressTypeName {
			o.typeName = ""
		}
	}
}

func (o *Output) newClient(ctx context.Context) (*client, error) {
	hosts, err := parseHosts(&o.Config)
	if err != nil {
		return nil, err
	}
	cl := &client{hosts: hosts, apiKey: o.APIKey, headers: o.CustomHeaders, gzipLevel: -1,
		resurrect: o.ResurrectAfter, timeout: o.RequestTO}
	switch o.CompressionLevel {
	case "best_speed":
		cl.gzipLevel = gzip.BestSpeed
	case "best_compression":
		cl.gzipLevel = gzip.BestCompression
	case "default_compression":
		cl.gzipLevel = gzip.DefaultCompression
	}
	tlsVersion := o.SSLVersion
	if o.SSLMinVersion != "" {
		tlsVersion = o.SSLMinVersion
	}
	switch tlsVersion {
	case "SSLv23", "TLSv1", "TLSv1_1":
		tlsVersion = "TLSv1_2" // Go offers nothing older
	}
	tc := transport.Client{MinVersion: tlsVersion, CertPath: o.ClientCert, KeyPath: o.ClientKey, KeyPassphrase: o.ClientKeyPass,
		Insecure: !o.SSLVerify}
	if o.CAFile != "" {
		tc.CAPaths = []string{o.CAFile}
	}
	tlsConf, err := tc.Config()
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	if v, ok := transport.Versions[o.SSLMaxVersion]; ok {
		tlsConf.MaxVersion = v
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	tr.MaxIdleConnsPerHost = 16
	tr.ResponseHeaderTimeout = o.RequestTO
	cl.http = &http.Client{Transport: tr}
	if ep := o.Endpoint; ep != nil {
		u, err := url.Parse(ep.URL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("<endpoint> url %q is not a URL", ep.URL)
		}
		u.Path = strings.TrimSuffix(u.Path, "/")
		cl.hosts = []*host{{base: u}}
		opts := awsauth.Options{}
		switch {
		case ep.AssumeRoleARN != "" && ep.AssumeRoleWebIdentityTokenFile != "":
			opts.WebIdentity = &awsauth.WebIdentity{RoleARN: ep.AssumeRoleARN, RoleSessionName: sessionName(ep),
				WebIdentityTokenFile: ep.AssumeRoleWebIdentityTokenFile, STSRegion: ep.STSCredentialsRegion}
		case ep.AssumeRoleARN != "":
			opts.AssumeRole = &awsauth.AssumeRole{RoleARN: ep.AssumeRoleARN, RoleSessionName: sessionName(ep), STSRegion: ep.STSCredentialsRegion}
		}
		cfg, err := awsauth.Load(ctx, awsauth.Region(ep.Region), awsauth.Static{KeyID: ep.AccessKeyID, Secret: ep.SecretAccessKey},
			opts, awsauth.HTTP{VerifyPeer: true}, o.log)
		if err != nil {
			return nil, err
		}
		cl.signer = awsauth.NewSigner(cfg.Credentials, ep.AWSServiceName, cfg.Region)
	}
	return cl, nil
}

func sessionName(ep *Endpoint) string {
	if ep.AssumeRoleSessionName != "" {
		return ep.AssumeRoleSessionName
	}
	return "fluentd"
}

// detectVersion asks GET / for the server's version; without an answer
// default_elasticsearch_version stays.
func (o *Output) detectVersion(ctx context.Context) error {
	resp, _, err := o.client.do(ctx, http.MethodGet, "/", "", nil, "")
	if err == nil && resp.status != 200 {
		err = fmt.Errorf("status %d", resp.status)
	}
	var info struct {
		Version struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
		} `json:"version"`
	}
	if err == nil {
		err = json.Unmarshal(resp.body, &info)
	}
	major := 0
	if err == nil {
		major, err = strconv.Atoi(strings.SplitN(info.Version.Number, ".", 2)[0])
	}
	if err != nil {
		return err
	}
	if info.Version.Distribution == "opensearch" {
		o.opensearch = true
	}
	o.major = major
	return nil
}

// Measure implements plugin.Measured.
func (o *Output) Measure(report plugin.Report) {
	for _, m := range []struct {
		name, help string
		v          *atomic.Int64
	}{
		{"es_requests_total", "_bulk requests sent.", &o.Stats.Requests},
		{"es_request_errors_total", "_bulk requests that failed whole (the chunk is retried).", &o.Stats.RequestErrors},
		{"es_documents_taken_total", "Documents the cluster took.", &o.Stats.Taken},
		{"es_documents_retried_total", "Documents refused for capacity (429, 5xx), sent again with the chunk's retry.", &o.Stats.Retried},
		{"es_documents_refused_total", "Documents refused for their content (400, 409 on create), sent to @ERROR.", &o.Stats.Refused},
		{"es_documents_duplicate_total", "Of the refused documents, those that existed already (409 on create).", &o.Stats.Duplicates},
		{"es_request_bytes_total", "Bytes of _bulk request bodies, before compression.", &o.Stats.BytesSent},
		{"es_time_parse_errors_total", "time_key values that could not be read (the event time was used).", &o.Stats.TimeParseFails},
		{"ambiguous_retries_total", "Documents sent again after a request failed with no answer once it may have reached the cluster: they may arrive twice (unless they have ids).", &o.Stats.Ambiguous},
	} {
		report(m.name, m.help, m.v.Load(), false)
	}
	for i, class := range statusClasses {
		report("es_documents_status_"+class+"_total", "Documents whose _bulk item answered "+class+".", o.Stats.ByStatus[i].Load(), false)
	}
}

// pending is one document of the request being built.
type pending struct {
	entry int
	raw   []byte // the event, for @ERROR
}

// Write implements plugin.BufferedOutput.
func (o *Output) Write(ctx context.Context, c *plugin.Chunk) error {
	if err := o.prepare(ctx); err != nil {
		return err
	}
	done := plugin.LoadEntrySet(c, metaDone)
	if n := done.Count(); n > 0 {
		plugin.Delivered(ctx, n) // by an earlier write, perhaps before a restart
	}
	bufs, _ := o.bufs.Get().(*writerBufs)
	if bufs == nil {
		bufs = &writerBufs{}
	}
	w := writer{o: o, c: c, done: &done, doneBefore: done.Count(), bufs: bufs, body: bufs.body[:0], docs: bufs.docs[:0], scratch: bufs.scratch}
	defer func() {
		// A body the transport may still read (w.body nil) is left to the
		// garbage collector.
		bufs.body, bufs.docs, bufs.scratch = w.body, w.docs[:0], w.scratch
		clear(bufs.docs[:cap(bufs.docs)]) // no event bytes kept past the write
		o.bufs.Put(bufs)
	}()
	var err error
	if w.index, err = o.indexTmpl.Expand(c.Key, o.loc); err != nil {
		return fmt.Errorf("index name: %w", err)
	}
	if !o.LogstashFormat || o.dataStream {
		w.index = strings.ToLower(w.index)
	}
	err = w.run(ctx)
	if serr := w.finish(ctx); serr != nil && err == nil {
		err = serr
	}
	return err
}

// writerBufs are the memory one Write uses, kept for the next.
type writerBufs struct {
	body    []byte
	docs    []pending
	scratch []byte
	index   indexCache
	stamps  stampCache
}

// writer is one Write's state.
type writer struct {
	bufs       *writerBufs
	o          *Output
	c          *plugin.Chunk
	done       *plugin.EntrySet
	doneBefore int
	index      string // index_name, logstash_prefix or data_stream_name for this chunk
	body       []byte
	docs       []pending
	refused    event.Builder
	retries    int
	firstRetry itemResult
	aborted    error
	scratch    []byte
}

func (w *writer) run(ctx context.Context) error {
	o := w.o
	limit := int(o.BulkMessageRequestThreshold)
	r := event.NewReader(w.c.Data)
	for i := 0; r.Next(); i++ {
		if w.done.Has(i) {
			continue
		}
		e := r.Entry()
		start := len(w.body)
		ok, err := w.appendEntry(i, e)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if limit > 0 && len(w.body) > limit && len(w.docs) > 1 {
			// Send what came before this document, and start the next
			// request with it.
			last := w.docs[len(w.docs)-1]
			tail := append([]byte(nil), w.body[start:]...)
			w.body, w.docs = w.body[:start], w.docs[:len(w.docs)-1]
			if err := w.send(ctx); err != nil {
				return err
			}
			w.body, w.docs = append(w.body[:0], tail...), append(w.docs[:0], last)
		}
	}
	if err := r.Err(); err != nil {
		return err
	}
	if len(w.docs) > 0 {
		return w.send(ctx)
	}
	return nil
}

// appendEntry adds one event's action and document to the request; ok is
// false when the event went elsewhere (an update without an id).
func (w *writer) appendEntry(i int, e *event.Entry) (bool, error) {
	o := w.o
	ts, hasStamp, terr := o.eventTime(e, w.scratch)
	if terr != nil {
		o.Stats.TimeParseFails.Add(1)
		o.log.Warn("time_key value not readable; the event time is used", "err", terr)
		ts = e.Time.Std().In(time.Local)
	}
	base := w.index
	if o.dynamic != nil {
		w.scratch = o.dynamic.Render(w.scratch[:0], w.c.Key.Tag, o.hostname, e)
		base = string(w.scratch)
		if !o.LogstashFormat {
			if strings.IndexByte(base, '%') >= 0 {
				base = strftime.Format(base, ts.UTC())
			}
			base = strings.ToLower(base)
		}
	}
	d := doc{index: o.indexFor(base, e, ts, w.scratch, &w.bufs.index), typ: o.typeName}
	if v, ok := lookupText(e.Record, o.fields.targetType, w.scratch); ok && o.typeName != "" {
		d.typ = v
	}
	d.id, _ = lookupText(e.Record, o.fields.id, w.scratch)
	if d.id == "" && o.Hash != nil {
		d.id = hashID(e.Record)
	}
	d.routing, _ = lookupText(e.Record, o.fields.routing, w.scratch)
	d.parent, _ = lookupText(e.Record, o.fields.parent, w.scratch)
	if d.id == "" && (o.op == "update" || o.op == "upsert") {
		if o.EmitErrorForMissingID {
			w.refused.AppendRaw(e.Raw)
			o.Stats.Refused.Add(1)
		} else {
			o.log.Warn("an update without an _id is dropped (set emit_error_for_missing_id to send it to @ERROR)", "id_key", o.IDKey)
		}
		w.done.Add(i)
		return false, nil
	}
	routingField, parentField := "routing", "parent"
	if !o.opensearch && o.major < 7 {
		routingField, parentField = "_routing", "_parent"
	}
	op := o.op
	if op == "upsert" {
		op = "update"
	}
	w.body = appendAction(w.body, op, &d, routingField, parentField)
	stampTS := ts
	if hasStamp || (o.TimeKeyExcludeTimestamp && o.fields.time != nil) {
		stampTS = time.Time{}
	}
	var err error
	switch {
	case o.op == "update" || o.op == "upsert":
		w.body, err = w.appendUpdate(e, stampTS, d.id)
	default:
		w.body, err = w.appendDoc(w.body, e, stampTS, d.id, o.skip)
	}
	if err != nil {
		return false, fmt.Errorf("event %d: %w", i, err)
	}
	w.body = append(w.body, '\n')
	w.docs = append(w.docs, pending{entry: i, raw: e.Raw})
	return true, nil
}

// appendDoc writes the event's document (appendDocument) for this chunk.
func (w *writer) appendDoc(dst []byte, e *event.Entry, ts time.Time, id string, skip map[string]bool) ([]byte, error) {
	return w.o.appendDocument(dst, w.c.Key.Tag, e, ts, id, skip, &w.bufs.stamps)
}

// appendUpdate writes an update or upsert body: {"doc": ...} without
// remove_keys_on_update, and for upsert the whole record as upsert (or
// doc_as_upsert when nothing was left out).
func (w *writer) appendUpdate(e *event.Entry, ts time.Time, id string) ([]byte, error) {
	o := w.o
	skipUpdate := o.skip
	extra := w.removeOnUpdate(e)
	if len(o.removeUpdate) > 0 || len(extra) > 0 {
		skipUpdate = map[string]bool{}
		for k := range o.skip {
			skipUpdate[k] = true
		}
		for k := range o.removeUpdate {
			skipUpdate[k] = true
		}
		for _, k := range extra {
			skipUpdate[k] = true
		}
	}
	if o.SuppressDocWrap {
		return w.appendDoc(w.body, e, ts, id, skipUpdate)
	}
	dst := append(w.body, `{"doc":`...)
	dst, err := w.appendDoc(dst, e, ts, id, skipUpdate)
	if err != nil {
		return dst, err
	}
	if o.op == "upsert" {
		if len(skipUpdate) == len(o.skip) {
			dst = append(dst, `,"doc_as_upsert":true`...)
		} else {
			dst = append(dst, `,"upsert":`...)
			if dst, err = w.appendDoc(dst, e, ts, id, o.skip); err != nil {
				return dst, err
			}
		}
	}
	return append(dst, '}'), nil
}

// removeOnUpdate reads remove_keys_on_update_key's array of field names.
func (w *writer) removeOnUpdate(e *event.Entry) []string {
	if w.o.fields.removeOnUpdateKey == nil {
		return nil
	}
	v, ok := e.Record.Lookup(w.o.fields.removeOnUpdateKey)
	if !ok {
		return nil
	}
	n, rest, err := msgp.ReadArrayHeaderBytes(v)
	if err != nil {
		return nil
	}
	var keys []string
	for ; n > 0; n-- {
		var s string
		if s, rest, err = msgp.ReadStringBytes(rest); err != nil {
			return keys
		}
		keys = append(keys, s)
	}
	return keys
}

// send posts the request built so far and applies its response.
func (w *writer) send(ctx context.Context) error {
	o := w.o
	o.Stats.Requests.Add(1)
	o.Stats.BytesSent.Add(int64(len(w.body)))
	resp, released, err := o.client.do(ctx, http.MethodPost, "/_bulk", o.query, w.body, "application/x-ndjson")
	if !released {
		w.body = nil // the transport may still read it: build the next request elsewhere
	}
	if err == nil && resp.status != 200 {
		err = httpError(resp)
	}
	if err != nil {
		o.Stats.RequestErrors.Add(1)
		if resp.status == 0 && transport.Ambiguous(err) {
			// No answer: the cluster may have indexed them. With ids
			// (id_key, <hash>) a resend overwrites; without, it may double.
			o.Stats.Ambiguous.Add(int64(len(w.docs)))
		}
		return err
	}
	items, allTaken, err := parseBulk(resp.body, len(w.docs))
	if err != nil {
		o.Stats.RequestErrors.Add(1)
		return fmt.Errorf("%s: %w", resp.host, err)
	}
	nTaken := 0
	for j, d := range w.docs {
		out := taken
		it := itemResult{status: 201}
		if !allTaken {
			it = items[j]
			out = o.classify(it, o.op)
		}
		o.Stats.ByStatus[statusClass(it.status)].Add(1)
		switch out {
		case taken:
			w.done.Add(d.entry)
			nTaken++
		case refused:
			w.done.Add(d.entry)
			w.refused.AppendRaw(d.raw)
			o.Stats.Refused.Add(1)
			if it.status == 409 {
				o.Stats.Duplicates.Add(1)
			}
			if o.LogES400Reason {
				o.log.Warn("document refused; sent to @ERROR", "status", it.status, "error_type", it.typ, "reason", it.reason)
			} else {
				o.log.Warn("document refused; sent to @ERROR (log_es_400_reason true logs why)", "status", it.status, "error_type", it.typ)
			}
		case retry:
			if w.retries == 0 {
				w.firstRetry = it
			}
			w.retries++
			o.Stats.Retried.Add(1)
		case abort:
			w.aborted = &plugin.Permanent{Err: fmt.Errorf("%s refused a document with %s (unrecoverable_error_types): %s", resp.host, it.typ, it.reason)}
		}
	}
	o.Stats.Taken.Add(int64(nTaken))
	plugin.Delivered(ctx, nTaken)
	if w.body != nil {
		w.body = w.body[:0]
	}
	w.docs = w.docs[:0]
	return nil
}

// finish sends the refused documents to @ERROR, keeps the delivered set
// with the chunk, and says whether the chunk must be written again.
func (w *writer) finish(ctx context.Context) error {
	o := w.o
	if w.refused.Len() > 0 {
		if err := o.errorOut.Emit(ctx, w.refused.Stream(w.c.Key.Tag)); err != nil {
			return fmt.Errorf("sending refused documents to @ERROR: %w", err)
		}
	}
	if w.done.Count() != w.doneBefore {
		if err := w.done.Save(w.c, metaDone); err != nil {
			return fmt.Errorf("keeping the delivered documents with the chunk: %w", err)
		}
	}
	if w.aborted != nil {
		return w.aborted
	}
	if w.retries > 0 {
		return fmt.Errorf("%d documents refused for capacity (%d %s: %s); the chunk's retry sends only those",
			w.retries, w.firstRetry.status, w.firstRetry.typ, w.firstRetry.reason)
	}
	return nil
}

// httpError describes a request that failed whole; 4xx other than 429
// cannot succeed by retrying and are Permanent (the chunk goes to
// <secondary> or the backup directory), except 401 and 403, which a fix
// of the credentials cures.
func httpError(resp response) error {
	msg := strings.TrimSpace(string(resp.body))
	if len(msg) > 512 {
		msg = msg[:512] + "..."
	}
	err := fmt.Errorf("%s: _bulk answered %d: %s", resp.host, resp.status, msg)
	switch {
	case resp.status == 429, resp.status >= 500, resp.status == 401, resp.status == 403, resp.status == 408:
		return err
	case resp.status >= 400:
		return &plugin.Permanent{Err: err}
	}
	return err
}
