package httpout_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// cwlFake speaks CloudWatch Logs' JSON 1.1 API as its reference documents
// it, since the service cannot run here: X-Amz-Target
// Logs_20140328.{CreateLogGroup, CreateLogStream, PutRetentionPolicy,
// PutLogEvents}, SigV4-signed for the service "logs" (403
// UnrecognizedClientException otherwise), errors as {"__type", "message"}
// with x-amzn-ErrorType. PutLogEvents enforces the documented limits with
// InvalidParameterException (chronological order, a 24-hour span, 10,000
// events, 1,048,576 bytes counting 26 per event, 256 KiB per event),
// answers ResourceNotFoundException for a missing group or stream, reports
// events over 14 days old or 2 hours ahead in rejectedLogEventsInfo, and,
// with strictTokens, checks sequence tokens as the service did before
// 2023 (InvalidSequenceTokenException and DataAlreadyAcceptedException with
// expectedSequenceToken). Injected ThrottlingExceptions come first.
type cwlFake struct {
	srv          *httptest.Server
	strictTokens bool

	mu        sync.Mutex
	throttle  func(put int) bool // put counts PutLogEvents calls from 1
	puts      int
	groups    map[string]*cwlGroup
	events    []cwlGot
	batchLens []int
	auth      []string
}

type cwlGroup struct {
	retention int
	tags      map[string]string
	streams   map[string]*cwlStream
}

type cwlStream struct {
	token    int
	lastSent []byte
}

type cwlGot struct {
	group, stream string
	ms            int64
	message       string
}

func newCWLFake(t *testing.T) *cwlFake {
	f := &cwlFake{groups: map[string]*cwlGroup{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func cwlErr(w http.ResponseWriter, status int, code, msg string, extra ...string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	m := map[string]string{"__type": code, "message": msg}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	_ = json.NewEncoder(w).Encode(m)
}

func (f *cwlFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	auth := r.Header.Get("Authorization")
	f.auth = append(f.auth, auth)
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || !strings.Contains(auth, "/logs/aws4_request") {
		cwlErr(w, 403, "UnrecognizedClientException", "The security token included in the request is invalid.")
		return
	}
	body, _ := io.ReadAll(r.Body)
	var req struct {
		LogGroupName    string            `json:"logGroupName"`
		LogStreamName   string            `json:"logStreamName"`
		RetentionInDays int               `json:"retentionInDays"`
		Tags            map[string]string `json:"tags"`
		SequenceToken   string            `json:"sequenceToken"`
		LogEvents       []struct {
			Timestamp int64  `json:"timestamp"`
			Message   string `json:"message"`
		} `json:"logEvents"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		cwlErr(w, 400, "SerializationException", err.Error())
		return
	}
	g := f.groups[req.LogGroupName]
	switch strings.TrimPrefix(r.Header.Get("X-Amz-Target"), "Logs_20140328.") {
	case "CreateLogGroup":
		if g != nil {
			cwlErr(w, 400, "ResourceAlreadyExistsException", "The specified log group already exists")
			return
		}
		f.groups[req.LogGroupName] = &cwlGroup{tags: req.Tags, streams: map[string]*cwlStream{}}
	case "PutRetentionPolicy":
		if g == nil {
			cwlErr(w, 400, "ResourceNotFoundException", "The specified log group does not exist.")
			return
		}
		g.retention = req.RetentionInDays
	case "CreateLogStream":
		if g == nil {
			cwlErr(w, 400, "ResourceNotFoundException", "The specified log group does not exist.")
			return
		}
		if g.streams[req.LogStreamName] != nil {
			cwlErr(w, 400, "ResourceAlreadyExistsException", "The specified log stream already exists")
			return
		}
		g.streams[req.LogStreamName] = &cwlStream{}
	case "PutLogEvents":
		f.puts++
		if f.throttle != nil && f.throttle(f.puts) {
			cwlErr(w, 400, "ThrottlingException", "Rate exceeded")
			return
		}
		f.putLogEvents(w, g, req.LogGroupName, req.LogStreamName, req.SequenceToken, body, req.LogEvents)
		return
	default:
		cwlErr(w, 400, "UnknownOperationException", r.Header.Get("X-Amz-Target"))
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_, _ = io.WriteString(w, "{}")
}

func (f *cwlFake) putLogEvents(w http.ResponseWriter, g *cwlGroup, group, stream, token string, body []byte, evs []struct {
	Timestamp int64  `json:"timestamp"`
	Message   string `json:"message"`
}) {
	if g == nil {
		cwlErr(w, 400, "ResourceNotFoundException", "The specified log group does not exist.")
		return
	}
	s := g.streams[stream]
	if s == nil {
		cwlErr(w, 400, "ResourceNotFoundException", "The specified log stream does not exist.")
		return
	}
	if f.strictTokens {
		expected := ""
		if s.token > 0 {
			expected = strconv.Itoa(s.token)
		}
		if token != expected {
			if string(body) == string(s.lastSent) {
				cwlErr(w, 400, "DataAlreadyAcceptedException", "The given batch of log events has already been accepted.", "expectedSequenceToken", expected)
			} else {
				cwlErr(w, 400, "InvalidSequenceTokenException", "The given sequenceToken is invalid.", "expectedSequenceToken", expected)
			}
			return
		}
	}
	if len(evs) > 10000 {
		cwlErr(w, 400, "InvalidParameterException", fmt.Sprintf("1 validation error detected: Value '%d' at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to 10000", len(evs)))
		return
	}
	size := 0
	for i, e := range evs {
		n := len(e.Message) + 26
		if n > 262144 {
			cwlErr(w, 400, "InvalidParameterException", fmt.Sprintf("Log event too large: %d bytes exceeds limit of 262144", n))
			return
		}
		size += n
		if i > 0 && e.Timestamp < evs[i-1].Timestamp {
			cwlErr(w, 400, "InvalidParameterException", "Log events in a single PutLogEvents request must be in chronological order.")
			return
		}
	}
	if size > 1048576 {
		cwlErr(w, 400, "InvalidParameterException", fmt.Sprintf("Upload too large: %d bytes exceeds limit of 1048576", size))
		return
	}
	if len(evs) > 1 && evs[len(evs)-1].Timestamp-evs[0].Timestamp > 24*3600*1000 {
		cwlErr(w, 400, "InvalidParameterException", "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.")
		return
	}
	now := time.Now().UnixMilli()
	tooOld, tooNew := -1, -1
	for i, e := range evs {
		switch {
		case e.Timestamp < now-14*24*3600*1000:
			tooOld = i
		case e.Timestamp > now+2*3600*1000 && tooNew < 0:
			tooNew = i
		default:
			f.events = append(f.events, cwlGot{group: group, stream: stream, ms: e.Timestamp, message: e.Message})
		}
	}
	f.batchLens = append(f.batchLens, len(evs))
	s.token++
	s.lastSent = body
	answer := map[string]any{"nextSequenceToken": strconv.Itoa(s.token)}
	if tooOld >= 0 || tooNew >= 0 {
		info := map[string]int{}
		if tooOld >= 0 {
			info["tooOldLogEventEndIndex"] = tooOld
		}
		if tooNew >= 0 {
			info["tooNewLogEventStartIndex"] = tooNew
		}
		answer["rejectedLogEventsInfo"] = info
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(answer)
}

func (f *cwlFake) got() []cwlGot {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// authAt returns the Authorization header of the i-th request.
func (f *cwlFake) authAt(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.auth[i]
}
