// Package esfake is an Elasticsearch _bulk endpoint for tests and
// benchmarks: no Elasticsearch or OpenSearch can run on the build
// machines. It speaks the documented API: GET / with the version, the
// _bulk request (newline-delimited action and document lines, gzip
// bodies) and its response (took, errors, and per item the operation's
// _index, _id, status and, on failure, error.type and error.reason), index
// templates and lifecycle policies by PUT and GET. Create of an _id that
// exists answers 409 version_conflict_engine_exception, as Elasticsearch
// does. Tests inject the rest: per-item 429 and 400, a 5xx on the whole
// request, a slow answer, and AWS SigV4 verification.
package esfake

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/klauspost/compress/gzip"
)

// Doc is a document the server holds.
type Doc struct {
	Index, ID, Type, Routing string
	Source                   map[string]any
	Op                       string
}

// Verdict decides an item's fate: 0 means take it, else the status to
// answer with (429, 400, 500...).
type Verdict func(index string, source map[string]any) int

// Server is the fake cluster.
type Server struct {
	*httptest.Server

	mu        sync.Mutex
	docs      []Doc
	ids       map[string]int // index/id -> position in docs
	resources map[string][]byte
	requests  int
	// Version is what GET / reports; Distribution "opensearch" makes it
	// OpenSearch.
	Version, Distribution string
	verdict               Verdict
	failWhole             int // the next requests answer 503
	delay                 time.Duration
	creds                 *aws.Credentials
	region, service       string
	sigFailures           int
	gzipSeen              bool
	queries               []string
}

// New starts a server on loopback.
func New() *Server {
	s := &Server{ids: map[string]int{}, resources: map[string][]byte{}, Version: "8.11.0"}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// NewTLS starts a server on loopback that speaks HTTPS with a
// certificate of its own (Certificate returns it).
func NewTLS() *Server {
	s := &Server{ids: map[string]int{}, resources: map[string][]byte{}, Version: "8.11.0"}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	return s
}

// SetVerdict sets what becomes of each item.
func (s *Server) SetVerdict(v Verdict) {
	s.mu.Lock()
	s.verdict = v
	s.mu.Unlock()
}

// FailWhole makes the next n _bulk requests answer 503.
func (s *Server) FailWhole(n int) {
	s.mu.Lock()
	s.failWhole = n
	s.mu.Unlock()
}

// Delay makes every _bulk answer wait d.
func (s *Server) Delay(d time.Duration) {
	s.mu.Lock()
	s.delay = d
	s.mu.Unlock()
}

// RequireSigV4 makes every request need a valid AWS SigV4 signature by
// creds for region and service; unsigned or badly signed ones get 403.
func (s *Server) RequireSigV4(creds aws.Credentials, region, service string) {
	s.mu.Lock()
	s.creds, s.region, s.service = &creds, region, service
	s.mu.Unlock()
}

// Docs returns what the server holds.
func (s *Server) Docs() []Doc {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Doc(nil), s.docs...)
}

// Requests is how many _bulk requests arrived.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// SignatureFailures counts requests refused for their signature.
func (s *Server) SignatureFailures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sigFailures
}

// GzipSeen reports whether a gzip request body arrived.
func (s *Server) GzipSeen() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gzipSeen
}

// Queries are the query strings of the _bulk requests.
func (s *Server) Queries() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.queries...)
}

