// Package elasticsearch is the elasticsearch, elasticsearch_dynamic,
// elasticsearch_data_stream, opensearch and opensearch_data_stream outputs:
// fluent-plugin-elasticsearch's and fluent-plugin-opensearch's parameters,
// defaults and record shapes over the _bulk API.
//
// A chunk goes out in _bulk requests of at most
// bulk_message_request_threshold bytes. The response is read item by
// item: an item the cluster took is marked delivered in the chunk (a
// plugin.EntrySet kept with it); an item refused for its content (400, a
// 409 on create) goes to <label @ERROR> with the reason and is marked
// delivered, so it is never retried; an item refused for capacity (429,
// 5xx) stays undelivered, and the chunk's retry sends only those. A
// request that fails whole is retried by the buffer.
package elasticsearch

import (
	"time"

	"github.com/sluice-log/sluice/internal/config"
)

// Config holds the parameters of every type; each type's defaults differ
// where the plugins' do.
type Config struct {
	// Connection.
	Host                     string            `conf:"host" desc:"The server's host name."`
	Port                     int               `conf:"port" desc:"The server's port."`
	Scheme                   string            `conf:"scheme" enum:"http,https" desc:"http or https."`
	Path                     string            `conf:"path" desc:"A path prefix of the REST API (behind a proxy)."`
	Hosts                    []string          `conf:"hosts" desc:"Several servers, as host:port or URLs with their own scheme, user and password (https://user:pass@es-1:9200/prefix); requests go round-robin over the healthy ones. Overrides host and port."`
	User                     string            `conf:"user" desc:"The user of HTTP basic authentication."`
	Password                 string            `conf:"password" desc:"The password of user."`
	APIKey                   string            `conf:"api_key" desc:"An Elasticsearch API key (the base64 of id:key), sent as Authorization: ApiKey."`
	CloudID                  string            `conf:"cloud_id" desc:"An Elastic Cloud deployment's cloud ID; its Elasticsearch host replaces host and port."`
	CloudAuth                string            `conf:"cloud_auth" desc:"user:password for Elastic Cloud."`
	RequestTO                time.Duration     `conf:"request_timeout" desc:"The deadline of one request."`
	SSLVerify                bool              `conf:"ssl_verify" desc:"Verify the server's certificate."`
	CAFile                   string            `conf:"ca_file" desc:"PEM CA certificates to trust, instead of the system's."`
	ClientCert               string            `conf:"client_cert" desc:"A PEM client certificate, for servers that ask for one."`
	ClientKey                string            `conf:"client_key" desc:"The PEM private key of client_cert."`
	ClientKeyPass            string            `conf:"client_key_pass" desc:"The passphrase of an encrypted client_key."`
	SSLVersion               string            `conf:"ssl_version" enum:"SSLv23,TLSv1,TLSv1_1,TLSv1_2,TLSv1_3" desc:"The lowest TLS version (SSLv23, TLSv1 and TLSv1_1 mean TLS 1.2: Go offers nothing older)."`
	SSLMinVersion            string            `conf:"ssl_min_version" enum:"SSLv23,TLSv1,TLSv1_1,TLSv1_2,TLSv1_3" desc:"The lowest TLS version, overriding ssl_version."`
	SSLMaxVersion            string            `conf:"ssl_max_version" enum:"SSLv23,TLSv1,TLSv1_1,TLSv1_2,TLSv1_3" desc:"The highest TLS version."`
	CompressionLevel         string            `conf:"compression_level" enum:"no_compression,best_speed,best_compression,default_compression" desc:"gzip request bodies at this level (no_compression: plain)."`
	ReloadConnections        bool              `conf:"reload_connections" desc:"Accepted for compatibility (sniffing the cluster for nodes)." ignored:"Sluice does not sniff: it goes round-robin over host or hosts, resting a failed one"`
	ReloadOnFailure          bool              `conf:"reload_on_failure" desc:"Accepted for compatibility (sniffing after a failure)." ignored:"Sluice does not sniff: a failed host rests for resurrect_after and the others take the requests"`
	ReloadAfter              int               `conf:"reload_after" desc:"Accepted for compatibility (requests between sniffs)." ignored:"Sluice does not sniff"`
	ReconnectOnError         bool              `conf:"reconnect_on_error" desc:"Accepted for compatibility: a failed connection is always replaced." ignored:"a failed connection is always replaced"`
	ResurrectAfter           time.Duration     `conf:"resurrect_after" desc:"How long a host that failed rests before it is tried again."`
	SnifferClassName         string            `conf:"sniffer_class_name" desc:"Accepted for compatibility (a Ruby class)." ignored:"Sluice loads no Ruby classes and does not sniff"`
	SelectorClassName        string            `conf:"selector_class_name" desc:"Accepted for compatibility (a Ruby class)." ignored:"Sluice loads no Ruby classes; hosts are chosen round-robin"`
	HTTPBackend              string            `conf:"http_backend" enum:"excon,typhoeus" desc:"Accepted for compatibility (the Ruby HTTP library)." ignored:"Sluice uses Go's HTTP client"`
	HTTPBackendExconNonblock bool              `conf:"http_backend_excon_nonblock" desc:"Accepted for compatibility." ignored:"Sluice uses Go's HTTP client"`
	PreferOjSerializer       bool              `conf:"prefer_oj_serializer" desc:"Accepted for compatibility (a Ruby JSON library)." ignored:"Sluice writes JSON itself"`
	CustomHeaders            map[string]string `conf:"custom_headers" desc:"Headers added to every request, as a hash."`
	IgnoreExceptions         []string          `conf:"ignore_exceptions" desc:"Accepted for compatibility (Ruby exception classes)." ignored:"a failed request is retried by the buffer, or sent to <secondary> when it cannot succeed"`
	ExceptionBackup          bool              `conf:"exception_backup" desc:"Accepted for compatibility." ignored:"a chunk that cannot be delivered goes to <secondary> or the backup directory"`

	// Versions and start-up checks.
	VerifyESVersionAtStartup            bool `conf:"verify_es_version_at_startup" alias:"verify_os_version_at_startup" desc:"Ask the server its version at start (GET /), to know whether documents carry a _type."`
	DefaultElasticsearchVersion         int  `conf:"default_elasticsearch_version" alias:"default_opensearch_version" desc:"The major version assumed when it is not asked for, or the server does not answer."`
	MaxRetryGetESVersion                int  `conf:"max_retry_get_es_version" alias:"max_retry_get_os_version" desc:"Accepted for compatibility." ignored:"the version is asked once at start; without an answer default_elasticsearch_version applies"`
	FailOnDetectingESVersionRetryExceed bool `conf:"fail_on_detecting_es_version_retry_exceed" alias:"fail_on_detecting_os_version_retry_exceed" desc:"Accepted for compatibility." ignored:"without an answer default_elasticsearch_version applies, and the start goes on"`

	// Index naming.
	IndexName               string      `conf:"index_name" desc:"The index, without logstash_format; ${tag}, ${tag[N]}, chunk keys and strftime on the chunk's time may be used."`
	LogstashFormat          bool        `conf:"logstash_format" desc:"Write to one index per day (logstash_prefix-logstash_dateformat, by each event's time) and add @timestamp."`
	LogstashPrefix          string      `conf:"logstash_prefix" desc:"The index prefix of logstash_format (placeholders allowed)."`
	LogstashPrefixSeparator string      `conf:"logstash_prefix_separator" desc:"What joins logstash_prefix and the date."`
	LogstashDateformat      string      `conf:"logstash_dateformat" desc:"The strftime format of the date in logstash_format index names."`
	UTCIndex                bool        `conf:"utc_index" desc:"Take the logstash_format date in UTC (false: local time)."`
	TargetIndexKey          string      `conf:"target_index_key" desc:"A record field whose value is the event's index; the field is removed from the document."`
	TargetTypeKey           string      `conf:"target_type_key" desc:"A record field whose value is the document's _type (Elasticsearch 6 and older)."`
	TypeName                string      `conf:"type_name" desc:"The document _type sent to Elasticsearch 6 and older (7 takes _doc; 8 and OpenSearch none)."`
	SuppressTypeName        bool        `conf:"suppress_type_name" desc:"Send no _type at all, even to Elasticsearch 7."`
	IncludeTagKey           bool        `conf:"include_tag_key" desc:"Add the tag to each document under tag_key."`
	TagKey                  string      `conf:"tag_key" desc:"The field include_tag_key adds."`
	TimeKey                 string      `conf:"time_key" desc:"A record field holding the event's time, used for @timestamp and the logstash_format date instead of the event time."`
	TimeKeyFormat           string      `conf:"time_key_format" desc:"The strftime format of time_key's value; ISO 8601 (or epoch seconds) when unset."`
	TimeKeyExcludeTimestamp bool        `conf:"time_key_exclude_timestamp" desc:"With time_key, do not add @timestamp."`
	TimePrecision           int         `conf:"time_precision" desc:"Fraction digits of @timestamp (0 to 9)."`
	IncludeTimestamp        bool        `conf:"include_timestamp" desc:"Add @timestamp without logstash_format."`
	TimeParseErrorTag       string      `conf:"time_parse_error_tag" desc:"Accepted for compatibility." ignored:"an unreadable time_key value is logged, counted, and the event time is used"`
	IDKey                   string      `conf:"id_key" desc:"A record field (or $.a.b path) whose value is the document _id, so that a resend overwrites instead of duplicating."`
	ParentKey               string      `conf:"parent_key" desc:"A record field whose value is the document's parent (join fields)."`
	RoutingKey              string      `conf:"routing_key" desc:"A record field whose value is the document's routing."`
	RemoveKeys              []string    `conf:"remove_keys" desc:"Fields removed from each document before it is sent."`
	RemoveKeysOnUpdate      []string    `conf:"remove_keys_on_update" desc:"Fields left out of the upsert part of update and upsert operations."`
	RemoveKeysOnUpdateKey   string      `conf:"remove_keys_on_update_key" desc:"A record field listing, as an array, more fields to leave out of the upsert part."`
	WriteOperation          string      `conf:"write_operation" enum:"index,create,update,upsert" desc:"The bulk operation: index, create (refused when the _id exists), update or upsert (both need id_key)."`
	Pipeline                string      `conf:"pipeline" desc:"The ingest pipeline documents go through."`
	FlattenHashes           bool        `conf:"flatten_hashes" desc:"Flatten nested maps into one level, keys joined by flatten_hashes_separator."`
	FlattenHashesSeparator  string      `conf:"flatten_hashes_separator" desc:"What joins flattened keys."`
	EmitErrorForMissingID   bool        `conf:"emit_error_for_missing_id" desc:"Send an update or upsert without an _id to @ERROR (otherwise it is dropped with a warning)."`
	Hash                    *HashConfig `section:"hash" desc:"Make each document's _id from a hash of the record, so that a resend overwrites instead of duplicating."`

	// Templates and lifecycle policies.
	TemplateName                     string            `conf:"template_name" desc:"The index template to install at start, from template_file."`
	TemplateFile                     string            `conf:"template_file" desc:"The JSON file of template_name."`
	Templates                        map[string]string `conf:"templates" desc:"Several templates, as name:file pairs."`
	CustomizeTemplate                map[string]string `conf:"customize_template" desc:"Strings replaced in the template file before it is installed, as a hash."`
	TemplateOverwrite                bool              `conf:"template_overwrite" desc:"Install the templates even when they exist."`
	UseLegacyTemplate                bool              `conf:"use_legacy_template" desc:"Install through the legacy _template API (true) or _index_template (false)."`
	MaxRetryPuttingTemplate          int               `conf:"max_retry_putting_template" desc:"How many times installing a template is tried at start."`
	FailOnPuttingTemplateRetryExceed bool              `conf:"fail_on_putting_template_retry_exceed" desc:"Fail the start when the templates cannot be installed."`
	EnableILM                        bool              `conf:"enable_ilm" desc:"Install ilm_policy under ilm_policy_id at start (Elasticsearch's index lifecycle management)."`
	ILMPolicyID                      string            `conf:"ilm_policy_id" desc:"The lifecycle policy's name."`
	ILMPolicy                        string            `conf:"ilm_policy" desc:"The lifecycle policy, as JSON."`
	ILMPolicyOverwrite               bool              `conf:"ilm_policy_overwrite" desc:"Install the policy even when it exists."`
	RolloverIndex                    bool              `conf:"rollover_index" desc:"Accepted for compatibility (write aliases for rollover)." ignored:"use data streams (elasticsearch_data_stream) for rollover"`
	IndexPrefix                      string            `conf:"index_prefix" desc:"Accepted for compatibility (rollover_index)." ignored:"use data streams (elasticsearch_data_stream) for rollover"`
	DeflectorAlias                   string            `conf:"deflector_alias" desc:"Accepted for compatibility (rollover_index)." ignored:"use data streams (elasticsearch_data_stream) for rollover"`
	ApplicationName                  string            `conf:"application_name" desc:"Accepted for compatibility (rollover_index)." ignored:"use data streams (elasticsearch_data_stream) for rollover"`
	IndexDatePattern                 string            `conf:"index_date_pattern" desc:"Accepted for compatibility (rollover_index)." ignored:"use data streams (elasticsearch_data_stream) for rollover"`

	// Data streams (the *_data_stream types).
	DataStreamName                     string `conf:"data_stream_name" desc:"The data stream documents are created in (placeholders allowed)."`
	DataStreamTemplateName             string `conf:"data_stream_template_name" desc:"The index template that makes data_stream_name a data stream; installed at start unless it exists (empty: data_stream_name)."`
	DataStreamILMName                  string `conf:"data_stream_ilm_name" desc:"The lifecycle policy of the data stream's template."`
	DataStreamILMPolicy                string `conf:"data_stream_ilm_policy" desc:"The lifecycle policy, as JSON, installed as data_stream_ilm_name."`
	DataStreamILMPolicyOverwrite       bool   `conf:"data_stream_ilm_policy_overwrite" desc:"Install the policy even when it exists."`
	DataStreamTemplateUseIndexPatterns bool   `conf:"data_stream_template_use_index_patterns" desc:"Give the template index_patterns [data_stream_name*] (true) or [data_stream_name] (false)."`

	// Requests and errors.
	BulkMessageRequestThreshold config.Size `conf:"bulk_message_request_threshold" desc:"The largest _bulk request body; a chunk larger than this goes in several requests (-1: one request per chunk)."`
	LogES400Reason              bool        `conf:"log_es_400_reason" alias:"log_os_400_reason" desc:"Log the reason Elasticsearch gives for each document it refuses (400); otherwise only the error type."`
	UnrecoverableErrorTypes     []string    `conf:"unrecoverable_error_types" desc:"Error types that give up the whole chunk (to <secondary> or the backup directory) instead of retrying it. Capacity refusals (429, es_rejected_execution_exception) are retried whatever this says: giving them up would lose data."`
	SuppressDocWrap             bool        `conf:"suppress_doc_wrap" desc:"Send update and upsert records as they are, without the {\"doc\": ...} wrapper (scripted updates)."`

	// Amazon OpenSearch Service and Amazon Elasticsearch Service.
	Endpoint *Endpoint `section:"endpoint" desc:"Sign requests for Amazon OpenSearch Service (or Amazon Elasticsearch Service) with AWS SigV4, as fluent-plugin-opensearch and fluent-plugin-aws-elasticsearch-service do."`
}

