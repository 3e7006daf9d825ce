package forward

import (
	"testing"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
)

func packedMessage(tb testing.TB, n int) []byte {
	rec := record(tb, "container_id", "6d33ade920a96179205e01c3a17d6e7f3eb98f0d5bb2b494383250220e7f443c",
		"container_name", "/ecs-service-2-apache-d492a08f9480c2fcca01", "source", "stdout",
		"log", `122.116.50.70 - Corwin8644 264 [2018-10-31T21:31:59Z] "POST /activate" 200 19886`)
	var b event.Builder
	for i := 0; i < n; i++ {
		b.Append(event.Now(), rec)
	}
	msg := msgp.AppendArrayHeader(nil, 3)
	msg = msgp.AppendString(msg, "backend-api")
	msg = msgp.AppendBytes(msg, b.Bytes())
	return append(msg, option("Y2h1bms=", "")...)
}

// TestDecodeAllocs: decoding a PackedForward message allocates nothing.
func TestDecodeAllocs(t *testing.T) {
	msg := packedMessage(t, 100)
	var d Decoder
	var m Message
	if n := testing.AllocsPerRun(100, func() {
		if err := d.Decode(msg, &m, 1); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("decode allocates %v times", n)
	}
}

// TestDecodeMessageAllocs: message mode (fluent-logger-golang, Docker's
// driver) builds its entry in reused memory.
func TestDecodeMessageAllocs(t *testing.T) {
	msg := msgp.AppendArrayHeader(nil, 4)
	msg = msgp.AppendString(msg, "docker.app")
	msg = event.AppendEventTime(msg, event.Now())
	msg = append(msg, record(t, "log", "hello")...)
	msg = append(msg, option("Y2h1bms=", "")...)
	var d Decoder
	var m Message
	_ = d.Decode(msg, &m, 1)
	if n := testing.AllocsPerRun(100, func() {
		if err := d.Decode(msg, &m, 1); err != nil || m.Count != 1 {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("decode allocates %v times", n)
	}
}

// BenchmarkDecodePackedForward validates every entry of a 500-event
// PackedForward message: bytes/s of messages decoded on one core.
func BenchmarkDecodePackedForward(b *testing.B) {
	msg := packedMessage(b, 500)
	var d Decoder
	var m Message
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if err := d.Decode(msg, &m, 1); err != nil || m.Count != 500 {
			b.Fatal(err)
		}
	}
}
