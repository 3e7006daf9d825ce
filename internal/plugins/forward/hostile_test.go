package forward_test

import (
	"bytes"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/plugins/forward"
	"github.com/sluice-log/sluice/internal/plugintest"
)

// partial is the start of a message with a record of size bytes that
// never finishes: an array header, the tag, a time and a str32 header
// promising more than is sent.
func partial(size int) []byte {
	b := msgp.AppendArrayHeader(nil, 3)
	b = msgp.AppendString(b, "app")
	b = msgp.AppendInt64(b, 1700000000)
	b = append(b, 0x81, 0xa3, 'l', 'o', 'g', 0xdb, byte(size>>24), byte(size>>16), byte(size>>8), byte(size))
	return append(b, bytes.Repeat([]byte{'x'}, size/2)...)
}

// A client that keeps a message coming a byte at a time (slowloris) is
// closed even though it is never silent for idle_timeout; a client that
// sends whole messages is served meanwhile.
func TestSlowSenderIsClosed(t *testing.T) {
	t.Cleanup(forward.SetSlowSenderLimits(time.Minute, 200*time.Millisecond, 1024))
	_, in, addr := server(t, "slow", "idle_timeout 1m")
	slow, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer slow.Close()
	head := partial(1 << 20)[:20]
	go func() {
		for _, b := range head {
			if _, err := slow.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	good, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer good.Close()
	good.Write(message(t, "app", "g1", "n", 1))
	expectAck(t, good, "g1")
	expectClosed(t, slow)
	if got := in.Stats.SlowClosed.Load(); got != 1 {
		t.Errorf("slow senders closed: %d, want 1", got)
	}
	if in.Stats.ProtocolErrors.Load() != 0 {
		t.Errorf("a slow sender was counted as a protocol error")
	}
}

// Connections that sent most of a large message and went silent hold
// receive_buffer_limit only until partial-message idleness closes them,
// well before another client's patience runs out: its large message is
// taken and acknowledged.
func TestSilentPartialHoldersDoNotStarveOthers(t *testing.T) {
	t.Cleanup(forward.SetSlowSenderLimits(300*time.Millisecond, time.Minute, 1))
	_, in, addr := server(t, "held", "receive_buffer_limit 1m\nchunk_size_limit 4m")
	var holders []net.Conn
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		plugintest.Must(t, err)
		defer c.Close()
		_, err = c.Write(partial(800 << 10)) // 400 KiB sent of an 800 KiB record
		plugintest.Must(t, err)
		holders = append(holders, c)
	}
	plugintest.WaitFor(t, "the holders to take the budget", func() bool { return forward.ReceiveBufferUsed(in) > 3<<18 })
	victim, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer victim.Close()
	go victim.Write(message(t, "app", "big", "log", strings.Repeat("v", 600<<10)))
	expectAck(t, victim, "big")
	for _, h := range holders {
		expectClosed(t, h)
	}
	if in.Stats.SlowClosed.Load() != 2 || in.Stats.BufferFull.Load() != 0 {
		t.Errorf("slow closed %d (want the 2 holders), closed for a full buffer %d (want 0)",
			in.Stats.SlowClosed.Load(), in.Stats.BufferFull.Load())
	}
}

// A connection that inflated a large compressed payload does not keep
// the memory (or its share of receive_buffer_limit) once it is idle: ten
// idle connections each holding an 8 MiB inflate buffer held 80 MiB.
func TestIdleConnectionReleasesInflateBuffer(t *testing.T) {
	_, in, addr := serverTo(t, "", "@type null") // capture would keep the events

	var entries []byte
	one := message(t, "app", "", "log", strings.Repeat("z", 1000))
	_, rec, _ := msgp.ReadArrayHeaderBytes(one)
	_, rec, _ = msgp.ReadStringZC(rec) // the message's time and record: one entry's body
	for len(entries) < 8<<20 {
		entries = append(msgp.AppendArrayHeader(entries, 2), rec...)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(entries)
	zw.Close()
	compressed := func(chunk string) []byte {
		msg := msgp.AppendArrayHeader(nil, 3)
		msg = msgp.AppendString(msg, "app")
		msg = msgp.AppendBytes(msg, z.Bytes())
		msg = msgp.AppendMapHeader(msg, 2)
		msg = msgp.AppendString(msgp.AppendString(msg, "chunk"), chunk)
		return msgp.AppendString(msgp.AppendString(msg, "compressed"), "gzip")
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before := heap()
	const conns = 4
	for i := 0; i < conns; i++ {
		c, err := net.Dial("tcp", addr)
		plugintest.Must(t, err)
		defer c.Close()
		_, err = c.Write(compressed(fmt.Sprint("gz", i)))
		plugintest.Must(t, err)
		expectAck(t, c, fmt.Sprint("gz", i))
	}
	// Each connection lets go once its ack is written; wait for them.
	plugintest.WaitFor(t, "idle connections to hand back their receive_buffer_limit", func() bool {
		return forward.ReceiveBufferUsed(in) <= conns<<20
	})
	if grown := int64(heap()) - int64(before); grown > 8<<20 {
		t.Errorf("the heap grew by %d MiB with %d idle connections that each inflated 8 MiB", grown>>20, conns)
	}
}

// JSON-mode Message events without an ack request are written (they
// waited in the Message-mode batch, which only the msgpack loop emitted).
func TestJSONModeMessageWithoutAck(t *testing.T) {
	_, _, addr := server(t, "jsonnoack", "")
	c, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	defer c.Close()
	c.Write([]byte(`["app.json", 1441588984, {"message": "no ack"}]` + "\n"))
	plugintest.WaitFor(t, "the event", func() bool { return len(plugintest.Captured("jsonnoack")) == 1 })
}

// Bytes that are not an event message, and a message cut short by the
// client's close, are counted and logged; neither passes silently.
func TestIgnoredAndTruncatedAreCounted(t *testing.T) {
	_, in, addr := server(t, "odd", "")
	c, err := net.Dial("tcp", addr)
	plugintest.Must(t, err)
	c.Write([]byte{0xc0})                    // nil: a keep-alive, not counted
	c.Write(msgp.AppendInt64(nil, 42))       // not an array
	c.Write(message(t, "app", "a1", "n", 1)) // still served after it
	expectAck(t, c, "a1")
	whole := message(t, "app", "a2", "n", 2)
	c.Write(whole[:len(whole)-3])
	c.Close()
	plugintest.WaitFor(t, "the truncated message to be counted", func() bool { return in.Stats.TruncatedMessages.Load() == 1 })
	if got := in.Stats.IgnoredValues.Load(); got != 1 {
		t.Errorf("ignored values %d, want 1 (the integer; nil is a keep-alive)", got)
	}
	if got := len(plugintest.Captured("odd")); got != 1 {
		t.Errorf("%d events captured, want the one whole message", got)
	}
}
