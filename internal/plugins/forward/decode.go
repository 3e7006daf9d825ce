// Package forward implements Fluentd's Forward Protocol v1. This first
// version of in_forward reads the four event modes and answers acks; the
// handshake, TLS, heartbeat and the zero-copy path come with issue 3.
package forward

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
)

// ErrProtocol reports a message that does not follow the protocol.
var ErrProtocol = errors.New("forward protocol error")

func protoErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}

// Message is one decoded event message. Its slices alias the decoder's
// input or scratch space and are valid until the next decode.
type Message struct {
	Tag     []byte
	Entries []byte // concatenated [time, record] entries
	Count   int
	Chunk   []byte // the "chunk" option: the client wants an ack
	Mode    string // "message", "forward", "packed_forward" or "compressed_packed_forward"
}

// Decoder decodes messages, reusing its scratch memory between calls.
type Decoder struct {
	// MaxDecompressed bounds the size of a gzip payload once inflated.
	MaxDecompressed int

	entry   event.Builder
	inflate bytes.Buffer
	gz      *gzip.Reader
}

// Decode decodes the complete msgpack message b (one array) into m.
func (d *Decoder) Decode(b []byte, m *Message, now event.Time) error {
	*m = Message{}
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
			if _, b, err = event.DecodeEntry(b); err != nil {
				return fmt.Errorf("%w: entry %d: %v", ErrProtocol, i, err)
			}
		}
		m.Entries = start[:len(start)-len(b)]
		m.Count = int(count)
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
		compressed, err := compressedOption(option)
		if err != nil {
			return err
		}
		if compressed {
			m.Mode = "compressed_packed_forward"
			if payload, err = d.gunzip(payload); err != nil {
				return err
			}
		}
		m.Entries = payload
		if m.Count, err = event.Validate(payload); err != nil {
			return fmt.Errorf("%w: %v", ErrProtocol, err)
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
		if msgp.NextType(rest) != msgp.MapType {
			return protoErr("record is not a map")
		}
		after, err := msgp.Skip(rest)
		if err != nil {
			return protoErr("bad record: %v", err)
		}
		record := rest[:len(rest)-len(after)]
		d.entry.Reset()
		if t == 0 {
			d.entry.Append(now, record)
		} else {
			d.entry.AppendTimeRecord(rawTime, record)
		}
		m.Entries, m.Count = d.entry.Bytes(), 1
		option = after
	}
	if len(option) > 0 {
		if m.Chunk, err = chunkOption(option); err != nil {
			return err
		}
	}
	return nil
}

// compressedOption reads option["compressed"]; "gzip" means a gzip payload,
// and "text" (which the Node.js client sends) or absence means none.
func compressedOption(option []byte) (bool, error) {
	if len(option) == 0 {
		return false, nil
	}
	v, ok := event.Record(option).Get("compressed")
	if !ok {
		return false, nil
	}
	s, _ := v.Bytes()
	switch string(s) {
	case "gzip":
		return true, nil
	case "text", "":
		return false, nil
	}
	return false, protoErr("unsupported compression %q", s)
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
	d.inflate.Reset()
	limit := int64(d.MaxDecompressed)
	n, err := io.Copy(&d.inflate, io.LimitReader(d.gz, limit+1))
	if err != nil {
		return nil, protoErr("gzip: %v", err)
	}
	if n > limit {
		return nil, protoErr("decompressed payload exceeds %d bytes", limit)
	}
	return d.inflate.Bytes(), nil
}

// AppendAck appends the ack response {"ack": chunk}.
func AppendAck(dst, chunk []byte) []byte {
	dst = msgp.AppendMapHeader(dst, 1)
	dst = msgp.AppendString(dst, "ack")
	return msgp.AppendStringFromBytes(dst, chunk)
}
