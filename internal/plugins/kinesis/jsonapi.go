package kinesis

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/smithy-go"
	"github.com/sluice-log/sluice/internal/awsauth"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/transport"
)

// jsonAPI calls a batch operation of the AWS JSON 1.1 protocol without
// the SDK's serialisation: the caller writes the body straight from its
// records into a reused buffer (the documented JSON: the stream's name and
// each record's data in base64), the call is signed with the SDK's SigV4
// signer, and the caller reads the answer for the per-record error codes
// only. The SDK client still gives the endpoint (`endpoint`,
// AWS_ENDPOINT_URL_FIREHOSE or _KINESIS, the region's), the credentials
// and the HTTP client, so that they behave as the SDK does.
type jsonAPI struct {
	url    string
	target string // X-Amz-Target
	signer *awsauth.Signer
	http   interface {
		Do(*http.Request) (*http.Response, error)
	}
	bodies sync.Pool // *[]byte
}

// newJSONAPI calls target at uri, signed for service (firehose, kinesis)
// in region.
func newJSONAPI(uri url.URL, region, service, target string, creds aws.CredentialsProvider, client interface {
	Do(*http.Request) (*http.Response, error)
}) *jsonAPI {
	return &jsonAPI{url: strings.TrimSuffix(uri.String(), "/") + "/", target: target,
		signer: awsauth.NewSigner(creds, service, region), http: client}
}

// newPutRecordBatch is Firehose's PutRecordBatch through the client's
// endpoint, credentials and HTTP client.
func newPutRecordBatch(ctx context.Context, client *firehose.Client) (*jsonAPI, error) {
	o := client.Options()
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, firehose.EndpointParameters{
		Region: aws.String(o.Region), Endpoint: o.BaseEndpoint,
		UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
	})
	if err != nil {
		return nil, fmt.Errorf("resolving the Firehose endpoint: %w", err)
	}
	return newJSONAPI(ep.URI, o.Region, "firehose", "Firehose_20150804.PutRecordBatch", o.Credentials, o.HTTPClient), nil
}

// newPutRecords is Kinesis Data Streams' PutRecords likewise.
func newPutRecords(ctx context.Context, client *kinesis.Client) (*jsonAPI, error) {
	o := client.Options()
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, kinesis.EndpointParameters{
		Region: aws.String(o.Region), Endpoint: o.BaseEndpoint,
		UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
	})
	if err != nil {
		return nil, fmt.Errorf("resolving the Kinesis endpoint: %w", err)
	}
	return newJSONAPI(ep.URI, o.Region, "kinesis", "Kinesis_20131202.PutRecords", o.Credentials, o.HTTPClient), nil
}

// apiError is an error answer of the JSON protocol: {"__type": ..., "message": ...}.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("%d %s: %s", e.status, e.code, e.message)
}

// ErrorCode, ErrorMessage and ErrorFault make it a smithy.APIError, as
// the SDK's errors are, for the sender's classification.
func (e *apiError) ErrorCode() string    { return e.code }
func (e *apiError) ErrorMessage() string { return e.message }
func (e *apiError) ErrorFault() smithy.ErrorFault {
	if e.status >= 500 {
		return smithy.FaultServer
	}
	return smithy.FaultClient
}

// maxAnswer bounds the answer read into memory: 500 record ids or
// sequence numbers.
const maxAnswer = 4 << 20

// putRecordBatch sends Firehose records: {"DeliveryStreamName", "Records":
// [{"Data"}]}, answered with FailedPutCount and RequestResponses.
func (p *jsonAPI) putRecordBatch(ctx context.Context, stream string, recs []record) ([]string, error) {
	return p.put(ctx, `{"DeliveryStreamName":`, stream, recs, false, "FailedPutCount", "RequestResponses")
}

// putRecords sends Kinesis records: {"StreamName", "Records": [{"Data",
// "PartitionKey"}]}, answered with FailedRecordCount and Records.
func (p *jsonAPI) putRecords(ctx context.Context, stream string, recs []record) ([]string, error) {
	return p.put(ctx, `{"StreamName":`, stream, recs, true, "FailedRecordCount", "Records")
}

