package kinesis

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
	"github.com/aws/smithy-go"
	"github.com/sluice-log/sluice/internal/transport"
)

// putRecordBatch sends PutRecordBatch without the SDK's serialisation:
// the body is written straight from the records into a reused buffer (the
// documented JSON protocol: the stream name and each record's data in
// base64), signed with the SDK's SigV4 signer, and the answer is read for
// the per-record error codes only. The SDK client still gives the
// endpoint (`endpoint`, AWS_ENDPOINT_URL_FIREHOSE, the region's), the
// credentials and the HTTP client, so that they behave as the SDK does.
type putRecordBatch struct {
	url    string
	region string
	creds  aws.CredentialsProvider
	signer *v4.Signer
	http   firehose.HTTPClient
	bodies sync.Pool // *[]byte
}

func newPutRecordBatch(ctx context.Context, client *firehose.Client) (*putRecordBatch, error) {
	o := client.Options()
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, firehose.EndpointParameters{
		Region: aws.String(o.Region), Endpoint: o.BaseEndpoint,
		UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
	})
	if err != nil {
		return nil, fmt.Errorf("resolving the Firehose endpoint: %w", err)
	}
	creds := o.Credentials
	if creds == nil {
		creds = aws.AnonymousCredentials{}
	}
	return &putRecordBatch{url: strings.TrimSuffix(ep.URI.String(), "/") + "/", region: o.Region, creds: creds,
		signer: v4.NewSigner(), http: o.HTTPClient}, nil
}

// apiError is an error answer of the JSON protocol: {"__type": ..., "message": ...}.
type apiError struct {
	status  int
	code    string
	message string
}

func (e *apiError) Error() string {
	return fmt.Sprintf("PutRecordBatch: %d %s: %s", e.status, e.code, e.message)
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

// maxAnswer bounds the answer read into memory: 500 record ids.
const maxAnswer = 4 << 20

func (p *putRecordBatch) put(ctx context.Context, stream string, recs []record) ([]string, error) {
	bp, _ := p.bodies.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	body := append((*bp)[:0], `{"DeliveryStreamName":`...)
	nameJSON, _ := json.Marshal(stream) // a string always marshals
	body = append(body, nameJSON...)
	body = append(body, `,"Records":[`...)
	for i, r := range recs {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, `{"Data":"`...)
		body = base64.StdEncoding.AppendEncode(body, r.data)
		body = append(body, `"}`...)
	}
	body = append(body, "]}"...)
	codes, released, err := p.send(ctx, body, len(recs))
	if released {
		*bp = body
		p.bodies.Put(bp)
	}
	return codes, err
}

// send posts one signed request. released reports that the transport has
// let go of body (see transport.TrackedBody).
func (p *putRecordBatch) send(ctx context.Context, body []byte, n int) (codes []string, released bool, err error) {
	tb := transport.NewTrackedBody(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, tb)
	if err != nil {
		return nil, true, err
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Firehose_20150804.PutRecordBatch")
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	creds, err := p.creds.Retrieve(ctx)
	if err != nil {
		return nil, true, fmt.Errorf("AWS credentials: %w", err)
	}
	if err := p.signer.SignHTTP(ctx, creds, req, hash, "firehose", p.region, time.Now()); err != nil {
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
		return nil, false, fmt.Errorf("reading the PutRecordBatch answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, false, answerError(resp, data)
	}
	if failed, ok := failedPutCount(data); ok && failed == 0 {
		// Every record was taken: the answer's 500 record ids need no
		// reading (Fluent Bit trusts FailedPutCount the same way).
		return make([]string, n), false, nil
	}
	var out struct {
		FailedPutCount   *int `json:"FailedPutCount"`
		RequestResponses []struct {
			ErrorCode string `json:"ErrorCode"`
		} `json:"RequestResponses"`
	}
	if err := json.Unmarshal(data, &out); err != nil || out.FailedPutCount == nil {
		return nil, false, fmt.Errorf("PutRecordBatch answered %d with a body that is not its answer: %.200q", resp.StatusCode, data)
	}
	if len(out.RequestResponses) != n {
		return nil, false, fmt.Errorf("PutRecordBatch answered %d results for %d records", len(out.RequestResponses), n)
	}
	codes = make([]string, n)
	for i, rr := range out.RequestResponses {
		codes[i] = rr.ErrorCode
	}
	return codes, false, nil
}

// failedPutCount finds FailedPutCount in an answer without decoding the
// rest; ok is false when it is not plainly there.
func failedPutCount(data []byte) (int, bool) {
	const key = `"FailedPutCount":`
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
