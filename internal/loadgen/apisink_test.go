package loadgen

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
)

// TestAPISinkCountsRecordsAndAnswersAsEachService: gzip and snappy bodies
// are counted by their records, and each path gets its service's success.
func TestAPISinkCountsRecordsAndAnswersAsEachService(t *testing.T) {
	s, err := ListenAPI("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	_, _ = zw.Write([]byte(`[{"container_id":"a"},{"container_id":"b"}]`))
	_ = zw.Close()
	for _, tc := range []struct {
		path, ct, encoding string
		body               []byte
		status             int
	}{
		{"/loki/api/v1/push", "application/x-protobuf", "", snappy.Encode(nil, []byte("container_id=x container_id=y container_id=z")), 204},
		{"/api/v2/logs", "application/json", "gzip", z.Bytes(), 202},
		{"/services/collector", "application/json", "", []byte(`{"event":"container_id"}`), 200},
	} {
		req, _ := http.NewRequest(http.MethodPost, "http://"+s.Addr()+tc.path, bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", tc.ct)
		if tc.encoding != "" {
			req.Header.Set("Content-Encoding", tc.encoding)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
	}
	http.DefaultClient.CloseIdleConnections()
	if n := s.Events.Load(); n != 6 {
		t.Errorf("counted %d records, want 6", n)
	}
}