func (p *jsonAPI) put(ctx context.Context, head, stream string, recs []record, keys bool, failedField, resultsField string) ([]string, error) {
	bp, _ := p.bodies.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	body := append((*bp)[:0], head...)
	body = event.AppendJSONString(body, []byte(stream))
	body = append(body, `,"Records":[`...)
	for i, r := range recs {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"Data":"`...)
		body = base64.StdEncoding.AppendEncode(body, r.data)
		body = append(body, '"')
		if keys {
			body = append(body, `,"PartitionKey":`...)
			body = event.AppendJSONString(body, []byte(r.key))
		}
		body = append(body, '}')
	}
	body = append(body, "]}"...)
	answer, released, err := p.call(ctx, body)
	if released {
		*bp = body
		p.bodies.Put(bp)
	}
	if err != nil {
		return nil, err
	}
	return results(answer, len(recs), failedField, resultsField)
}

// results reads an answer's per-record error codes: none to read when its
// failed count is 0 (the record ids or sequence numbers are not needed;
// Fluent Bit trusts the count the same way).
func results(answer []byte, n int, failedField, resultsField string) ([]string, error) {
	if failed, ok := failedCount(answer, failedField); ok && failed == 0 {
		return make([]string, n), nil
	}
	var out map[string]json.RawMessage
	if err := json.Unmarshal(answer, &out); err != nil || out[failedField] == nil {
		return nil, fmt.Errorf("the answer has no %s: %.200q", failedField, answer)
	}
	var rs []struct {
		ErrorCode string `json:"ErrorCode"`
	}
	if err := json.Unmarshal(out[resultsField], &rs); err != nil {
		return nil, fmt.Errorf("the answer's %s: %w", resultsField, err)
	}
	if len(rs) != n {
		return nil, fmt.Errorf("the answer has %d results for %d records", len(rs), n)
	}
	codes := make([]string, n)
	for i, r := range rs {
		codes[i] = r.ErrorCode
	}
	return codes, nil
}

// call posts one signed request and returns the answer of a 200; released
// reports that the transport has let go of body (transport.TrackedBody).
func (p *jsonAPI) call(ctx context.Context, body []byte) (answer []byte, released bool, err error) {
	tb := transport.NewTrackedBody(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, tb)
	if err != nil {
		return nil, true, err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", p.target)
	if err := p.signer.Sign(ctx, req, body); err != nil {
		return nil, true, err
	}
	defer func() { released = tb.Released(time.Second) }()
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, false, fmt.Errorf("reading the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, answerError(resp, data)
	}
	return data, false, nil
}

// failedCount finds the failed-records count in an answer without
// decoding the rest; ok is false when it is not plainly there.
func failedCount(data []byte, field string) (int, bool) {
	key := `"` + field + `":`
	i := bytes.Index(data, []byte(key))
	if i < 0 {
		return 0, false
	}
	rest := bytes.TrimLeft(data[i+len(key):], " \t\r\n")
	j := 0
	for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
		j++
	}
	if j == 0 || j > 6 {
		return 0, false
	}
	n := 0
	for _, c := range rest[:j] {
		n = n*10 + int(c-'0')
	}
	return n, true
}

// answerError reads an error answer: __type (after its '#') or the
// x-amzn-ErrorType header, and message.
func answerError(resp *http.Response, data []byte) error {
	var e struct {
		Type     string `json:"__type"`
		Message  string `json:"message"`
		Message2 string `json:"Message"`
	}
	_ = json.Unmarshal(data, &e)
	code := e.Type
	if code == "" {
		code = resp.Header.Get("X-Amzn-Errortype")
	}
	if i := strings.LastIndexByte(code, '#'); i >= 0 {
		code = code[i+1:]
	}
	if i := strings.IndexByte(code, ':'); i >= 0 {
		code = code[:i]
	}
	if code == "" {
		code = http.StatusText(resp.StatusCode)
	}
	msg := e.Message
	if msg == "" {
		msg = e.Message2
	}
	return &apiError{status: resp.StatusCode, code: code, message: msg}
}