// Resource returns what a PUT stored at path.
func (s *Server) Resource(path string) ([]byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.resources[path]
	return b, ok
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	creds, region, service := s.creds, s.region, s.service
	s.mu.Unlock()
	if creds != nil && !verify(r, body, *creds, region, service) {
		s.mu.Lock()
		s.sigFailures++
		s.mu.Unlock()
		writeJSON(w, http.StatusForbidden, map[string]any{"message": "The request signature we calculated does not match the signature you provided."})
		return
	}
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err == nil {
			body, err = io.ReadAll(zr)
		}
		if err != nil {
			http.Error(w, "bad gzip body", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.gzipSeen = true
		s.mu.Unlock()
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/":
		v := map[string]any{"number": s.Version}
		if s.Distribution != "" {
			v["distribution"] = s.Distribution
		}
		writeJSON(w, 200, map[string]any{"name": "esfake", "cluster_name": "esfake", "version": v, "tagline": "You Know, for Search"})
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/_bulk"):
		s.bulk(w, r, body)
	case r.Method == http.MethodPut:
		s.mu.Lock()
		s.resources[r.URL.Path] = body
		s.mu.Unlock()
		writeJSON(w, 200, map[string]any{"acknowledged": true})
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		s.mu.Lock()
		b, ok := s.resources[r.URL.Path]
		s.mu.Unlock()
		if !ok {
			writeJSON(w, 404, map[string]any{"error": map[string]any{"type": "resource_not_found_exception"}, "status": 404})
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	default:
		writeJSON(w, 400, map[string]any{"error": "no handler for " + r.Method + " " + r.URL.Path})
	}
}

func (s *Server) bulk(w http.ResponseWriter, r *http.Request, body []byte) {
	s.mu.Lock()
	s.requests++
	s.queries = append(s.queries, r.URL.RawQuery)
	fail := s.failWhole > 0
	if fail {
		s.failWhole--
	}
	delay := s.delay
	s.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if fail {
		writeJSON(w, 503, map[string]any{"error": map[string]any{"type": "cluster_block_exception", "reason": "blocked by: [SERVICE_UNAVAILABLE/2/no master];"}, "status": 503})
		return
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-ndjson") && !strings.HasPrefix(ct, "application/json") {
		writeJSON(w, 406, map[string]any{"error": "Content-Type header [" + ct + "] is not supported", "status": 406})
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	var items []map[string]any
	errorsSeen := false
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var action map[string]map[string]any
		if err := json.Unmarshal(line, &action); err != nil || len(action) != 1 {
			writeJSON(w, 400, map[string]any{"error": map[string]any{"type": "illegal_argument_exception", "reason": "Malformed action/metadata line"}, "status": 400})
			return
		}
		var op string
		var meta map[string]any
		for op, meta = range action {
		}
		if op == "delete" {
			continue
		}
		if !sc.Scan() {
			writeJSON(w, 400, map[string]any{"error": map[string]any{"type": "illegal_argument_exception", "reason": "The bulk request must be terminated by a newline [\\n]"}, "status": 400})
			return
		}
		var source map[string]any
		srcErr := json.Unmarshal(sc.Bytes(), &source)
		index, _ := meta["_index"].(string)
		id, _ := meta["_id"].(string)
		item := map[string]any{"_index": index}
		if id != "" {
			item["_id"] = id
		}
		status := s.apply(op, meta, source, srcErr)
		item["status"] = status
		switch status {
		case 200, 201:
			item["result"] = map[bool]string{true: "created", false: "updated"}[status == 201]
		case 409:
			item["error"] = map[string]any{"type": "version_conflict_engine_exception", "reason": fmt.Sprintf("[%s]: version conflict, document already exists", id)}
		case 429:
			item["error"] = map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution of coordinating operation"}
		case 400:
			item["error"] = map[string]any{"type": "mapper_parsing_exception", "reason": "failed to parse field [n] of type [long]"}
		default:
			item["error"] = map[string]any{"type": "internal_server_error", "reason": "shard failure"}
		}
		if status >= 300 {
			errorsSeen = true
		}
		items = append(items, map[string]any{op: item})
	}
	writeJSON(w, 200, map[string]any{"took": 3, "errors": errorsSeen, "items": items})
}

// apply decides and stores one item.
func (s *Server) apply(op string, meta, source map[string]any, srcErr error) int {
	if srcErr != nil {
		return 400
	}
	index, _ := meta["_index"].(string)
	id, _ := meta["_id"].(string)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.verdict != nil {
		if st := s.verdict(index, source); st != 0 {
			return st
		}
	}
	doc := Doc{Index: index, ID: id, Source: source, Op: op}
	doc.Type, _ = meta["_type"].(string)
	doc.Routing, _ = meta["routing"].(string)
	key := index + "/" + id
	at, exists := s.ids[key]
	switch {
	case id == "":
		s.docs = append(s.docs, doc)
		return 201
	case op == "create" && exists:
		return 409
	case op == "update":
		if !exists {
			if source["doc_as_upsert"] != true && source["upsert"] == nil {
				return 404
			}
		}
		s.store(key, at, exists, doc)
		return map[bool]int{true: 200, false: 201}[exists]
	default:
		s.store(key, at, exists, doc)
		return map[bool]int{true: 200, false: 201}[exists]
	}
}

func (s *Server) store(key string, at int, exists bool, doc Doc) {
	if exists {
		s.docs[at] = doc
		return
	}
	s.ids[key] = len(s.docs)
	s.docs = append(s.docs, doc)
}

// verify checks an AWS SigV4 signature by signing the same request again
// with the server's credentials: the headers the client signed, its time.
func verify(r *http.Request, body []byte, creds aws.Credentials, region, service string) bool {
	auth := r.Header.Get("Authorization")
	i := strings.Index(auth, "SignedHeaders=")
	if !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") || i < 0 {
		return false
	}
	signed := strings.SplitN(auth[i+len("SignedHeaders="):], ",", 2)[0]
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return false
	}
	again, err := http.NewRequest(r.Method, "http://"+r.Host+r.URL.RequestURI(), bytes.NewReader(body))
	if err != nil {
		return false
	}
	for _, h := range strings.Split(signed, ";") {
		if h == "host" {
			continue
		}
		if v := r.Header.Values(h); len(v) > 0 {
			again.Header[http.CanonicalHeaderKey(h)] = v
		}
	}
	hash := r.Header.Get("X-Amz-Content-Sha256")
	if sum := sha256.Sum256(body); hex.EncodeToString(sum[:]) != hash {
		return false // the body is not the one signed
	}
	if err := v4.NewSigner().SignHTTP(r.Context(), creds, again, hash, service, region, at); err != nil {
		return false
	}
	return again.Header.Get("Authorization") == auth
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
