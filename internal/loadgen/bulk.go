package loadgen

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/gzip"
)

// BulkSink is a minimal Elasticsearch _bulk receiver for benchmarks: it
// answers GET / with a version and each _bulk request with errors false,
// counting the documents (two lines each) and nothing more, so that the
// cost measured is the sender's.
type BulkSink struct {
	Docs  atomic.Int64
	Bytes atomic.Int64
	first atomic.Int64 // unix nanoseconds of the first document
	last  atomic.Int64 // and of the latest request
	httpSink
}

// httpSink is the HTTP server of a sink.
type httpSink struct {
	srv *http.Server
	ln  net.Listener
}

func (h *httpSink) listen(addr string, handler http.HandlerFunc) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	h.ln, h.srv = ln, &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = h.srv.Serve(ln) }()
	return nil
}

// Addr is the address the sink listens on.
func (h *httpSink) Addr() string { return h.ln.Addr().String() }

// Close stops the sink.
func (h *httpSink) Close() error { return h.srv.Close() }

// ListenBulk starts a BulkSink on addr.
func ListenBulk(addr string) (*BulkSink, error) {
	s := &BulkSink{}
	if err := s.listen(addr, s.serve); err != nil {
		return nil, err
	}
	return s, nil
}

// Span is the time from the first document to the latest request.
func (s *BulkSink) Span() time.Duration {
	if s.first.Load() == 0 {
		return 0
	}
	return time.Duration(s.last.Load() - s.first.Load())
}

func (s *BulkSink) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, `{"version":{"number":"8.11.0"}}`)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		body = zr
	}
	buf := make([]byte, 256<<10)
	lines, n := int64(0), int64(0)
	for {
		k, err := body.Read(buf)
		lines += int64(bytes.Count(buf[:k], []byte{'\n'}))
		n += int64(k)
		if err != nil {
			break
		}
	}
	now := time.Now().UnixNano()
	s.first.CompareAndSwap(0, now)
	s.last.Store(now)
	s.Docs.Add(lines / 2)
	s.Bytes.Add(n)
	_, _ = io.WriteString(w, `{"took":1,"errors":false,"items":[]}`)
}

// FirehoseSink is a Kinesis Data Firehose stand-in for benchmarks that
// costs little CPU: it counts the records of each PutRecordBatch (the
// occurrences of {"Data": in the body) and answers that all were taken,
// with a short record id each, without decoding anything.
type FirehoseSink struct {
	Records atomic.Int64
	Calls   atomic.Int64
	answer  []byte // the answer for 500 records; shorter ones are cut from it
	offsets []int  // where the answer for n records ends
	httpSink
}

// ListenFirehose starts a FirehoseSink on addr.
func ListenFirehose(addr string) (*FirehoseSink, error) {
	s := &FirehoseSink{}
	s.answer = append(s.answer, `{"FailedPutCount":0,"Encrypted":false,"RequestResponses":[`...)
	s.offsets = make([]int, 501)
	s.offsets[0] = len(s.answer)
	for i := 1; i <= 500; i++ {
		if i > 1 {
			s.answer = append(s.answer, ',')
		}
		s.answer = append(s.answer, `{"RecordId":"r"}`...)
		s.offsets[i] = len(s.answer)
	}
	if err := s.listen(addr, s.serve); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *FirehoseSink) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	n := bytes.Count(body, []byte(`{"Data":`))
	if n > 500 {
		n = 500
	}
	s.Records.Add(int64(n))
	s.Calls.Add(1)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = w.Write(s.answer[:s.offsets[n]])
	_, _ = io.WriteString(w, "]}")
}
