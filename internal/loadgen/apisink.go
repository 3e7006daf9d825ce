package loadgen

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/snappy"
)

// APISink stands in for the HTTP outputs' destinations in benchmarks:
// Loki's push, Splunk's HEC, Datadog's intake, CloudWatch Logs and any
// out_http endpoint, on one port. It answers each as the service answers
// success, and counts events as the load generator's records seen in the
// (decompressed) bodies: each carries one "container_id", whatever the
// output made of it. Nothing is parsed, so the cost measured is the
// sender's.
type APISink struct {
	Events   atomic.Int64
	Requests atomic.Int64
	Bytes    atomic.Int64
	httpSink
}

// ListenAPI starts an APISink on addr.
func ListenAPI(addr string) (*APISink, error) {
	s := &APISink{}
	if err := s.listen(addr, s.serve); err != nil {
		return nil, err
	}
	return s, nil
}

var recordMarker = []byte("container_id")

func (s *APISink) serve(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	body := raw
	switch {
	case r.Header.Get("Content-Encoding") == "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	case r.Header.Get("Content-Type") == "application/x-protobuf":
		if body, err = snappy.Decode(nil, raw); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
	}
	target := r.Header.Get("X-Amz-Target")
	if target == "" || strings.HasSuffix(target, ".PutLogEvents") {
		s.Events.Add(int64(bytes.Count(body, recordMarker)))
	}
	s.Requests.Add(1)
	s.Bytes.Add(int64(len(raw)))
	switch {
	case r.URL.Path == "/loki/api/v1/push":
		w.WriteHeader(http.StatusNoContent)
	case strings.HasPrefix(r.URL.Path, "/services/collector"):
		_, _ = io.WriteString(w, `{"text":"Success","code":0}`)
	case r.URL.Path == "/api/v2/logs":
		w.WriteHeader(http.StatusAccepted)
		_, _ = io.WriteString(w, "{}")
	case strings.HasSuffix(target, ".PutLogEvents"):
		_, _ = io.WriteString(w, `{"nextSequenceToken":"1"}`)
	case target != "":
		_, _ = io.WriteString(w, "{}")
	}
}
