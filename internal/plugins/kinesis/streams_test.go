package kinesis

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// partialStreams answers PutRecords like Kinesis Data Streams under
// throttling, in its JSON wire shape: on the first call every other
// record fails with ProvisionedThroughputExceededException. (kinesalite,
// which the integration tests use, does not throttle.)
type partialStreams struct {
	mu    sync.Mutex
	calls [][]string // data of each call's records
	keys  map[string]string
}

func (p *partialStreams) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Records []struct {
			Data         []byte `json:"Data"` // base64 in the JSON
			PartitionKey string `json:"PartitionKey"`
		} `json:"Records"`
	}
	if r.Header.Get("X-Amz-Target") != "Kinesis_20131202.PutRecords" || json.NewDecoder(r.Body).Decode(&in) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	type result struct {
		SequenceNumber string `json:",omitempty"`
		ShardID        string `json:"ShardId,omitempty"`
		ErrorCode      string `json:",omitempty"`
		ErrorMessage   string `json:",omitempty"`
	}
	var out struct {
		FailedRecordCount int
		Records           []result
	}
	var call []string
	for i, rec := range in.Records {
		call = append(call, string(rec.Data))
		res := result{SequenceNumber: fmt.Sprint(i), ShardID: "shardId-000000000000"}
		if len(p.calls) == 0 && i%2 == 1 {
			res = result{ErrorCode: "ProvisionedThroughputExceededException", ErrorMessage: "Rate exceeded for shard shardId-000000000000"}
			out.FailedRecordCount++
		} else {
			p.keys[string(rec.Data)] = rec.PartitionKey
		}
		out.Records = append(out.Records, res)
	}
	p.calls = append(p.calls, call)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	_ = json.NewEncoder(w).Encode(out)
}

// A chunk whose batch retries run out goes back to the buffer; its next
// Write, after a restart too (Meta is what the file buffer keeps), sends
// only the records that failed, with their partition keys.
func TestStreamsRetriesOnlyFailedRecordsAcrossChunkRetries(t *testing.T) {
	fake := &partialStreams{keys: map[string]string{}}
	srv := httptest.NewServer(fake)
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	s := &Streams{Shared: defaultShared(streamsMaxCount, streamsMaxBytes), StreamName: "events",
		direct: newJSONAPI(*u, "us-east-1", "kinesis", "Kinesis_20131202.PutRecords",
			credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", ""), srv.Client())}
	s.DataKey, s.AppendNewLine = "log", false
	s.dataPath, _ = buffer.RecordPath("log")
	s.keyPath, _ = buffer.RecordPath("user")
	s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	s.sender = sender{maxCount: 500, maxBytes: streamsMaxBytes, retries: 0, put: s.put, log: s.log, stats: &s.Stats,
		sizeOf: func(r record) int { return len(r.data) + len(r.key) }}
	var err error
	if s.stream, err = buffer.NewTemplate("events", buffer.ChunkKeys{}); err != nil {
		t.Fatal(err)
	}
	var b event.Builder
	for i := 0; i < 10; i++ {
		rec, _ := event.EncodeRecord(map[string]any{"log": fmt.Sprintf("line %d", i), "user": fmt.Sprintf("u%d", i)})
		b.Append(event.Time(1e9), rec)
	}
	kept := map[string]string{}
	chunk := func() *plugin.Chunk {
		meta := map[string]string{}
		for k, v := range kept {
			meta[k] = v
		}
		return plugin.NewChunk(plugin.Chunk{Key: buffer.Key{Tag: "app"}, Data: b.Stream("app").Data}, meta,
			func(k, v string) error { kept[k] = v; return nil })
	}
	if err := s.Write(context.Background(), chunk()); err == nil {
		t.Fatal("first write reported success with 5 records failed")
	}
	if err := s.Write(context.Background(), chunk()); err != nil {
		t.Fatalf("second write: %v", err)
	}
	if len(fake.calls) != 2 || len(fake.calls[0]) != 10 || len(fake.calls[1]) != 5 {
		t.Fatalf("calls %q, want 10 records then the 5 that failed", fake.calls)
	}
	for _, d := range fake.calls[1] {
		var i int
		fmt.Sscanf(d, "line %d", &i)
		if i%2 != 1 {
			t.Errorf("retry resent %q, which had succeeded", d)
		}
	}
	for i := 0; i < 10; i++ {
		if k := fake.keys[fmt.Sprintf("line %d", i)]; k != fmt.Sprintf("u%d", i) {
			t.Errorf("line %d: partition key %q", i, k)
		}
	}
	if got := s.Stats.Records.Load(); got != 10 {
		t.Errorf("delivered counter %d, want 10", got)
	}
}
