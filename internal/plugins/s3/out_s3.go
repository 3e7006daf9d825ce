// Package s3 holds the S3 output.
package s3

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"

	"github.com/sluice-log/sluice/internal/awsauth"
	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/strftime"
)

// S3 writes each flushed chunk as one object, with fluent-plugin-s3's
// parameters. Unlike that plugin, an object's key is decided once per chunk
// and kept with it (in the buffer), so a retry, or an upload cut short by a
// crash, writes the same object again instead of a new one; %{index} comes
// from a counter per key prefix, seeded by listing the prefix once, not from
// a HEAD request per object, so two chunks never race for one index.
// Keys of different instances differ by host name (#{Socket.gethostname}
// or %{hostname} in s3_object_key_format).
type S3 struct {
	AWSKeyID                string            `conf:"aws_key_id" desc:"The access key ID; without it credentials come from the credential sections, the environment, or the instance's role."`
	AWSSecKey               string            `conf:"aws_sec_key" desc:"The secret access key that goes with aws_key_id."`
	S3Bucket                string            `conf:"s3_bucket,required" desc:"The bucket the objects are written to."`
	S3Region                string            `conf:"s3_region" desc:"The bucket's region; defaults to AWS_REGION, else us-east-1."`
	S3Endpoint              string            `conf:"s3_endpoint" desc:"An S3-compatible endpoint (MinIO, a VPC endpoint) instead of AWS's."`
	ForcePathStyle          string            `conf:"force_path_style" desc:"true addresses the bucket in the URL's path (https://host/bucket/key), as MinIO needs; unset, path style is used for an s3_endpoint on localhost or an IP address."`
	Path                    string            `conf:"path" desc:"The key prefix, the value of %{path} (placeholders allowed)."`
	S3ObjectKeyFormat       string            `conf:"s3_object_key_format" desc:"The object key: %{path}, %{time_slice}, %{index}, %{file_extension}, %{uuid_flush}, %{hex_random}, %{hostname}, and the buffer's ${tag}, ${key} and strftime placeholders. It is decided once per chunk and kept with it, so a retry writes the same object."`
	TimeSliceFormat         string            `conf:"time_slice_format" desc:"The strftime format of %{time_slice}, from the chunk's timekey. Unset, it follows the timekey as in fluent-plugin-s3: under a minute %Y%m%d%H%M%S, under an hour %Y%m%d%H%M, under a day %Y%m%d%H, else %Y%m%d."`
	IndexFormat             string            `conf:"index_format" desc:"The printf format of %{index}, which counts the objects under one key prefix."`
	HexRandomLength         int               `conf:"hex_random_length" desc:"How many hex digits %{hex_random} has."`
	StoreAs                 string            `conf:"store_as" enum:"gzip,gzip_command,json,text,txt,zstd" desc:"How the objects are compressed and named: gzip (.gz), zstd, json or text (uncompressed); gzip_command is taken as gzip."`
	CheckObject             bool              `conf:"check_object" desc:"Find a free %{index} for a new key prefix by listing the objects already there."`
	CheckBucket             bool              `conf:"check_bucket" desc:"Check at start that the bucket exists (and create it with auto_create_bucket)."`
	CheckApikeyOnStart      bool              `conf:"check_apikey_on_start" desc:"Check at start that the credentials work."`
	AutoCreateBucket        bool              `conf:"auto_create_bucket" desc:"Create the bucket at start when check_bucket finds it missing."`
	StorageClass            string            `conf:"storage_class" desc:"The objects' storage class (STANDARD, STANDARD_IA, GLACIER_IR...)."`
	ACL                     string            `conf:"acl" desc:"A canned ACL for the objects (private, bucket-owner-full-control...)."`
	UseServerSideEncryption string            `conf:"use_server_side_encryption" desc:"Server-side encryption: AES256 or aws:kms."`
	SSEKMSKeyID             string            `conf:"ssekms_key_id" desc:"The KMS key of aws:kms encryption."`
	ComputeChecksums        bool              `conf:"compute_checksums" desc:"Send a checksum of each object, which S3 verifies."`
	ProxyURI                string            `conf:"proxy_uri" desc:"An HTTP proxy for the S3 requests."`
	SSLVerifyPeer           bool              `conf:"ssl_verify_peer" desc:"Verify the endpoint's TLS certificate."`
	SSLCABundle             string            `conf:"ssl_ca_bundle" desc:"A PEM file of the CA certificates that sign the endpoint's certificate, instead of the system's."`
	SSLCADirectory          string            `conf:"ssl_ca_directory" desc:"A directory of PEM files (.pem, .crt) of CA certificates, instead of the system's."`
	UseBundledCert          bool              `conf:"use_bundled_cert" desc:"Accepted for fluent-plugin-s3 compatibility (the Ruby SDK's own CA bundle)." ignored:"Sluice uses the system's CA certificates, or ssl_ca_bundle"`
	Utc                     bool              `conf:"utc" desc:"Compute %{time_slice} in UTC."`
	Localtime               bool              `conf:"localtime" desc:"Compute %{time_slice} in local time (the default)."`
	UploadPartSize          config.Size       `conf:"upload_part_size" desc:"Objects larger than this are uploaded in parts of this size."`
	UploadConcurrency       int               `conf:"upload_concurrency" desc:"How many parts of one object are uploaded at once."`
	GrantFullControl        string            `conf:"grant_full_control" desc:"Grantees of full control of each object, as S3's x-amz-grant-full-control (id=\"...\")."`
	GrantRead               string            `conf:"grant_read" desc:"Grantees who may read each object (x-amz-grant-read)."`
	GrantReadACP            string            `conf:"grant_read_acp" desc:"Grantees who may read each object's ACL (x-amz-grant-read-acp)."`
	GrantWriteACP           string            `conf:"grant_write_acp" desc:"Grantees who may write each object's ACL (x-amz-grant-write-acp)."`
	SSECustomerAlgorithm    string            `conf:"sse_customer_algorithm" desc:"Server-side encryption with a key of yours: AES256."`
	SSECustomerKey          string            `conf:"sse_customer_key" desc:"The key of sse_customer_algorithm, base64."`
	SSECustomerKeyMD5       string            `conf:"sse_customer_key_md5" desc:"The MD5 of sse_customer_key, base64."`
	ReducedRedundancy       bool              `conf:"reduced_redundancy" desc:"Deprecated in fluent-plugin-s3: storage_class REDUCED_REDUNDANCY."`
	AWSIAMRetries           int               `conf:"aws_iam_retries" desc:"Deprecated in fluent-plugin-s3." ignored:"the SDK's credential providers retry on their own"`
	SignatureVersion        string            `conf:"signature_version" desc:"Accepted for fluent-plugin-s3 compatibility." ignored:"requests are signed with SigV4"`
	WarnForDelay            time.Duration     `conf:"warn_for_delay" desc:"Accepted for fluent-plugin-s3 compatibility." ignored:"slow writes are logged by the buffer's slow_flush_log_threshold"`
	Overwrite               bool              `conf:"overwrite" desc:"Accepted for fluent-plugin-s3 compatibility." ignored:"a chunk's object key is decided once and %{index} never repeats, so no object is overwritten"`
	TransferAcceleration    bool              `conf:"enable_transfer_acceleration" desc:"Accepted for fluent-plugin-s3 compatibility." ignored:"objects go to the regional endpoint (or s3_endpoint)"`
	DualStack               bool              `conf:"enable_dual_stack" desc:"Accepted for fluent-plugin-s3 compatibility." ignored:"objects go to the regional endpoint (or s3_endpoint)"`
	Metadata                []MetadataEntry   `section:"s3_metadata" desc:"User metadata set on every object, as x-amz-meta- headers."`
	MetadataHash            map[string]string `conf:"s3_metadata" desc:"User metadata set on every object, as fluent-plugin-s3's hash: {\"key\": \"value\"} or key:value,key2:value2; values may hold the buffer's placeholders and %{index}."`
	Tagging                 string            `conf:"tagging" desc:"The objects' tag set, URL-encoded as S3's x-amz-tagging header takes it (team=logs&env=prod)."`
	LifecycleRules          []LifecycleRule   `section:"bucket_lifecycle_rule" desc:"Expiration rules set on the bucket at start, when the bucket's rules differ from them."`
	Compress                ZstdConfig        `section:"compress" desc:"zstd's compression level (store_as zstd)."`
	CommandParameter        string            `conf:"command_parameter" desc:"gzip_command's gzip flags; a level (-1 to -9, --fast, --best) is honoured by the built-in gzip, other flags are ignored with a warning."`
	Format                  *config.Element   `section:"format" desc:"How each event is written in the object: a formatter, out_file unless @type says otherwise."`
	awsauth.Options

	f         plugin.Formatter
	keys      buffer.ChunkKeys
	loc       *time.Location
	pathTmpl  *buffer.Template
	keyParts  []keyPart
	hostname  string
	client    s3API
	uploader  *manager.Uploader
	log       *slog.Logger
	pathStyle bool

	metadata  map[string]*buffer.Template // s3_metadata's values
	gzipLevel int

	mu      sync.Mutex     // guards indexes
	indexes map[string]int // next %{index} per key prefix
}

