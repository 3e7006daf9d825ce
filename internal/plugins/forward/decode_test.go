package forward

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
)

func record(tb testing.TB, kv ...any) []byte {
	tb.Helper()
	m := map[string]any{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = kv[i+1]
	}
	r, err := event.EncodeRecord(m)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

func entries(tb testing.TB, n int) []byte {
	var b event.Builder
	for i := 0; i < n; i++ {
		b.Append(event.Time(int64(1700000000+i)*1e9), record(tb, "i", i))
	}
	return b.Bytes()
}

func option(chunk string, compressed string) []byte {
	n := 0
	if chunk != "" {
		n++
	}
	if compressed != "" {
		n++
	}
	o := msgp.AppendMapHeader(nil, uint32(n))
	if chunk != "" {
		o = msgp.AppendString(msgp.AppendString(o, "chunk"), chunk)
	}
	if compressed != "" {
		o = msgp.AppendString(msgp.AppendString(o, "compressed"), compressed)
	}
	return o
}

func gz(tb testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestDecodeModes(t *testing.T) {
	ents := entries(t, 3)
	cases := []struct {
		name  string
		msg   []byte
		mode  string
		count int
		chunk string
	}{
		{"message", append(msgp.AppendInt64(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "app"), 1700000000), record(t, "k", "v")...), "message", 1, ""},
		{"message with option", append(append(event.AppendEventTime(msgp.AppendString(msgp.AppendArrayHeader(nil, 4), "app"), 5e9), record(t, "k", "v")...), option("abc", "")...), "message", 1, "abc"},
		{"forward", append(append(msgp.AppendArrayHeader(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "app"), 3), ents...), option("c1", "")...), "forward", 3, "c1"},
		{"packed forward bin", msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 2), "app"), ents), "packed_forward", 3, ""},
		{"packed forward str, text (node client)", append(msgp.AppendStringFromBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "app"), ents), option("c2", "text")...), "packed_forward", 3, "c2"},
		{"compressed", append(msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "app"), gz(t, ents)), option("c3", "gzip")...), "compressed_packed_forward", 3, "c3"},
	}
	d := Decoder{MaxDecompressed: 1 << 20}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var m Message
			if err := d.Decode(tc.msg, &m, event.Time(42)); err != nil {
				t.Fatal(err)
			}
			if m.Mode != tc.mode || m.Count != tc.count || string(m.Chunk) != tc.chunk || string(m.Tag) != "app" {
				t.Fatalf("got mode %s count %d chunk %q tag %q", m.Mode, m.Count, m.Chunk, m.Tag)
			}
			if n, err := event.Validate(m.Entries); err != nil || n != tc.count {
				t.Fatalf("entries: %d, %v", n, err)
			}
		})
	}
}

func TestDecodeIgnoresNonArrays(t *testing.T) {
	var d Decoder
	for name, msg := range map[string][]byte{"nil keep-alive": {0xc0}, "string": msgp.AppendString(nil, "x"), "map": {0x80}} {
		var m Message
		if err := d.Decode(msg, &m, 1); err != nil || m.Mode != ModeIgnored || m.Count != 0 {
			t.Errorf("%s: mode %q count %d err %v", name, m.Mode, m.Count, err)
		}
	}
}

func TestDecodeZstd(t *testing.T) {
	ents := entries(t, 4)
	enc, _ := zstd.NewWriter(nil)
	comp := enc.EncodeAll(ents, nil)
	enc.Close()
	msg := append(msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "app"), comp), option("z", "zstd")...)
	d := Decoder{MaxDecompressed: 1 << 20}
	defer d.Close()
	var m Message
	if err := d.Decode(msg, &m, 1); err != nil || m.Count != 4 || string(m.Chunk) != "z" {
		t.Fatalf("zstd: count %d chunk %q err %v", m.Count, m.Chunk, err)
	}
	small := Decoder{MaxDecompressed: 64}
	defer small.Close()
	if err := small.Decode(msg, &m, 1); !errors.Is(err, ErrProtocol) {
		t.Errorf("zstd over the limit: %v", err)
	}
}

func TestDecodeZeroTimeBecomesNow(t *testing.T) {
	msg := append(msgp.AppendInt64(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "app"), 0), record(t, "k", "v")...)
	var d Decoder
	var m Message
	if err := d.Decode(msg, &m, event.Time(77e9)); err != nil {
		t.Fatal(err)
	}
	r := event.NewReader(m.Entries)
	if !r.Next() || r.Entry().Time != 77e9 {
		t.Fatalf("time not replaced: %v", r.Entry().Time)
	}
}

