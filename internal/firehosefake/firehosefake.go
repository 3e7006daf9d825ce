// Package firehosefake is an HTTP endpoint that speaks the Amazon Kinesis
// Data Firehose API as AWS documents it, for tests: there is no Firehose
// server one can run locally. It implements PutRecordBatch and
// DescribeDeliveryStream over the JSON 1.1 protocol (POST /, header
// X-Amz-Target: Firehose_20150804.<Operation>, body
// application/x-amz-json-1.1), enforces the service's request limits, and
// can inject whole-request throttling and per-record failures. The AWS SDK
// for Go v2 client talks to it unmodified, with its endpoint pointed here.
package firehosefake

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
)

// The documented limits of PutRecordBatch.
const (
	MaxRecordsPerCall = 500
	MaxBytesPerCall   = 4 << 20
	MaxRecordBytes    = 1000 << 10
)

// Server is the fake endpoint. Create it with New, add streams with
// CreateStream, and serve it with net/http.
type Server struct {
	mu      sync.Mutex
	streams map[string]*Stream // guarded by mu

	// recordFailRate is the probability that a record fails with
	// ServiceUnavailableException or InternalFailure. guarded by mu.
	recordFailRate float64
	// throttleNext makes the next n calls fail whole with
	// ServiceUnavailableException. guarded by mu.
	throttleNext int
	// throttleRate is the probability that a call fails whole with
	// ServiceUnavailableException. guarded by mu.
	throttleRate float64

	Calls int // PutRecordBatch calls, guarded by mu

	// countOnly keeps counts, not data, for benchmarks. guarded by mu.
	countOnly bool
}

// Stream is what a delivery stream received.
type Stream struct {
	Name    string
	Records [][]byte // in arrival order, decoded
	Count   int      // records received
	Bytes   int64    // their decoded size
	Lines   int      // newlines in them: events, for newline-delimited records
}

// New returns a server with no streams.
func New() *Server { return &Server{streams: map[string]*Stream{}} }

// CreateStream adds a DirectPut delivery stream.
func (s *Server) CreateStream(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.streams[name] == nil {
		s.streams[name] = &Stream{Name: name}
	}
}

// FailRecords makes each record fail with the given probability, until
// set back to 0.
func (s *Server) FailRecords(rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordFailRate = rate
}

// Throttle makes the next n calls fail with ServiceUnavailableException.
func (s *Server) Throttle(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleNext = n
}

// ThrottleCalls makes each call fail whole with
// ServiceUnavailableException with the given probability, until set back
// to 0.
func (s *Server) ThrottleCalls(rate float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleRate = rate
}

// CountOnly makes the server count records without keeping them, so that
// a benchmark's memory stays flat.
func (s *Server) CountOnly() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.countOnly = true
}

// Received returns the counts of what stream received.
func (s *Server) Received(stream string) (records, lines int, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.streams[stream]; st != nil {
		return st.Count, st.Lines, st.Bytes
	}
	return 0, 0, 0
}

// Records returns a copy of what stream received.
func (s *Server) Records(stream string) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.streams[stream]
	if st == nil {
		return nil
	}
	return append([][]byte(nil), st.Records...)
}

// CallCount returns how many PutRecordBatch calls arrived.
func (s *Server) CallCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Calls
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		awsError(w, http.StatusMethodNotAllowed, "UnknownOperationException", "POST only")
		return
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "AWS4-HMAC-SHA256 ") {
		awsError(w, http.StatusBadRequest, "MissingAuthenticationTokenException", "Missing Authentication Token")
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-amz-json-1.1") {
		awsError(w, http.StatusBadRequest, "SerializationException", "Content-Type must be application/x-amz-json-1.1, got "+ct)
		return
	}
	switch r.Header.Get("X-Amz-Target") {
	case "Firehose_20150804.PutRecordBatch":
		s.putRecordBatch(w, r)
	case "Firehose_20150804.DescribeDeliveryStream":
		s.describe(w, r)
	default:
		awsError(w, http.StatusBadRequest, "UnknownOperationException", "unknown operation "+r.Header.Get("X-Amz-Target"))
	}
}