// LifecycleRule is one <bucket_lifecycle_rule>.
type LifecycleRule struct {
	ID             string `conf:"id,required" desc:"The rule's ID."`
	Prefix         string `conf:"prefix" desc:"The key prefix the rule applies to; empty, every object."`
	ExpirationDays int    `conf:"expiration_days,required" desc:"Objects under the prefix expire this many days after they are written."`
}

// ZstdConfig is <compress> of store_as zstd.
type ZstdConfig struct {
	Level int `conf:"level" desc:"The zstd level, 1 (fastest) to 22 (smallest); 3 by default."`
}

// MetadataEntry is one <s3_metadata> key/value.
type MetadataEntry struct {
	Key   string `conf:"key,required" desc:"The metadata key."`
	Value string `conf:"value,required" desc:"The metadata value."`
}

// s3API is the part of the S3 client the output uses; tests give a fake
// for error shapes a real server cannot produce.
type s3API interface {
	manager.UploadAPIClient
	HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
	CreateBucket(context.Context, *s3.CreateBucketInput, ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	ListObjectsV2(context.Context, *s3.ListObjectsV2Input, ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetBucketLifecycleConfiguration(context.Context, *s3.GetBucketLifecycleConfigurationInput, ...func(*s3.Options)) (*s3.GetBucketLifecycleConfigurationOutput, error)
	PutBucketLifecycleConfiguration(context.Context, *s3.PutBucketLifecycleConfigurationInput, ...func(*s3.Options)) (*s3.PutBucketLifecycleConfigurationOutput, error)
}

var (
	_ plugin.BufferedOutput = (*S3)(nil)
	_ plugin.EntryFormatter = (*S3)(nil)
)

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "s3", Summary: "write chunks as objects to Amazon S3 or an S3-compatible store",
		// fluent-plugin-s3 chunks by time, one hour.
		BufferDefaults: map[string]string{"": "time", "timekey": "1h"},
		Inject:         true,
		Sections:       map[string]plugin.Section{"format": {Kind: plugin.KindFormatter, Default: "out_file"}},
		New: func() any {
			return &S3{S3ObjectKeyFormat: "%{path}%{time_slice}_%{index}.%{file_extension}",
				IndexFormat: "%d", HexRandomLength: 4, StoreAs: "gzip", CheckObject: true, CheckBucket: true,
				AutoCreateBucket: true, StorageClass: "STANDARD", ComputeChecksums: true, SSLVerifyPeer: true,
				Localtime: true, UploadPartSize: 8 << 20, UploadConcurrency: 4, Compress: ZstdConfig{Level: 3}}
		}})
}

