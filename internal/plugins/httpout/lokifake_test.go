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

	"github.com/golang/snappy"
	"github.com/klauspost/compress/gzip"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	_ "google.golang.org/protobuf/types/known/timestamppb" // google/protobuf/timestamp.proto in the registry
)

// lokiFake speaks Loki's push API (POST /loki/api/v1/push), since Loki
// cannot run here (and its server is AGPL-licensed): JSON bodies, gzip
// or not, and snappy-compressed protobuf PushRequests, decoded with the
// golang/snappy library and a protobuf message built at run time from the
// published push.proto's field numbers (not the encoder the output uses).
// It enforces Loki's documented defaults and answers with Loki's error
// shapes: 204 on success; 400 with a plain-text reason for an entry older
// than reject_old_samples_max_age (one week), a line longer than
// max_line_size (256 KiB), more than 15 label names, or, with strict, an
// entry out of order within its stream (Loki before unordered writes);
// the stream's valid entries are kept, as Loki keeps them. Injected
// answers (429, 5xx) come first.
type lokiFake struct {
	t       *testing.T
	srv     *httptest.Server
	strict  bool
	tenant  string // required X-Scope-OrgID, when set
	mu      sync.Mutex
	inject  []int
	pushes  int
	entries []lokiEntry
	last    map[string]int64 // the newest timestamp per stream
	headers []http.Header
	sets    [][]string // each push's streams, as canonical label sets
}

type lokiEntry struct {
	labels map[string]string
	ts     int64
	line   string
}

func newLokiFake(t *testing.T) *lokiFake {
	f := &lokiFake{t: t, last: map[string]int64{}}
	f.srv = httptest.NewServer(f)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *lokiFake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/loki/api/v1/push" || r.Method != http.MethodPost {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pushes++
	f.headers = append(f.headers, r.Header.Clone())
	if len(f.inject) > 0 {
		status := f.inject[0]
		f.inject = f.inject[1:]
		if status == http.StatusTooManyRequests {
			http.Error(w, "Ingestion rate limit exceeded for user fake (limit: 4194304 bytes/sec) while attempting to ingest '1' lines totaling '10' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased", status)
		} else {
			http.Error(w, "rpc error: code = Unavailable desc = injected", status)
		}
		return
	}
	if f.tenant != "" && r.Header.Get("X-Scope-OrgID") != f.tenant {
		http.Error(w, "no org id", http.StatusUnauthorized)
		return
	}
	streams, err := f.decode(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var problems []string
	oldest := time.Now().Add(-7 * 24 * time.Hour).UnixNano()
	var sets []string
	for _, s := range streams {
		sets = append(sets, canonical(s.labels))
	}
	f.sets = append(f.sets, sets)
	for _, s := range streams {
		key := canonical(s.labels)
		if len(s.labels) > 15 {
			problems = append(problems, fmt.Sprintf("entry for stream '%s' has %d label names; limit 15", key, len(s.labels)))
			continue
		}
		for _, e := range s.entries {
			switch {
			case e.ts < oldest:
				problems = append(problems, fmt.Sprintf("entry for stream '%s' has timestamp too old: %s, oldest acceptable timestamp is: %s",
					key, time.Unix(0, e.ts).UTC().Format(time.RFC3339), time.Unix(0, oldest).UTC().Format(time.RFC3339)))
			case len(e.line) > 256<<10:
				problems = append(problems, fmt.Sprintf("Max entry size '%d' bytes exceeded for stream '%s' while adding an entry with length '%d' bytes", 256<<10, key, len(e.line)))
			case f.strict && e.ts < f.last[key]:
				problems = append(problems, fmt.Sprintf("entry with timestamp %s ignored, reason: 'entry out of order' for stream: %s", time.Unix(0, e.ts).UTC(), key))
			default:
				f.last[key] = max(f.last[key], e.ts)
				f.entries = append(f.entries, lokiEntry{labels: s.labels, ts: e.ts, line: e.line})
			}
		}
	}
	if len(problems) > 0 {
		http.Error(w, strings.Join(problems, "\n"), http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

type fakeStream struct {
	labels  map[string]string
	entries []lokiEntry
}

func (f *lokiFake) decode(r *http.Request) ([]fakeStream, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	switch r.Header.Get("Content-Type") {
	case "application/x-protobuf":
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			return nil, fmt.Errorf("snappy: %w", err)
		}
		return decodePushProto(raw)
	case "application/json":
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(strings.NewReader(string(body)))
			if err != nil {
				return nil, err
			}
			if body, err = io.ReadAll(zr); err != nil {
				return nil, err
			}
		}
		var push struct {
			Streams []struct {
				Stream map[string]string `json:"stream"`
				Values [][2]string       `json:"values"`
			} `json:"streams"`
		}
		if err := json.Unmarshal(body, &push); err != nil {
			return nil, fmt.Errorf("loghttp.PushRequest: %w", err)
		}
		var out []fakeStream
		for _, s := range push.Streams {
			fs := fakeStream{labels: s.Stream}
			for _, v := range s.Values {
				ts, err := strconv.ParseInt(v[0], 10, 64)
				if err != nil {
					return nil, fmt.Errorf("timestamp %q: %w", v[0], err)
				}
				fs.entries = append(fs.entries, lokiEntry{ts: ts, line: v[1]})
			}
			out = append(out, fs)
		}
		return out, nil
	}
	return nil, fmt.Errorf("unsupported Content-Type %q", r.Header.Get("Content-Type"))
}

// pushRequest is logproto.PushRequest, built from push.proto's field
// numbers.
var pushRequest = func() protoreflect.MessageDescriptor {
	str, msg, u64 := descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), descriptorpb.FieldDescriptorProto_TYPE_UINT64.Enum()
	one, many := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()
	field := func(name string, n int32, label *descriptorpb.FieldDescriptorProto_Label, typ *descriptorpb.FieldDescriptorProto_Type, typeName string) *descriptorpb.FieldDescriptorProto {
		f := &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Label: label, Type: typ}
		if typeName != "" {
			f.TypeName = proto.String(typeName)
		}
		return f
	}
	fd := &descriptorpb.FileDescriptorProto{
		Name: proto.String("push.proto"), Package: proto.String("logproto"), Syntax: proto.String("proto3"),
		Dependency: []string{"google/protobuf/timestamp.proto"},
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("PushRequest"), Field: []*descriptorpb.FieldDescriptorProto{field("streams", 1, many, msg, ".logproto.StreamAdapter")}},
			{Name: proto.String("StreamAdapter"), Field: []*descriptorpb.FieldDescriptorProto{
				field("labels", 1, one, str, ""), field("entries", 2, many, msg, ".logproto.EntryAdapter"), field("hash", 3, one, u64, "")}},
			{Name: proto.String("EntryAdapter"), Field: []*descriptorpb.FieldDescriptorProto{
				field("timestamp", 1, one, msg, ".google.protobuf.Timestamp"), field("line", 2, one, str, "")}},
		},
	}
	file, err := protodesc.NewFile(fd, protoregistry.GlobalFiles)
	if err != nil {
		panic(err)
	}
	return file.Messages().ByName("PushRequest")
}()

