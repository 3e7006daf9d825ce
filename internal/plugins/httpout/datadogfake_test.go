package httpout_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// ddFake speaks Datadog's Logs intake as its API reference documents it,
// since Datadog cannot run here: POST /api/v2/logs with a DD-API-KEY
// header (403 {"errors":["Forbidden"]} for another key), a JSON array of
// log objects, gzip or not; over 5,000,000 bytes (uncompressed) is 413,
// over 1,000 entries or not an array of objects is 400, both with
// {"errors":[...]}; success is 202 with {}. The old route
// /v1/input/API_KEY takes the key in the path. Injected answers (429,
// 5xx; refuse, inject) come first. tcp listens for the TCP intake's "API_KEY JSON" lines.
type ddFake struct {
	srv *httptest.Server
	key string

	// refuse, when set, answers request n (from 1) with its status
	// instead of taking it, unless it returns 0.
	refuse func(n int) int

	mu       sync.Mutex
	inject   []int
	requests int
	sizes    []int // entries per accepted request
	events   []map[string]any
	dupKeys  []string // top-level keys an entry holds twice (a check on the sender; encoding/json keeps the last)
	headers  []http.Header
}

func newDDFake(t *testing.T, key string) *ddFake {
	f := &ddFake{key: key}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func ddErrors(w http.ResponseWriter, status int, msgs ...string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": msgs})
}

func (f *ddFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests++
	f.headers = append(f.headers, r.Header.Clone())
	key := r.Header.Get("DD-API-KEY")
	switch {
	case r.URL.Path == "/api/v2/logs":
	case strings.HasPrefix(r.URL.Path, "/v1/input/"):
		key = strings.TrimPrefix(r.URL.Path, "/v1/input/")
	default:
		ddErrors(w, 404, "Not found")
		return
	}
	if f.refuse != nil {
		if status := f.refuse(f.requests); status != 0 {
			ddErrors(w, status, "injected")
			return
		}
	}
	if len(f.inject) > 0 {
		status := f.inject[0]
		f.inject = f.inject[1:]
		ddErrors(w, status, "injected")
		return
	}
	if key != f.key {
		ddErrors(w, 403, "Forbidden")
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			ddErrors(w, 400, "Invalid gzip")
			return
		}
		body = zr
	}
	data, err := io.ReadAll(io.LimitReader(body, 5_000_001))
	if err != nil {
		ddErrors(w, 400, err.Error())
		return
	}
	if len(data) > 5_000_000 {
		ddErrors(w, 413, "Payload too large")
		return
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		ddErrors(w, 400, "Malformed payload: "+err.Error())
		return
	}
	logs := make([]map[string]any, len(raw))
	for i, entry := range raw {
		if err := json.Unmarshal(entry, &logs[i]); err != nil {
			ddErrors(w, 400, "Malformed payload: "+err.Error())
			return
		}
		f.dupKeys = append(f.dupKeys, duplicateKeys(entry)...)
	}
	if len(logs) > 1000 {
		ddErrors(w, 400, "Too many log entries in the payload (maximum 1000)")
		return
	}
	f.sizes = append(f.sizes, len(logs))
	f.events = append(f.events, logs...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = io.WriteString(w, "{}")
}

// duplicateKeys returns the top-level keys of a JSON object given more
// than once.
func duplicateKeys(obj []byte) []string {
	d := json.NewDecoder(bytes.NewReader(obj))
	if _, err := d.Token(); err != nil { // {
		return nil
	}
	seen := map[string]bool{}
	var dups []string
	for d.More() {
		k, err := d.Token()
		if err != nil {
			return dups
		}
		key, _ := k.(string)
		if seen[key] {
			dups = append(dups, key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := d.Decode(&skip); err != nil {
			return dups
		}
	}
	return dups
}

func (f *ddFake) duplicated() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.dupKeys)
}

func (f *ddFake) got() []map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events)
}

// ddTCPFake is the TCP intake: it reads "API_KEY JSON" lines.
type ddTCPFake struct {
	ln    net.Listener
	mu    sync.Mutex
	lines []string
}

func newDDTCPFake(t *testing.T) *ddTCPFake {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &ddTCPFake{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				sc := bufio.NewScanner(c)
				sc.Buffer(nil, 8<<20)
				for sc.Scan() {
					f.mu.Lock()
					f.lines = append(f.lines, sc.Text())
					f.mu.Unlock()
				}
			}()
		}
	}()
	return f
}

func (f *ddTCPFake) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.lines)
}

// header returns the headers of the i-th request.
func (f *ddFake) header(i int) http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.headers[i]
}