// keyPart is a literal run of s3_object_key_format (with ${...} and
// strftime) or one %{name} token.
type keyPart struct {
	tmpl  *buffer.Template
	token string
}

var tokenRE = regexp.MustCompile(`%\{[a-z_]+\}`)

// parseKeyFormat splits s3_object_key_format into literal templates (chunk
// placeholders, strftime) and %{...} tokens.
func parseKeyFormat(format string, keys buffer.ChunkKeys) ([]keyPart, error) {
	var parts []keyPart
	for rest := format; ; {
		loc := tokenRE.FindStringIndex(rest)
		lit := rest
		if loc != nil {
			lit = rest[:loc[0]]
		}
		if lit != "" {
			t, err := buffer.NewTemplate(lit, keys)
			if err != nil {
				return nil, err
			}
			parts = append(parts, keyPart{tmpl: t})
		}
		if loc == nil {
			return parts, nil
		}
		tok := rest[loc[0]+2 : loc[1]-1]
		switch tok {
		case "path", "time_slice", "index", "file_extension", "hex_random", "uuid_flush", "hostname":
		default:
			return nil, fmt.Errorf("unknown placeholder %%{%s}", tok)
		}
		parts = append(parts, keyPart{token: tok})
		rest = rest[loc[1]:]
	}
}