// HashConfig is <hash>.
type HashConfig struct {
	HashIDKey string `conf:"hash_id_key" desc:"The field the generated id is also stored in."`
}

// Endpoint is <endpoint> (Amazon OpenSearch Service).
type Endpoint struct {
	URL                                string        `conf:"url,required" desc:"The domain's endpoint, https://search-....es.amazonaws.com."`
	Region                             string        `conf:"region" desc:"The domain's region; AWS_REGION when unset."`
	AccessKeyID                        string        `conf:"access_key_id" desc:"Static credentials; otherwise the SDK's default chain (environment, web identity, ECS task role, instance profile)."`
	SecretAccessKey                    string        `conf:"secret_access_key" desc:"The secret of access_key_id."`
	AssumeRoleARN                      string        `conf:"assume_role_arn" desc:"A role to assume for the requests."`
	AssumeRoleSessionName              string        `conf:"assume_role_session_name" desc:"The session name of assume_role_arn."`
	AssumeRoleWebIdentityTokenFile     string        `conf:"assume_role_web_identity_token_file" desc:"Assume assume_role_arn with this web identity token (EKS IRSA)."`
	STSCredentialsRegion               string        `conf:"sts_credentials_region" desc:"The region of the STS endpoint."`
	ECSContainerCredentialsRelativeURI string        `conf:"ecs_container_credentials_relative_uri" desc:"Accepted for compatibility: the SDK reads AWS_CONTAINER_CREDENTIALS_RELATIVE_URI itself." ignored:"the SDK's default chain reads the ECS task role from the environment"`
	RefreshCredentialsInterval         time.Duration `conf:"refresh_credentials_interval" desc:"Accepted for compatibility: the SDK refreshes credentials before they expire." ignored:"the SDK refreshes credentials before they expire"`
	AWSServiceName                     string        `conf:"aws_service_name" enum:"es,aoss" desc:"The SigV4 service: es (OpenSearch Service domains) or aoss (OpenSearch Serverless)."`
}
