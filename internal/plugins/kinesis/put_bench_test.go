package kinesis

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/firehose"
)

// BenchmarkPutRecordBatch measures one call of 500 Docker-shaped records
// against a server that answers a canned success without reading the
// records, so that the figure is the client's: building and signing the
// request, the HTTP round trip on loopback, reading the answer. One op is
// one record.
func BenchmarkPutRecordBatch(b *testing.B) {
	var answer strings.Builder
	answer.WriteString(`{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[`)
	for i := 0; i < 500; i++ {
		if i > 0 {
			answer.WriteByte(',')
		}
		fmt.Fprintf(&answer, `{"RecordId":"%0160d"}`, i)
	}
	answer.WriteString("]}")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		_, _ = io.WriteString(w, answer.String())
	}))
	defer srv.Close()
	client := firehose.New(firehose.Options{Region: "us-west-2", BaseEndpoint: aws.String(srv.URL),
		Credentials: credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""), HTTPClient: srv.Client(),
		Retryer: aws.NopRetryer{}})
	recs := make([]record, 500)
	for i := range recs {
		recs[i].data = []byte(fmt.Sprintf(`{"container_id":"%s","container_name":"/frontend","source":"stdout","log":"10.0.0.1 - - [21/Nov/2026:10:00:00 +0000] \"GET /item/%d HTTP/1.1\" 200 512"}`+"\n", strings.Repeat("3b9c4f1e", 8), i))
	}
	ctx := context.Background()
	b.Run("direct", func(b *testing.B) { // the SDK client gives only the endpoint, credentials and HTTP client
		p, err := newPutRecordBatch(ctx, client)
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < b.N; i += len(recs) {
			if _, err := p.putRecordBatch(ctx, "s", recs); err != nil {
				b.Fatal(err)
			}
		}
	})
}