// Configure implements plugin.Configurer.
func (s *S3) Configure(c *plugin.Context) error {
	s.log, s.keys, s.hostname = c.Logger, c.ChunkKeys, c.Hostname
	s.loc = c.Location
	if s.loc == nil {
		s.loc = time.Local
		if s.Utc || !s.Localtime {
			s.loc = time.UTC
		}
	}
	if s.ReducedRedundancy && s.StorageClass == "STANDARD" {
		s.StorageClass = "REDUCED_REDUNDANCY"
	}
	if s.TimeSliceFormat == "" {
		s.TimeSliceFormat = timekeyFormat(c.Timekey)
	}
	f, err := c.Build.Formatter(s.Format, "out_file")
	if err != nil {
		return err
	}
	s.f = f
	if s.pathTmpl, err = buffer.NewTemplate(s.Path, s.keys); err != nil {
		return fmt.Errorf("path: %w", err)
	}
	if s.keyParts, err = parseKeyFormat(s.S3ObjectKeyFormat, s.keys); err != nil {
		return fmt.Errorf("s3_object_key_format: %w", err)
	}
	if err := s.checkUnique(); err != nil {
		return err
	}
	if len(s.MetadataHash) > 0 {
		s.metadata = map[string]*buffer.Template{}
		for k, v := range s.MetadataHash {
			if s.metadata[k], err = buffer.NewTemplate(v, s.keys); err != nil {
				return fmt.Errorf("s3_metadata %s: %w", k, err)
			}
		}
	}
	if s.Compress.Level < 1 || s.Compress.Level > 22 {
		return fmt.Errorf("<compress> level %d: zstd's levels are 1 to 22", s.Compress.Level)
	}
	s.gzipLevel = gzipLevel(s.CommandParameter, s.log)
	for _, r := range s.LifecycleRules {
		if r.ExpirationDays < 1 {
			return fmt.Errorf("<bucket_lifecycle_rule> %s: expiration_days must be at least 1", r.ID)
		}
	}
	if s.UploadPartSize < config.Size(manager.MinUploadPartSize) {
		return fmt.Errorf("upload_part_size must be at least %d", manager.MinUploadPartSize)
	}
	if s.UploadConcurrency < 1 {
		return fmt.Errorf("upload_concurrency must be at least 1")
	}
	if s.ForcePathStyle != "" {
		if _, err := config.ParseBool(s.ForcePathStyle); err != nil {
			return fmt.Errorf("force_path_style: %w", err)
		}
	}
	s.indexes = map[string]int{}
	return nil
}

// checkUnique refuses a key format under which chunks would overwrite
// each other.
func (s *S3) checkUnique() error {
	f := s.S3ObjectKeyFormat
	if strings.Contains(f, "%{index}") || strings.Contains(f, "%{hex_random}") || strings.Contains(f, "%{uuid_flush}") {
		return nil
	}
	return fmt.Errorf("s3_object_key_format %q must hold %%{index}, %%{hex_random} or %%{uuid_flush}, or objects overwrite each other", f)
}

// FormatEntry implements plugin.EntryFormatter.
func (s *S3) FormatEntry(dst []byte, tag string, t event.Time, r event.Record) ([]byte, error) {
	return s.f.Format(dst, tag, t, r)
}

