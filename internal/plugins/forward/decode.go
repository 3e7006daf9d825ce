// Package forward implements Fluentd's Forward Protocol v1: in_forward (the
// four event modes, acks, the HELO/PING/PONG handshake, TLS, the UDP
// heartbeat) and out_forward.
package forward

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/budget"
	"github.com/sluice-log/sluice/internal/event"
)

// ErrProtocol reports a message that does not follow the protocol.
var ErrProtocol = errors.New("forward protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// ModeIgnored marks a value that is not an event message: the spec lets
// clients send nil as a keep-alive, and servers ignore any non-array value.
const ModeIgnored = "ignored"

// Message is one decoded event message. Its slices alias the decoder's
// input or scratch space and are valid until the next decode.
type Message struct {
	Tag     []byte
	Entries []byte // concatenated [time, record] entries
	Count   int
	// Index is where each of Entries ends, when validation recorded it.
	Index *event.Index
	Chunk []byte // the "chunk" option: the client wants an ack
	Mode  string // "message", "forward", "packed_forward", "compressed_packed_forward" or ModeIgnored
	// Invalid counts well-formed entries of the wrong shape that
	// SkipInvalid dropped.
	Invalid int
}

// Decoder decodes messages, reusing its scratch memory between calls.
type Decoder struct {
	// MaxDecompressed bounds the size of a gzip or zstd payload once
	// inflated.
	MaxDecompressed int
	// SkipInvalid drops well-formed entries of the wrong shape (a record
	// that is not a map, a time that is not a time) instead of refusing
	// the message: Fluentd's skip_invalid_event.
	SkipInvalid bool

	// Reserve, when set, is asked for n bytes before the inflate buffer
	// grows by n; its error stops the inflation, and Decode returns it
	// wrapped in a *budget.Refused. in_forward charges it to
	// the receive budget all its connections share, so that compressed
	// payloads inflating at once stay within receive_buffer_limit.
	Reserve func(n int) error

	entry    event.Builder
	valid    event.Builder
	index    event.Index
	inflate  []byte // the last payload inflated
	reserved int    // bytes Reserve granted for inflate's capacity
	gz       *gzip.Reader
	zs       *zstd.Decoder
}

// Decode decodes the complete msgpack message b (one array) into m.
func (d *Decoder) Decode(b []byte, m *Message, now event.Time) error {
	*m = Message{}
	if msgp.NextType(b) != msgp.ArrayType {
		m.Mode = ModeIgnored
		return nil
	}
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil {
		return protoErr("message is not an array")
	}
	if n < 2 || n > 4 {
		return protoErr("message array has %d elements, want 2 to 4", n)
	}
	switch msgp.NextType(b) {
	case msgp.StrType:
		m.Tag, b, err = msgp.ReadStringZC(b)
	case msgp.BinType:
		m.Tag, b, err = msgp.ReadBytesZC(b)
	default:
		return protoErr("tag is not a string")
	}
	if err != nil || len(m.Tag) == 0 {
		return protoErr("bad tag")
	}
	var option []byte
	switch msgp.NextType(b) {
	case msgp.ArrayType: // Forward: [tag, [entry, ...], option?]
		m.Mode = "forward"
		var count uint32
		count, b, err = msgp.ReadArrayHeaderBytes(b)
		if err != nil {
			return protoErr("bad entries array")
		}
		start := b
		for i := uint32(0); i < count; i++ {
			if b, err = event.Skip(b); err != nil {
				return fmt.Errorf("%w: entry %d: %v", ErrProtocol, i, err)
			}
		}
		if err := d.entries(start[:len(start)-len(b)], m); err != nil {
			return err
		}
		option = b
		if n != 2 && n != 3 {
			return protoErr("forward mode wants 2 or 3 elements, got %d", n)
		}
	case msgp.BinType, msgp.StrType: // PackedForward: [tag, entries, option?]
		m.Mode = "packed_forward"
		var payload []byte
		if msgp.NextType(b) == msgp.BinType {
			payload, b, err = msgp.ReadBytesZC(b)
		} else {
			payload, b, err = msgp.ReadStringZC(b)
		}
		if err != nil {
			return protoErr("bad packed entries")
		}
		if n != 2 && n != 3 {
			return protoErr("packed forward mode wants 2 or 3 elements, got %d", n)
		}
		option = b
		compression, err := compressedOption(option)
		if err != nil {
			return err
		}
		switch compression {
		case "gzip":
			m.Mode = "compressed_packed_forward"
			payload, err = d.gunzip(payload)
		case "zstd":
			m.Mode = "compressed_packed_forward"
			payload, err = d.unzstd(payload)
		}
		if err != nil {
			return err
		}
		if err := d.entries(payload, m); err != nil {
			return err
		}
	default: // Message: [tag, time, record, option?]
		m.Mode = "message"
		if n != 3 && n != 4 {
			return protoErr("message mode wants 3 or 4 elements, got %d", n)
		}
		timeStart := b
		t, rest, err := event.ReadTime(b)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		rawTime := timeStart[:len(timeStart)-len(rest)]
		after, err := event.Skip(rest)
		if err != nil {
			return protoErr("bad record: %v", err)
		}
		record := rest[:len(rest)-len(after)]
		if msgp.NextType(rest) != msgp.MapType {
			if !d.SkipInvalid {
				return protoErr("record is not a map")
			}
			m.Invalid = 1
			m.Entries, m.Count = nil, 0
			return d.options(after, m)
		}
		d.entry.Reset()
		if t == 0 {
			d.entry.Append(now, record)
		} else {
			d.entry.AppendTimeRecord(rawTime, record)
		}
		m.Entries, m.Count = d.entry.Bytes(), 1
		option = after
	}
	return d.options(option, m)
}

func (d *Decoder) options(option []byte, m *Message) error {
	if len(option) == 0 {
		return nil
	}
	var err error
	m.Chunk, err = chunkOption(option)
	return err
}

// entries validates a run of entries into m. With SkipInvalid, entries of
// the wrong shape are dropped and counted; bytes that are not msgpack are
// always an error, since nothing after them can be found.
func (d *Decoder) entries(data []byte, m *Message) error {
	n, err := event.ValidateIndexed(data, &d.index)
	if err == nil {
		m.Entries, m.Count, m.Index = data, n, &d.index
		return nil
	}
	if !d.SkipInvalid {
		return fmt.Errorf("%w: %v", ErrProtocol, err)
	}
	d.valid.Reset()
	for b := data; len(b) > 0; {
		rest, err := msgp.Skip(b)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
		}
		if _, _, err := event.DecodeEntry(b[:len(b)-len(rest)]); err != nil {
			m.Invalid++
		} else {
			d.valid.AppendRaw(b[:len(b)-len(rest)])
		}
		b = rest
	}
	m.Entries, m.Count = d.valid.Bytes(), d.valid.Len()
	return nil
}

