package kinesis

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"testing"
)

// TestJSONAPIAnswers: FailedPutCount is found without decoding the
// rest; error answers give the code of __type (or x-amzn-ErrorType) and
// the message, as the SDK would.
func TestJSONAPIAnswers(t *testing.T) {
	for body, want := range map[string]int{
		`{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[{"RecordId":"a"}]}`: 0,
		`{"Encrypted":false,"FailedPutCount": 12,"RequestResponses":[]}`:               12,
	} {
		if n, ok := failedCount([]byte(body), "FailedPutCount"); !ok || n != want {
			t.Errorf("%s: %d %v", body, n, ok)
		}
	}
	if _, ok := failedCount([]byte(`{"RequestResponses":[]}`), "FailedPutCount"); ok {
		t.Error("a count found where there is none")
	}
	for _, tc := range []struct {
		header, body, code, msg string
		status                  int
	}{
		{"", `{"__type":"com.amazonaws.firehose.v20150804#ResourceNotFoundException","message":"Firehose s not found"}`, "ResourceNotFoundException", "Firehose s not found", 400},
		{"ThrottlingException:http://internal.amazon.com/", `{"Message":"Rate exceeded"}`, "ThrottlingException", "Rate exceeded", 400},
		{"", `<html>bad gateway</html>`, "Bad Gateway", "", 502},
	} {
		resp := &http.Response{StatusCode: tc.status, Header: http.Header{}}
		if tc.header != "" {
			resp.Header.Set("X-Amzn-Errortype", tc.header)
		}
		var err *apiError
		if !errors.As(answerError(resp, []byte(tc.body)), &err) {
			t.Fatalf("%s: not an apiError", tc.body)
		}
		if err.ErrorCode() != tc.code || err.ErrorMessage() != tc.msg {
			t.Errorf("%s: code %q message %q", tc.body, err.ErrorCode(), err.ErrorMessage())
		}
	}
	if !permanent(&apiError{status: http.StatusRequestEntityTooLarge, code: "RequestEntityTooLarge"}) {
		t.Error("a 413 is retried")
	}
	if permanent(&apiError{status: 400, code: "ServiceUnavailableException"}) {
		t.Error("throttling is permanent")
	}
	// An answer, even an error, is not ambiguous; a broken read after the
	// request went out is.
	if ambiguous(&apiError{status: 500, code: "InternalFailure"}) || !ambiguous(fmt.Errorf("post: %w", &net.OpError{Op: "read", Err: errors.New("reset")})) ||
		ambiguous(&net.OpError{Op: "dial", Err: errors.New("refused")}) {
		t.Error("ambiguity misjudged")
	}
}

// TestResults reads per-record codes when something failed, for both
// operations' answer shapes.
func TestResults(t *testing.T) {
	codes, err := results([]byte(`{"FailedRecordCount":1,"Records":[{"SequenceNumber":"1","ShardId":"s"},{"ErrorCode":"ProvisionedThroughputExceededException","ErrorMessage":"slow down"}]}`), 2, "FailedRecordCount", "Records")
	if err != nil || codes[0] != "" || codes[1] != "ProvisionedThroughputExceededException" {
		t.Errorf("%v %v", codes, err)
	}
	if _, err := results([]byte(`{"FailedPutCount":1,"RequestResponses":[{}]}`), 2, "FailedPutCount", "RequestResponses"); err == nil {
		t.Error("a short answer accepted")
	}
	if codes, err := results([]byte(`{"FailedPutCount":0,"RequestResponses":[]}`), 3, "FailedPutCount", "RequestResponses"); err != nil || len(codes) != 3 {
		t.Errorf("all taken: %v %v", codes, err)
	}
}