// Init builds the client (the SDK's default credential chain unless a
// credentials section says otherwise) and checks the bucket.
func (s *S3) Init(ctx context.Context) error {
	client, err := s.newClient(ctx)
	if err != nil {
		return err
	}
	s.client = client
	s.uploader = manager.NewUploader(client, func(u *manager.Uploader) {
		u.PartSize = int64(s.UploadPartSize)
		u.Concurrency = s.UploadConcurrency
	})
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if s.CheckBucket {
		if err := s.ensureBucket(ctx); err != nil {
			return err
		}
	}
	return s.ensureLifecycle(ctx)
}

// ensureBucket checks that the bucket exists and creates it when
// auto_create_bucket allows.
func (s *S3) ensureBucket(ctx context.Context) error {
	_, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(s.S3Bucket)})
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("checking bucket %s: %w", s.S3Bucket, describe(err))
	}
	if !s.AutoCreateBucket {
		return fmt.Errorf("bucket %s does not exist (auto_create_bucket is off)", s.S3Bucket)
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(s.S3Bucket)}
	if awsauth.Region(s.S3Region) != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(awsauth.Region(s.S3Region))}
	}
	if _, err := s.client.CreateBucket(ctx, in); err != nil {
		var owned *types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			return fmt.Errorf("creating bucket %s: %w", s.S3Bucket, describe(err))
		}
	}
	s.log.Info("created bucket", "bucket", s.S3Bucket)
	return nil
}

// ensureLifecycle sets the bucket's expiration rules to the configured
// ones when they differ, as fluent-plugin-s3 does at start. Rules are
// compared by ID, prefix, days and status; the bucket's whole rule set is
// replaced, as S3's API only allows.
func (s *S3) ensureLifecycle(ctx context.Context) error {
	if len(s.LifecycleRules) == 0 {
		return nil
	}
	want := make([]string, 0, len(s.LifecycleRules))
	rules := make([]types.LifecycleRule, 0, len(s.LifecycleRules))
	for _, r := range s.LifecycleRules {
		want = append(want, fmt.Sprintf("%s\x00%s\x00%d\x00Enabled", r.ID, r.Prefix, r.ExpirationDays))
		rules = append(rules, types.LifecycleRule{ID: aws.String(r.ID), Status: types.ExpirationStatusEnabled,
			Filter:     &types.LifecycleRuleFilter{Prefix: aws.String(r.Prefix)},
			Expiration: &types.LifecycleExpiration{Days: aws.Int32(int32(r.ExpirationDays))}})
	}
	sort.Strings(want)
	var have []string
	out, err := s.client.GetBucketLifecycleConfiguration(ctx, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(s.S3Bucket)})
	switch {
	case err == nil:
		for _, r := range out.Rules {
			prefix := aws.ToString(r.Prefix) //nolint:staticcheck // rules written by older tools carry the prefix here
			if r.Filter != nil && r.Filter.Prefix != nil {
				prefix = *r.Filter.Prefix
			}
			var days int32
			if r.Expiration != nil {
				days = aws.ToInt32(r.Expiration.Days)
			}
			have = append(have, fmt.Sprintf("%s\x00%s\x00%d\x00%s", aws.ToString(r.ID), prefix, days, r.Status))
		}
		sort.Strings(have)
	case !isNoLifecycle(err):
		return fmt.Errorf("reading the lifecycle rules of bucket %s: %w", s.S3Bucket, describe(err))
	}
	if slices.Equal(have, want) {
		return nil
	}
	if _, err := s.client.PutBucketLifecycleConfiguration(ctx, &s3.PutBucketLifecycleConfigurationInput{Bucket: aws.String(s.S3Bucket),
		LifecycleConfiguration: &types.BucketLifecycleConfiguration{Rules: rules}}); err != nil {
		return fmt.Errorf("setting the lifecycle rules of bucket %s: %w", s.S3Bucket, describe(err))
	}
	s.log.Info("set the bucket's lifecycle rules", "bucket", s.S3Bucket, "rules", len(rules))
	return nil
}

