package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/klauspost/compress/gzip"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/plugin"
)

// fakeS3 is an in-memory bucket for error shapes a real server does not
// produce on demand. The integration tests use a real S3 server.
type fakeS3 struct {
	mu      sync.Mutex
	objects map[string][]byte
	fail    []error // returned by the next PutObject calls
	puts    []string
	last    *s3.PutObjectInput
	rules   []types.LifecycleRule // the bucket's lifecycle rules; nil: none
	ruleSet int                   // PutBucketLifecycleConfiguration calls
}

func (f *fakeS3) PutObject(ctx context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	data, _ := io.ReadAll(in.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts = append(f.puts, aws.ToString(in.Key))
	f.last = in
	if len(f.fail) > 0 {
		err := f.fail[0]
		f.fail = f.fail[1:]
		return nil, err
	}
	f.objects[aws.ToString(in.Key)] = data
	return &s3.PutObjectOutput{}, nil
}

func (f *fakeS3) UploadPart(context.Context, *s3.UploadPartInput, ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	return nil, errors.New("not used")
}
func (f *fakeS3) CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return nil, errors.New("not used")
}
func (f *fakeS3) CompleteMultipartUpload(context.Context, *s3.CompleteMultipartUploadInput, ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return nil, errors.New("not used")
}
func (f *fakeS3) AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return nil, errors.New("not used")
}
func (f *fakeS3) HeadBucket(context.Context, *s3.HeadBucketInput, ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	return &s3.HeadBucketOutput{}, nil
}
func (f *fakeS3) CreateBucket(context.Context, *s3.CreateBucketInput, ...func(*s3.Options)) (*s3.CreateBucketOutput, error) {
	return &s3.CreateBucketOutput{}, nil
}
func (f *fakeS3) ListObjectsV2(_ context.Context, in *s3.ListObjectsV2Input, _ ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := &s3.ListObjectsV2Output{}
	for k := range f.objects {
		if strings.HasPrefix(k, aws.ToString(in.Prefix)) {
			out.Contents = append(out.Contents, types.Object{Key: aws.String(k)})
		}
	}
	return out, nil
}

func (f *fakeS3) GetBucketLifecycleConfiguration(context.Context, *s3.GetBucketLifecycleConfigurationInput, ...func(*s3.Options)) (*s3.GetBucketLifecycleConfigurationOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rules == nil {
		// S3's answer for a bucket with no rules.
		return nil, &smithy.GenericAPIError{Code: "NoSuchLifecycleConfiguration", Message: "The lifecycle configuration does not exist"}
	}
	return &s3.GetBucketLifecycleConfigurationOutput{Rules: f.rules}, nil
}
func (f *fakeS3) PutBucketLifecycleConfiguration(_ context.Context, in *s3.PutBucketLifecycleConfigurationInput, _ ...func(*s3.Options)) (*s3.PutBucketLifecycleConfigurationOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = in.LifecycleConfiguration.Rules
	f.ruleSet++
	return &s3.PutBucketLifecycleConfigurationOutput{}, nil
}

func newTestS3(t *testing.T, format string, fake *fakeS3) *S3 {
	t.Helper()
	s := &S3{S3Bucket: "b", S3ObjectKeyFormat: format, TimeSliceFormat: "%Y%m%d%H", IndexFormat: "%d", HexRandomLength: 4,
		StoreAs: "gzip", CheckObject: true, StorageClass: "STANDARD", UploadPartSize: 8 << 20, UploadConcurrency: 2,
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), hostname: "host-a", loc: time.UTC, indexes: map[string]int{}}
	keys, _ := buffer.ParseChunkKeys("path,time")
	s.keys = keys
	var err error
	if s.pathTmpl, err = buffer.NewTemplate("${path}", keys); err != nil {
		t.Fatal(err)
	}
	if s.keyParts, err = parseKeyFormat(format, keys); err != nil {
		t.Fatal(err)
	}
	s.client = fake
	s.uploader = manager.NewUploader(fake, func(u *manager.Uploader) { u.PartSize = 8 << 20 })
	return s
}

func chunk(path string, hour int64, data string) *plugin.Chunk {
	return &plugin.Chunk{ID: buffer.NewID(), Key: buffer.NewKey("", 1700000000+hour*3600, []string{path}), Data: []byte(data), Records: 1}
}

// objectKey is the key the chunk's write chose and kept with it.
func objectKey(c *plugin.Chunk) string {
	k, _ := c.Meta("s3_key")
	return k
}

func gunzip(t *testing.T, b []byte) string {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(zr)
	return string(out)
}