func decodePushProto(raw []byte) ([]fakeStream, error) {
	m := dynamicpb.NewMessage(pushRequest)
	if err := proto.Unmarshal(raw, m); err != nil {
		return nil, fmt.Errorf("logproto.PushRequest: %w", err)
	}
	var out []fakeStream
	streams := m.Get(pushRequest.Fields().ByName("streams")).List()
	for i := range streams.Len() {
		s := streams.Get(i).Message()
		sd := s.Descriptor()
		labels, err := parseSelector(s.Get(sd.Fields().ByName("labels")).String())
		if err != nil {
			return nil, err
		}
		fs := fakeStream{labels: labels}
		entries := s.Get(sd.Fields().ByName("entries")).List()
		for j := range entries.Len() {
			e := entries.Get(j).Message()
			ed := e.Descriptor()
			ts := e.Get(ed.Fields().ByName("timestamp")).Message()
			td := ts.Descriptor()
			nanos := ts.Get(td.Fields().ByName("seconds")).Int()*1e9 + ts.Get(td.Fields().ByName("nanos")).Int()
			fs.entries = append(fs.entries, lokiEntry{ts: nanos, line: e.Get(ed.Fields().ByName("line")).String()})
		}
		out = append(out, fs)
	}
	return out, nil
}

// parseSelector reads {a="x", b="y"}.
func parseSelector(s string) (map[string]string, error) {
	if !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") {
		return nil, fmt.Errorf("error parsing labels %q", s)
	}
	rest := strings.TrimSpace(s[1 : len(s)-1])
	out := map[string]string{}
	for rest != "" {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			return nil, fmt.Errorf("error parsing labels %q", s)
		}
		quoted, err := strconv.QuotedPrefix(after)
		if err != nil {
			return nil, fmt.Errorf("error parsing labels %q: %v", s, err)
		}
		v, _ := strconv.Unquote(quoted)
		out[strings.TrimSpace(name)] = v
		rest = strings.TrimPrefix(strings.TrimSpace(after[len(quoted):]), ",")
		rest = strings.TrimSpace(rest)
	}
	return out, nil
}

func canonical(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, labels[k])
	}
	b.WriteByte('}')
	return b.String()
}

func (f *lokiFake) got() []lokiEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.entries)
}

// streamSets returns each push's streams' label sets.
func (f *lokiFake) streamSets() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sets)
}

func (f *lokiFake) pushCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pushes
}

type fakeRequest struct{ h map[string][]string }

func (r *fakeRequest) basic() (string, string, bool) {
	req := &http.Request{Header: r.h}
	return req.BasicAuth()
}

// header returns the headers of the i-th request.
func (f *lokiFake) header(i int) http.Header {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.headers[i]
}