// isNoLifecycle reports S3's answer for a bucket without lifecycle rules.
func isNoLifecycle(err error) bool {
	var api smithy.APIError
	return errors.As(err, &api) && api.ErrorCode() == "NoSuchLifecycleConfiguration"
}

// gzipLevel reads a level from gzip_command's command_parameter (gzip's
// -1 to -9, --fast, --best); Sluice compresses in process, so the other
// flags have nothing to act on.
func gzipLevel(param string, log *slog.Logger) int {
	level := pgzip.DefaultCompression
	for _, f := range strings.Fields(param) {
		switch {
		case f == "--fast":
			level = 1
		case f == "--best":
			level = 9
		case len(f) == 2 && f[0] == '-' && f[1] >= '1' && f[1] <= '9':
			level = int(f[1] - '0')
		default:
			log.Warn("command_parameter flag accepted and ignored: Sluice gzips in process, and only a level applies", "flag", f)
		}
	}
	return level
}

func (s *S3) newClient(ctx context.Context) (*s3.Client, error) {
	cfg, err := awsauth.Load(ctx, awsauth.Region(s.S3Region), awsauth.Static{KeyID: s.AWSKeyID, Secret: s.AWSSecKey}, s.Options,
		awsauth.HTTP{Proxy: s.ProxyURI, VerifyPeer: s.SSLVerifyPeer, CABundle: s.SSLCABundle, CADir: s.SSLCADirectory}, s.log)
	if err != nil {
		return nil, err
	}
	endpoint := s.S3Endpoint
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_S3")
	}
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	s.pathStyle = pathStyleFor(s.ForcePathStyle, endpoint)
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if s.S3Endpoint != "" {
			o.BaseEndpoint = aws.String(s.S3Endpoint)
		}
		o.UsePathStyle = s.pathStyle
		if !s.ComputeChecksums {
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		}
	}), nil
}

// pathStyleFor: force_path_style when given; otherwise path style for an
// endpoint at an IP address or localhost, where bucket subdomains cannot
// resolve (MinIO and other local stores).
func pathStyleFor(force, endpoint string) bool {
	if force != "" {
		b, _ := config.ParseBool(force)
		return b
	}
	if endpoint == "" {
		return false
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return false
	}
	host := u.Hostname()
	return host == "localhost" || net.ParseIP(host) != nil
}

// Write implements plugin.BufferedOutput.
func (s *S3) Write(ctx context.Context, c *plugin.Chunk) error {
	key, _ := c.Meta("s3_key")
	if key == "" {
		var err error
		var index string
		if key, index, err = s.objectKey(ctx, c); err != nil {
			return err
		}
		if err := c.SaveMeta("s3_key", key); err != nil {
			return fmt.Errorf("keeping the object key with the chunk: %w", err)
		}
		if s.metadataUsesIndex() {
			if err := c.SaveMeta("s3_index", index); err != nil {
				return fmt.Errorf("keeping the object's index with the chunk: %w", err)
			}
		}
	}
	body, wait := s.compress(c.Data)
	in := &s3.PutObjectInput{
		Bucket:       aws.String(s.S3Bucket),
		Key:          aws.String(key),
		Body:         body,
		ContentType:  aws.String(s.contentType()),
		StorageClass: types.StorageClass(s.StorageClass),
	}
	if s.ACL != "" {
		in.ACL = types.ObjectCannedACL(s.ACL)
	}
	if s.UseServerSideEncryption != "" {
		in.ServerSideEncryption = types.ServerSideEncryption(s.UseServerSideEncryption)
	}
	if s.SSEKMSKeyID != "" {
		in.SSEKMSKeyId = aws.String(s.SSEKMSKeyID)
	}
	for _, f := range []struct {
		v   string
		dst **string
	}{{s.GrantFullControl, &in.GrantFullControl}, {s.GrantRead, &in.GrantRead}, {s.GrantReadACP, &in.GrantReadACP},
		{s.GrantWriteACP, &in.GrantWriteACP}, {s.SSECustomerAlgorithm, &in.SSECustomerAlgorithm},
		{s.SSECustomerKey, &in.SSECustomerKey}, {s.SSECustomerKeyMD5, &in.SSECustomerKeyMD5}} {
		if f.v != "" {
			*f.dst = aws.String(f.v)
		}
	}
	if s.Tagging != "" {
		in.Tagging = aws.String(s.Tagging)
	}
	if len(s.Metadata) > 0 || len(s.metadata) > 0 {
		in.Metadata = map[string]string{}
		for _, m := range s.Metadata {
			in.Metadata[m.Key] = m.Value
		}
		index, _ := c.Meta("s3_index")
		for k, t := range s.metadata {
			v, err := t.Expand(c.Key, s.loc)
			if err != nil {
				return fmt.Errorf("s3_metadata %s: %w", k, err)
			}
			in.Metadata[k] = strings.ReplaceAll(v, "%{index}", index)
		}
	}
	_, err := s.uploader.Upload(ctx, in)
	if cerr := wait(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return classify(fmt.Errorf("uploading s3://%s/%s: %w", s.S3Bucket, key, describe(err)))
	}
	return nil
}