func TestKeysIndexesAndRetries(t *testing.T) {
	fake := &fakeS3{objects: map[string][]byte{
		"cust-1/host-a_2023111422_0.gz": nil, // left by an earlier run
		"cust-1/host-a_2023111422_1.gz": nil,
	}}
	s := newTestS3(t, "%{path}/host-a_%{time_slice}_%{index}.%{file_extension}", fake)
	ctx := context.Background()

	a := chunk("cust-1", 0, "line a\n")
	if err := s.Write(ctx, a); err != nil {
		t.Fatal(err)
	}
	if objectKey(a) != "cust-1/host-a_2023111422_2.gz" {
		t.Fatalf("first key %q: must continue after the listed objects", objectKey(a))
	}
	// A retried chunk writes the same object again.
	fake.fail = []error{&smithy.GenericAPIError{Code: "InternalError", Message: "try again"}}
	b := chunk("cust-1", 0, "line b\n")
	if err := s.Write(ctx, b); err == nil {
		t.Fatal("the injected failure was not reported")
	}
	if err := s.Write(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := fake.puts[len(fake.puts)-2:]; got[0] != got[1] || got[0] != "cust-1/host-a_2023111422_3.gz" {
		t.Errorf("retry wrote %v: want the same key twice", got)
	}
	if gunzip(t, fake.objects["cust-1/host-a_2023111422_3.gz"]) != "line b\n" {
		t.Error("object content")
	}
	// Another path, another hour: their own counters.
	other := chunk("cust-2", 1, "x\n")
	s.Write(ctx, other)
	if objectKey(other) != "cust-2/host-a_2023111423_0.gz" {
		t.Errorf("key %q", objectKey(other))
	}
}

func TestThrottlingHintsALongerRetry(t *testing.T) {
	fake := &fakeS3{objects: map[string][]byte{}}
	fake.fail = []error{&smithy.GenericAPIError{Code: "SlowDown", Message: "reduce your request rate"}}
	s := newTestS3(t, "%{path}/%{index}", fake)
	err := s.Write(context.Background(), chunk("p", 0, "x"))
	var ra *plugin.RetryAfter
	if !errors.As(err, &ra) || ra.Delay < time.Second {
		t.Errorf("SlowDown gave %v", err)
	}
	if plugin.IsPermanent(err) {
		t.Error("throttling must not be permanent")
	}
	fake.fail = []error{&smithy.GenericAPIError{Code: "AccessDenied", Message: "denied"}}
	err = s.Write(context.Background(), chunk("p", 0, "x"))
	if err == nil || !strings.Contains(err.Error(), "check the credentials") {
		t.Errorf("AccessDenied gave %v", err)
	}
}

func TestStableRandomPlaceholders(t *testing.T) {
	fake := &fakeS3{objects: map[string][]byte{}}
	s := newTestS3(t, "%{path}/%{hex_random}-%{uuid_flush}.%{file_extension}", fake)
	c := chunk("p", 0, "x")
	k1, _, _ := s.objectKey(context.Background(), c)
	k2, _, _ := s.objectKey(context.Background(), c)
	if k1 != k2 || !strings.HasPrefix(k1, "p/") || len(k1) < 40 {
		t.Errorf("keys %q and %q: derived from the chunk id, they must not change", k1, k2)
	}
}

func TestPathStyle(t *testing.T) {
	for _, tc := range []struct {
		force, endpoint string
		want            bool
	}{
		{"", "", false}, {"", "http://127.0.0.1:9000", true}, {"", "http://localhost:9000", true},
		{"", "https://s3.eu-west-1.amazonaws.com", false}, {"true", "https://s3.example.com", true}, {"false", "http://127.0.0.1:9000", false},
	} {
		if got := pathStyleFor(tc.force, tc.endpoint); got != tc.want {
			t.Errorf("force %q endpoint %q: %v", tc.force, tc.endpoint, got)
		}
	}
}

func TestKeyFormatNeedsUniqueness(t *testing.T) {
	s := &S3{S3ObjectKeyFormat: "%{path}/fixed.gz"}
	err := s.checkUnique()
	if err == nil {
		t.Error("a key format without %{index}, %{hex_random} or %{uuid_flush} was accepted")
	}
}

// TestTimeSliceFormatFollowsTimekey: without time_slice_format, object
// keys are as fine as the timekey, as fluent-plugin-s3 makes them.
func TestTimeSliceFormatFollowsTimekey(t *testing.T) {
	for _, c := range []struct {
		timekey time.Duration
		want    string
	}{
		{30 * time.Second, "%Y%m%d%H%M%S"}, {10 * time.Minute, "%Y%m%d%H%M"}, {time.Hour, "%Y%m%d%H"},
		{6 * time.Hour, "%Y%m%d%H"}, {24 * time.Hour, "%Y%m%d"}, {7 * 24 * time.Hour, "%Y%m%d"},
	} {
		if got := timekeyFormat(c.timekey); got != c.want {
			t.Errorf("timekey %v: %s, want %s", c.timekey, got, c.want)
		}
	}
}

// TestGrantsAndCustomerKeys: fluent-plugin-s3's grant_* and sse_customer_*
// parameters reach the PutObject request.
func TestGrantsAndCustomerKeys(t *testing.T) {
	fake := &fakeS3{objects: map[string][]byte{}}
	s := newTestS3(t, "%{path}%{time_slice}_%{index}.%{file_extension}", fake)
	s.GrantRead, s.GrantFullControl = `id="reader"`, `id="owner"`
	s.SSECustomerAlgorithm, s.SSECustomerKey, s.SSECustomerKeyMD5 = "AES256", "a2V5", "bWQ1"
	if err := s.Write(context.Background(), chunk("p/", 1, "x\n")); err != nil {
		t.Fatal(err)
	}
	in := fake.last
	if aws.ToString(in.GrantRead) != `id="reader"` || aws.ToString(in.GrantFullControl) != `id="owner"` ||
		aws.ToString(in.SSECustomerAlgorithm) != "AES256" || aws.ToString(in.SSECustomerKey) != "a2V5" || aws.ToString(in.SSECustomerKeyMD5) != "bWQ1" {
		t.Errorf("request %+v", in)
	}
	if in.GrantWriteACP != nil {
		t.Error("an unset grant was sent")
	}
}

// TestLifecycleRulesSetOnlyWhenTheyDiffer: <bucket_lifecycle_rule> sets
// the bucket's rules at start when they differ from the configured ones,
// and leaves them alone when they are the same (in any order).
func TestLifecycleRulesSetOnlyWhenTheyDiffer(t *testing.T) {
	fake := &fakeS3{objects: map[string][]byte{}}
	s := newTestS3(t, "%{path}%{time_slice}_%{index}.%{file_extension}", fake)
	s.LifecycleRules = []LifecycleRule{{ID: "logs", Prefix: "logs/", ExpirationDays: 30}, {ID: "all", ExpirationDays: 400}}
	ctx := context.Background()
	if err := s.ensureLifecycle(ctx); err != nil {
		t.Fatal(err)
	}
	if fake.ruleSet != 1 || len(fake.rules) != 2 || aws.ToString(fake.rules[0].Filter.Prefix) != "logs/" || aws.ToInt32(fake.rules[0].Expiration.Days) != 30 {
		t.Fatalf("after the first start: %d calls, rules %+v", fake.ruleSet, fake.rules)
	}
	fake.rules[0], fake.rules[1] = fake.rules[1], fake.rules[0]
	if err := s.ensureLifecycle(ctx); err != nil || fake.ruleSet != 1 {
		t.Errorf("the same rules were set again (%d calls, %v)", fake.ruleSet, err)
	}
	s.LifecycleRules[0].ExpirationDays = 7
	if err := s.ensureLifecycle(ctx); err != nil || fake.ruleSet != 2 {
		t.Errorf("changed rules were not set (%d calls, %v)", fake.ruleSet, err)
	}
}

// TestMetadataTaggingAndLevels: the s3_metadata hash's values take the
// chunk's placeholders and the object's %{index}; tagging is sent as
// given; command_parameter's level flags choose the gzip level.
func TestMetadataTaggingAndLevels(t *testing.T) {
	fake := &fakeS3{objects: map[string][]byte{}}
	s := newTestS3(t, "%{path}%{time_slice}_%{index}.%{file_extension}", fake)
	s.MetadataHash = map[string]string{"source-path": "${path}", "object-index": "%{index}"}
	s.Tagging = "team=logs&env=prod"
	s.metadata = map[string]*buffer.Template{}
	for k, v := range s.MetadataHash {
		tmpl, err := buffer.NewTemplate(v, s.keys)
		if err != nil {
			t.Fatal(err)
		}
		s.metadata[k] = tmpl
	}
	c := chunk("web/", 1, "x\n")
	if err := s.Write(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	c2 := chunk("web/", 1, "y\n")
	if err := s.Write(context.Background(), c2); err != nil {
		t.Fatal(err)
	}
	in := fake.last
	if in.Metadata["source-path"] != "web/" || in.Metadata["object-index"] != "1" || aws.ToString(in.Tagging) != "team=logs&env=prod" {
		t.Errorf("metadata %v, tagging %q", in.Metadata, aws.ToString(in.Tagging))
	}
	log := slog.New(slog.DiscardHandler)
	for param, want := range map[string]int{"": -1, "-9": 9, "--fast": 1, "--best -n": 9, "-3 --rsyncable": 3} {
		if got := gzipLevel(param, log); got != want {
			t.Errorf("command_parameter %q: level %d, want %d", param, got, want)
		}
	}
}