func TestDecodeRejects(t *testing.T) {
	ents := entries(t, 2)
	bomb := gz(t, make([]byte, 1<<20))
	cases := map[string][]byte{
		"one element":      msgp.AppendString(msgp.AppendArrayHeader(nil, 1), "app"),
		"int tag":          append(msgp.AppendInt(msgp.AppendArrayHeader(nil, 2), 1), msgp.AppendBytes(nil, ents)...),
		"empty tag":        msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 2), ""), ents),
		"bad packed entry": msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 2), "a"), ents[:len(ents)-1]),
		"string record":    msgp.AppendString(msgp.AppendInt64(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "a"), 1), "x"),
		"unknown compress": append(msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "a"), ents), option("", "lz4")...),
		"not gzip":         append(msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "a"), ents), option("", "gzip")...),
		"gzip bomb":        append(msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "a"), bomb), option("", "gzip")...),
		"option not map":   append(msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "a"), ents), msgp.AppendInt(nil, 3)...),
		"forward count":    append(msgp.AppendArrayHeader(msgp.AppendString(msgp.AppendArrayHeader(nil, 2), "a"), 3), ents...),
	}
	d := Decoder{MaxDecompressed: 64 << 10}
	for name, msg := range cases {
		t.Run(name, func(t *testing.T) {
			var m Message
			if err := d.Decode(msg, &m, 1); !errors.Is(err, ErrProtocol) {
				t.Fatalf("want ErrProtocol, got %v", err)
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	ents := entries(f, 2)
	f.Add(append(msgp.AppendInt64(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "app"), 1), record(f, "k", "v")...))
	f.Add(append(append(msgp.AppendArrayHeader(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "app"), 2), ents...), option("c", "")...))
	f.Add(append(msgp.AppendBytes(msgp.AppendString(msgp.AppendArrayHeader(nil, 3), "app"), gz(f, ents)), option("c", "gzip")...))
	d := Decoder{MaxDecompressed: 1 << 20}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var m Message
		if err := d.Decode(msg, &m, 1); err != nil {
			return
		}
		if n, err := event.Validate(m.Entries); err != nil || n != m.Count {
			t.Fatalf("accepted a message whose entries do not validate: %d/%d %v", n, m.Count, err)
		}
	})
}

// Every growth of the inflate buffer is reserved first, so that payloads
// inflating on many connections at once stay within what the input
// grants (8 concurrent gzip bombs once reached 1.8 GB).
func TestInflateReservesBeforeGrowing(t *testing.T) {
	errFull := errors.New("budget full")
	for _, compression := range []string{"gzip", "zstd"} {
		t.Run(compression, func(t *testing.T) {
			granted := 0
			d := Decoder{MaxDecompressed: 64 << 20, Reserve: func(n int) error {
				if granted+n > 1<<20 {
					return errFull
				}
				granted += n
				return nil
			}}
			defer d.Close()
			zeros := make([]byte, 16<<20)
			var z bytes.Buffer
			if compression == "gzip" {
				zw := gzip.NewWriter(&z)
				zw.Write(zeros)
				zw.Close()
			} else {
				zw, _ := zstd.NewWriter(&z)
				zw.Write(zeros)
				zw.Close()
			}
			msg := msgp.AppendArrayHeader(nil, 3)
			msg = msgp.AppendString(msg, "app")
			msg = msgp.AppendBytes(msg, z.Bytes())
			msg = msgp.AppendMapHeader(msg, 1)
			msg = msgp.AppendString(msgp.AppendString(msg, "compressed"), compression)
			var m Message
			if err := d.Decode(msg, &m, 0); !errors.Is(err, errFull) {
				t.Fatalf("a payload inflating past the grant: %v", err)
			}
			if granted > 1<<20 || cap(d.inflate) > 1<<20 {
				t.Errorf("granted %d, inflate buffer %d bytes: more than the 1 MiB the budget allows", granted, cap(d.inflate))
			}
			if freed := d.Shrink(0); freed != granted {
				t.Errorf("Shrink gave back %d of the %d granted", freed, granted)
			}
		})
	}
}