// objectKey builds the key: path and the literal parts of the format with
// their placeholders, then the %{...} tokens, %{index} last.
// metadataUsesIndex reports whether an s3_metadata value holds %{index}.
func (s *S3) metadataUsesIndex() bool {
	for _, v := range s.MetadataHash {
		if strings.Contains(v, "%{index}") {
			return true
		}
	}
	return false
}

// objectKey decides a chunk's object key, and the %{index} in it ("" when
// the format has none).
func (s *S3) objectKey(ctx context.Context, c *plugin.Chunk) (key, index string, err error) {
	path, err := s.pathTmpl.Expand(c.Key, s.loc)
	if err != nil {
		return "", "", fmt.Errorf("path: %w", err)
	}
	sliceTime := time.Now().In(s.loc)
	if s.keys.Time {
		sliceTime = time.Unix(c.Key.Timekey, 0).In(s.loc)
	}
	var b strings.Builder
	indexAt := -1
	for _, p := range s.keyParts {
		if p.tmpl != nil {
			v, err := p.tmpl.Expand(c.Key, s.loc)
			if err != nil {
				return "", "", fmt.Errorf("s3_object_key_format: %w", err)
			}
			b.WriteString(v)
			continue
		}
		switch p.token {
		case "path":
			b.WriteString(path)
		case "time_slice":
			b.WriteString(strftime.Format(s.TimeSliceFormat, sliceTime))
		case "file_extension":
			b.WriteString(s.extension())
		case "hex_random":
			b.WriteString(hexRandom(c.ID, s.HexRandomLength))
		case "uuid_flush":
			b.WriteString(uuidFrom(c.ID))
		case "hostname":
			b.WriteString(s.hostname)
		case "index":
			indexAt = b.Len()
			b.WriteString("\x00")
		}
	}
	key = b.String()
	if indexAt < 0 {
		return key, "", nil
	}
	prefix, suffix := key[:indexAt], key[indexAt+1:]
	n, err := s.nextIndex(ctx, prefix)
	if err != nil {
		return "", "", err
	}
	index = fmt.Sprintf(s.IndexFormat, n)
	return prefix + index + suffix, index, nil
}

// maxPrefixes bounds the remembered index counters (one per key prefix,
// which changes each time slice).
const maxPrefixes = 4096

// nextIndex returns the next free index under prefix. The first time a
// prefix is seen (since start) its objects are listed to continue after
// the highest index; later indexes come from the counter.
func (s *S3) nextIndex(ctx context.Context, prefix string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n, ok := s.indexes[prefix]
	if !ok {
		if s.CheckObject {
			highest, err := s.highestIndex(ctx, prefix)
			if err != nil {
				return 0, classify(fmt.Errorf("listing s3://%s/%s: %w", s.S3Bucket, prefix, describe(err)))
			}
			n = highest + 1
		}
		if len(s.indexes) >= maxPrefixes {
			clear(s.indexes)
		}
	}
	s.indexes[prefix] = n + 1
	return n, nil
}