// compressedOption reads option["compressed"]: "gzip" (the spec), "zstd"
// (Fluentd 1.19), or "text" (which the Node.js client sends), absent or
// empty for none.
func compressedOption(option []byte) (string, error) {
	if len(option) == 0 || msgp.NextType(option) != msgp.MapType {
		return "", nil
	}
	v, ok := event.Record(option).Get("compressed")
	if !ok {
		return "", nil
	}
	s, _ := v.Bytes()
	switch string(s) {
	case "gzip":
		return "gzip", nil
	case "zstd":
		return "zstd", nil
	case "text", "":
		return "", nil
	}
	return "", protoErr("unsupported compression %q", s)
}

func chunkOption(option []byte) ([]byte, error) {
	if msgp.NextType(option) == msgp.NilType {
		return nil, nil
	}
	if msgp.NextType(option) != msgp.MapType {
		return nil, protoErr("option is not a map")
	}
	if _, err := msgp.Skip(option); err != nil {
		return nil, protoErr("bad option map")
	}
	v, ok := event.Record(option).Get("chunk")
	if !ok {
		return nil, nil
	}
	id, ok := v.Bytes()
	if !ok {
		return nil, protoErr("chunk option is not a string")
	}
	return id, nil
}

func (d *Decoder) gunzip(payload []byte) ([]byte, error) {
	var err error
	if d.gz == nil {
		d.gz, err = gzip.NewReader(bytes.NewReader(payload))
	} else {
		err = d.gz.Reset(bytes.NewReader(payload))
	}
	if err != nil {
		return nil, protoErr("gzip: %v", err)
	}
	return d.inflateFrom(d.gz, "gzip")
}

// zstdMaxWindow bounds the memory one zstd frame may ask for.
const zstdMaxWindow = 8 << 20

func (d *Decoder) unzstd(payload []byte) ([]byte, error) {
	var err error
	if d.zs == nil {
		d.zs, err = zstd.NewReader(bytes.NewReader(payload), zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderMaxMemory(uint64(d.MaxDecompressed)))
	} else {
		err = d.zs.Reset(bytes.NewReader(payload))
	}
	if err != nil {
		return nil, protoErr("zstd: %v", err)
	}
	return d.inflateFrom(d.zs, "zstd")
}

// inflateFrom reads a decompressor to its end into d.inflate, each growth
// reserved first and never past MaxDecompressed.
func (d *Decoder) inflateFrom(r io.Reader, name string) ([]byte, error) {
	out, granted, err := budget.ReadAll(r, d.inflate, d.MaxDecompressed, d.Reserve)
	d.inflate = out
	d.reserved += granted
	var refused *budget.Refused
	switch {
	case errors.As(err, &refused):
		return nil, err // the input's memory, not the message, is at fault
	case errors.Is(err, budget.ErrTooLarge):
		return nil, protoErr("decompressed payload exceeds %d bytes", d.MaxDecompressed)
	case err != nil:
		return nil, protoErr("%s: %v", name, err)
	}
	return out, nil
}

// Shrink lets go of an inflate buffer larger than keep, once its
// message is handled, and returns the bytes Reserve had granted for it:
// a connection that inflated one large payload does not hold its memory
// while idle.
func (d *Decoder) Shrink(keep int) (freed int) {
	if cap(d.inflate) <= keep {
		return 0
	}
	freed, d.inflate, d.reserved = d.reserved, nil, 0
	d.index.Release() // it points into the inflate buffer
	return freed
}

// Close releases the zstd decoder's goroutines, if one was started.
func (d *Decoder) Close() {
	if d.zs != nil {
		d.zs.Close()
		d.zs = nil
	}
}

// AppendAck appends the ack response {"ack": chunk}.
func AppendAck(dst, chunk []byte) []byte {
	dst = msgp.AppendMapHeader(dst, 1)
	dst = msgp.AppendString(dst, "ack")
	return msgp.AppendStringFromBytes(dst, chunk)
}
