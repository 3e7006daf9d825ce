package httpout_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// hecFake speaks Splunk's HTTP Event Collector as its REST reference
// documents it, since no Splunk can run here: POST /services/collector
// (and /event) with "Authorization: Splunk TOKEN" (401 {"text":"Token is
// required","code":2} without, 403 {"text":"Invalid token","code":4}
// for another), a body of concatenated event objects, gzip or not, each
// needing an "event" (code 12 when missing, 13 when blank) and a known
// index (code 7); a body that does not parse is code 6. Events are
// indexed in order up to the first bad one, whose position the answer
// gives as "invalid-event-number". A body over maxContent gets 413. With
// ack, every request needs X-Splunk-Request-Channel (400, code 10) and is
// answered with an ackId that /services/collector/ack reports true for
// once acknowledge allows it. Injected answers (503 "Server is busy",
// code 9) come first.
type hecFake struct {
	srv         *httptest.Server
	token       string
	indexes     []string // accepted indexes; empty: any
	maxContent  int
	ack         bool
	acknowledge func(id int) bool

	mu      sync.Mutex
	inject  []int
	posts   int
	events  []map[string]any
	headers []http.Header
	pending map[int]bool // ackId: acknowledged
	nextAck int
}

func newHECFake(t *testing.T, token string) *hecFake {
	f := &hecFake{token: token, maxContent: 800 << 20, pending: map[int]bool{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func hecAnswer(w http.ResponseWriter, status int, text string, code int, extra ...any) {
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	m := map[string]any{"text": text, "code": code}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i].(string)] = extra[i+1]
	}
	_ = json.NewEncoder(w).Encode(m)
}

func (f *hecFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Header.Get("Authorization") == "":
		hecAnswer(w, 401, "Token is required", 2)
		return
	case r.Header.Get("Authorization") != "Splunk "+f.token:
		hecAnswer(w, 403, "Invalid token", 4)
		return
	}
	if r.URL.Path == "/services/collector/ack" {
		f.answerAck(w, r)
		return
	}
	if r.URL.Path != "/services/collector" && r.URL.Path != "/services/collector/event" {
		hecAnswer(w, 404, "The requested URL was not found on this server.", 404)
		return
	}
	f.posts++
	f.headers = append(f.headers, r.Header.Clone())
	if len(f.inject) > 0 {
		status := f.inject[0]
		f.inject = f.inject[1:]
		hecAnswer(w, status, "Server is busy", 9)
		return
	}
	if r.ContentLength > int64(f.maxContent) {
		w.WriteHeader(http.StatusRequestEntityTooLarge)
		fmt.Fprintf(w, "Content-Length of %d too large (maximum is %d)", r.ContentLength, f.maxContent)
		return
	}
	if f.ack && r.Header.Get("X-Splunk-Request-Channel") == "" && r.URL.Query().Get("channel") == "" {
		hecAnswer(w, 400, "Data channel is missing", 10)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			hecAnswer(w, 400, "Invalid data format", 6, "invalid-event-number", 0)
			return
		}
		body = zr
	}
	dec := json.NewDecoder(body)
	for n := 0; ; n++ {
		var ev map[string]any
		err := dec.Decode(&ev)
		if err == io.EOF {
			break
		}
		if err != nil {
			hecAnswer(w, 400, "Invalid data format", 6, "invalid-event-number", n)
			return
		}
		e, ok := ev["event"]
		switch {
		case !ok:
			hecAnswer(w, 400, "Event field is required", 12, "invalid-event-number", n)
			return
		case e == "" || e == nil:
			hecAnswer(w, 400, "Event field cannot be blank", 13, "invalid-event-number", n)
			return
		}
		if idx, ok := ev["index"].(string); ok && len(f.indexes) > 0 && !slices.Contains(f.indexes, idx) {
			hecAnswer(w, 400, "Incorrect index", 7, "invalid-event-number", n)
			return
		}
		f.events = append(f.events, ev)
	}
	if f.ack {
		id := f.nextAck
		f.nextAck++
		f.pending[id] = false
		hecAnswer(w, 200, "Success", 0, "ackId", id)
		return
	}
	hecAnswer(w, 200, "Success", 0)
}

func (f *hecFake) answerAck(w http.ResponseWriter, r *http.Request) {
	if !f.ack {
		hecAnswer(w, 400, "ACK is disabled", 14)
		return
	}
	if r.URL.Query().Get("channel") == "" && r.Header.Get("X-Splunk-Request-Channel") == "" {
		hecAnswer(w, 400, "Data channel is missing", 10)
		return
	}
	var q struct {
		Acks []int `json:"acks"`
	}
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil {
		hecAnswer(w, 400, "Invalid data format", 6)
		return
	}
	out := map[string]bool{}
	for _, id := range q.Acks {
		if _, ok := f.pending[id]; ok && (f.acknowledge == nil || f.acknowledge(id)) {
			f.pending[id] = true
		}
		out[strconv.Itoa(id)] = f.pending[id]
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	_ = json.NewEncoder(w).Encode(map[string]any{"acks": out})
}

func (f *hecFake) got() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

func (f *hecFake) postCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.posts
}

// eventRecord decodes an HEC event whose "event" is the JSON text of the
// record, as the splunk_hec plugin sends it.
func eventRecord(ev map[string]any) map[string]any {
	s, _ := ev["event"].(string)
	var m map[string]any
	_ = json.NewDecoder(bytes.NewReader([]byte(s))).Decode(&m)
	return m
}

// header returns the headers of the i-th request.
func (f *hecFake) header(i int) http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.headers[i]
}
