package kinesis

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kstypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// partialStreams answers PutRecords like Kinesis Data Streams under
// throttling: on the first call every other record fails with
// ProvisionedThroughputExceededException. (kinesalite, which the
// integration tests use, does not throttle.)
type partialStreams struct {
	calls [][]string // data of each call's records
	keys  map[string]string
}

func (p *partialStreams) PutRecords(_ context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	var call []string
	out := &kinesis.PutRecordsOutput{}
	for i, r := range in.Records {
		call = append(call, string(r.Data))
		res := kstypes.PutRecordsResultEntry{SequenceNumber: aws.String(fmt.Sprint(i)), ShardId: aws.String("shardId-000000000000")}
		if len(p.calls) == 0 && i%2 == 1 {
			res = kstypes.PutRecordsResultEntry{ErrorCode: aws.String("ProvisionedThroughputExceededException"),
				ErrorMessage: aws.String("Rate exceeded for shard shardId-000000000000")}
			out.FailedRecordCount = aws.Int32(aws.ToInt32(out.FailedRecordCount) + 1)
		} else {
			p.keys[string(r.Data)] = aws.ToString(r.PartitionKey)
		}
		out.Records = append(out.Records, res)
	}
	p.calls = append(p.calls, call)
	return out, nil
}

// A chunk whose batch retries run out goes back to the buffer; its next
// Write, after a restart too (Meta is what the file buffer keeps), sends
// only the records that failed, with their partition keys.
func TestStreamsRetriesOnlyFailedRecordsAcrossChunkRetries(t *testing.T) {
	fake := &partialStreams{keys: map[string]string{}}
	s := &Streams{Shared: defaultShared(streamsMaxCount, streamsMaxBytes), StreamName: "events", client: fake}
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