// awsError writes a JSON 1.1 error the way AWS does: the type in
// x-amzn-ErrorType and in the body's __type.
func awsError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-ErrorType", typ)
	w.Header().Set("x-amzn-RequestId", requestID())
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg})
}

func requestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

type putRecordBatchInput struct {
	DeliveryStreamName string
	Records            []struct{ Data []byte } // base64 in JSON
}

type recordResult struct {
	RecordId     string `json:",omitempty"`
	ErrorCode    string `json:",omitempty"`
	ErrorMessage string `json:",omitempty"`
}

func (s *Server) putRecordBatch(w http.ResponseWriter, r *http.Request) {
	var in putRecordBatchInput
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<20)).Decode(&in); err != nil {
		awsError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Calls++
	st := s.streams[in.DeliveryStreamName]
	switch {
	case st == nil:
		awsError(w, http.StatusBadRequest, "ResourceNotFoundException",
			fmt.Sprintf("Firehose %s under account 123456789012 not found.", in.DeliveryStreamName))
		return
	case len(in.Records) == 0 || len(in.Records) > MaxRecordsPerCall:
		awsError(w, http.StatusBadRequest, "InvalidArgumentException",
			fmt.Sprintf("Records size must be between 1 and %d, got %d", MaxRecordsPerCall, len(in.Records)))
		return
	}
	total := 0
	for i, rec := range in.Records {
		if len(rec.Data) > MaxRecordBytes {
			awsError(w, http.StatusBadRequest, "InvalidArgumentException",
				fmt.Sprintf("Record %d size %d exceeds the limit of %d bytes", i, len(rec.Data), MaxRecordBytes))
			return
		}
		total += len(rec.Data)
	}
	if total > MaxBytesPerCall {
		awsError(w, http.StatusBadRequest, "InvalidArgumentException",
			fmt.Sprintf("Request size %d exceeds the limit of %d bytes", total, MaxBytesPerCall))
		return
	}
	if s.throttleNext > 0 || (s.throttleRate > 0 && mrand.Float64() < s.throttleRate) {
		s.throttleNext = max(0, s.throttleNext-1)
		awsError(w, http.StatusServiceUnavailable, "ServiceUnavailableException", "Slow down.")
		return
	}
	out := struct {
		FailedPutCount   int
		Encrypted        bool
		RequestResponses []recordResult
	}{RequestResponses: make([]recordResult, len(in.Records))}
	for i, rec := range in.Records {
		if s.recordFailRate > 0 && mrand.Float64() < s.recordFailRate {
			out.FailedPutCount++
			if mrand.IntN(2) == 0 {
				out.RequestResponses[i] = recordResult{ErrorCode: "ServiceUnavailableException", ErrorMessage: "Slow down."}
			} else {
				out.RequestResponses[i] = recordResult{ErrorCode: "InternalFailure", ErrorMessage: "Internal service failure."}
			}
			continue
		}
		st.Count++
		st.Bytes += int64(len(rec.Data))
		st.Lines += bytes.Count(rec.Data, []byte{'\n'})
		if !s.countOnly {
			st.Records = append(st.Records, rec.Data)
		}
		out.RequestResponses[i] = recordResult{RecordId: base64.StdEncoding.EncodeToString([]byte(requestID()))}
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("x-amzn-RequestId", requestID())
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) describe(w http.ResponseWriter, r *http.Request) {
	var in struct{ DeliveryStreamName string }
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		awsError(w, http.StatusBadRequest, "SerializationException", err.Error())
		return
	}
	s.mu.Lock()
	st := s.streams[in.DeliveryStreamName]
	s.mu.Unlock()
	if st == nil {
		awsError(w, http.StatusBadRequest, "ResourceNotFoundException",
			fmt.Sprintf("Firehose %s under account 123456789012 not found.", in.DeliveryStreamName))
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(map[string]any{"DeliveryStreamDescription": map[string]any{
		"DeliveryStreamName":   st.Name,
		"DeliveryStreamARN":    "arn:aws:firehose:us-west-2:123456789012:deliverystream/" + st.Name,
		"DeliveryStreamStatus": "ACTIVE",
		"DeliveryStreamType":   "DirectPut",
		"VersionId":            "1",
		"Destinations":         []any{},
		"HasMoreDestinations":  false,
	}})
}