func (s *S3) highestIndex(ctx context.Context, prefix string) (int, error) {
	highest := -1
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: aws.String(s.S3Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		for _, o := range page.Contents {
			rest := strings.TrimPrefix(aws.ToString(o.Key), prefix)
			end := 0
			for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
				end++
			}
			if n, err := strconv.Atoi(rest[:end]); err == nil && n > highest {
				highest = n
			}
		}
	}
	return highest, nil
}

func (s *S3) extension() string {
	switch s.StoreAs {
	case "gzip", "gzip_command":
		return "gz"
	case "json":
		return "json"
	case "zstd":
		return "zst"
	}
	return "txt"
}

func (s *S3) contentType() string {
	switch s.StoreAs {
	case "gzip", "gzip_command":
		return "application/x-gzip"
	case "json":
		return "application/json"
	case "zstd":
		return "application/x-zstd"
	}
	return "text/plain"
}

// gzipBlock is pgzip's block size: each block is compressed on its own
// core, and about two blocks per core are in memory at once.
const gzipBlock = 1 << 20

// compress streams data through the store_as compression; wait reports
// the compressor's error once the body has been read.
func (s *S3) compress(data []byte) (io.Reader, func() error) {
	switch s.StoreAs {
	case "gzip", "gzip_command":
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			zw, err := pgzip.NewWriterLevel(pw, s.gzipLevel)
			if err == nil {
				err = zw.SetConcurrency(gzipBlock, 2*runtime.GOMAXPROCS(0))
			}
			if err == nil {
				_, err = zw.Write(data)
			}
			if err == nil {
				err = zw.Close()
			}
			pw.CloseWithError(err)
			done <- err
		}()
		return pr, func() error { _ = pr.Close(); return <-done }
	case "zstd":
		pr, pw := io.Pipe()
		done := make(chan error, 1)
		go func() {
			zw, err := zstd.NewWriter(pw, zstd.WithEncoderConcurrency(runtime.GOMAXPROCS(0)),
				zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(s.Compress.Level)))
			if err == nil {
				if _, err = zw.Write(data); err == nil {
					err = zw.Close()
				}
			}
			pw.CloseWithError(err)
			done <- err
		}()
		return pr, func() error { _ = pr.Close(); return <-done }
	}
	return bytes.NewReader(data), func() error { return nil }
}

// hexRandom is %{hex_random}: derived from the chunk id, so a retried
// chunk keeps its key.
func hexRandom(id buffer.ID, n int) string {
	h := hex.EncodeToString(id[:])
	if n <= 0 || n > len(h) {
		n = len(h)
	}
	return h[len(h)-n:]
}

// uuidFrom formats the chunk id as a UUID (%{uuid_flush}), stable across
// retries.
func uuidFrom(id buffer.ID) string {
	b := id
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func isNotFound(err error) bool {
	var nf *types.NotFound
	var nsb *types.NoSuchBucket
	var re *awshttp.ResponseError
	return errors.As(err, &nf) || errors.As(err, &nsb) || (errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound)
}

// describe adds what an operator needs to act on the common failures.
func describe(err error) error {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return err
	}
	switch api.ErrorCode() {
	case "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken":
		return fmt.Errorf("%w (check the credentials and the bucket policy: the request was refused)", err)
	case "NoSuchBucket":
		return fmt.Errorf("%w (the bucket does not exist: create it, or set auto_create_bucket)", err)
	}
	return err
}

// classify marks throttling with a longer retry hint. Every S3 failure is
// retried: access and missing buckets get fixed by operators within the
// retry window, and a permanent error would send the data to <secondary>.
func classify(err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded", "TooManyRequests":
			return &plugin.RetryAfter{Err: err, Delay: 5 * time.Second}
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusServiceUnavailable {
		return &plugin.RetryAfter{Err: err, Delay: 5 * time.Second}
	}
	return err
}

// timekeyFormat is fluent-plugin-s3's time_slice_format for a timekey it
// was not given: as fine as the timekey's width.
func timekeyFormat(timekey time.Duration) string {
	if timekey <= 0 {
		return "%Y%m%d%H" // no time chunks: %{time_slice} is the hour of the write
	}
	return buffer.TimekeyFormat(timekey)
}
