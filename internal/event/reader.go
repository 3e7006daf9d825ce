package event

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/tinylib/msgp/msgp"
)

// ErrEntry reports a malformed entry; the Reader stops at the first one.
var ErrEntry = errors.New("malformed entry")

// Reader steps over the entries in a byte slice, in the manner of
// bufio.Scanner. The zero value reads nothing; Reset points it at data.
// Entry's slices alias data and stay valid as long as data does.
type Reader struct {
	data  []byte
	entry Entry
	err   error
	n     int
	ends  []uint32 // from a Stream's Index: where the entries left end
	off   int      // bytes of the indexed data already read
}

// NewReader returns a Reader over data.
func NewReader(data []byte) Reader { return Reader{data: data} }

// Reset points the Reader at data and clears its state.
func (r *Reader) Reset(data []byte) { *r = Reader{data: data} }

// Next advances to the next entry. It returns false at the end of the data
// or at the first malformed entry; Err tells which.
func (r *Reader) Next() bool {
	if r.err != nil || len(r.data) == 0 {
		return false
	}
	if r.ends != nil {
		return r.nextIndexed()
	}
	rest, err := decodeEntry(&r.entry, r.data)
	if err != nil {
		r.err = fmt.Errorf("entry %d: %w", r.n, err)
		return false
	}
	r.data = rest
	r.n++
	return true
}

// Entry returns the current entry. It is valid until the next call to Next.
func (r *Reader) Entry() *Entry { return &r.entry }

// Err returns the first error met, or nil at a clean end.
func (r *Reader) Err() error { return r.err }

// Count returns the number of entries read so far.
func (r *Reader) Count() int { return r.n }

// Validate steps over every entry in data and returns how many there are.
// It checks shape and well-formedness and decodes nothing else.
func Validate(data []byte) (int, error) {
	r := NewReader(data)
	for r.Next() {
	}
	return r.n, r.err
}

// DecodeEntry reads one entry from the front of b and returns it with the
// bytes that follow it.
func DecodeEntry(b []byte) (Entry, []byte, error) {
	var e Entry
	rest, err := decodeEntry(&e, b)
	return e, rest, err
}

// decodeEntry is DecodeEntry into e, which it overwrites: the Reader's
// entry, filled in place rather than copied in and out of calls.
func decodeEntry(e *Entry, b []byte) ([]byte, error) {
	rec, err := decodeHead(e, b)
	if err != nil {
		return b, err
	}
	if !isMap(rec) {
		return b, fmt.Errorf("%w: record is not a map", ErrEntry)
	}
	rest, err := skip(rec, 0)
	if err != nil {
		return b, fmt.Errorf("%w: %v", ErrEntry, err)
	}
	e.Record = Record(rec[:len(rec)-len(rest)])
	e.Raw = b[:len(b)-len(rest)]
	return rest, nil
}

// decodeEntryOf decodes into e the bytes b, known to hold exactly one
// valid entry (its end came from an Index): the record is what follows
// the time.
func decodeEntryOf(e *Entry, b []byte) error {
	rec, err := decodeHead(e, b)
	if err != nil {
		return err
	}
	if !isMap(rec) {
		return fmt.Errorf("%w: record is not a map", ErrEntry)
	}
	e.Record = Record(rec)
	return nil
}

// isMap reports whether b starts with a map's header.
func isMap(b []byte) bool {
	return len(b) > 0 && (b[0]&0xf0 == 0x80 || b[0] == 0xde || b[0] == 0xdf)
}

// decodeHead reads an entry's array header and time (and Fluent Bit's
// metadata) into e, which it resets with Raw set to b, and returns the
// bytes from the record on.
func decodeHead(e *Entry, b []byte) ([]byte, error) {
	*e = Entry{Raw: b}
	if len(b) >= 11 && b[0] == 0x92 && b[1] == 0xd7 && b[2] == 0 {
		// [EventTime, ...], as the forward protocol's clients send it.
		e.Time = eventTimeBody(b[3:11])
		return b[11:], nil
	}
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n != 2 {
		return e.Raw, fmt.Errorf("%w: want a 2-element array", ErrEntry)
	}
	if msgp.NextType(b) == msgp.ArrayType {
		// Fluent Bit: [[time, metadata], record]
		var inner uint32
		inner, b, err = msgp.ReadArrayHeaderBytes(b)
		if err != nil || inner != 2 {
			return e.Raw, fmt.Errorf("%w: want [time, metadata]", ErrEntry)
		}
		if e.Time, b, err = ReadTime(b); err != nil {
			return e.Raw, err
		}
		if msgp.NextType(b) != msgp.MapType {
			return e.Raw, fmt.Errorf("%w: metadata is not a map", ErrEntry)
		}
		rest, err := skip(b, 0)
		if err != nil {
			return e.Raw, fmt.Errorf("%w: %v", ErrEntry, err)
		}
		e.Meta = b[:len(b)-len(rest)]
		b = rest
	} else if e.Time, b, err = ReadTime(b); err != nil {
		return e.Raw, err
	}
	return b, nil
}

// ReadTime reads an event time: EventTime (ext 0, as fixext8 or ext8),
// an integer or a float of seconds, or nil (zero: the caller decides).
func ReadTime(b []byte) (Time, []byte, error) {
	if len(b) == 0 {
		return 0, b, fmt.Errorf("%w: missing time", ErrEntry)
	}
	switch b[0] {
	case 0xd7, 0xc7:
		if t, rest, ok := readEventTime(b); ok {
			return t, rest, nil
		}
		return 0, b, fmt.Errorf("%w: time extension is not EventTime", ErrEntry)
	case 0xc0:
		return 0, b[1:], nil
	}
	switch msgp.NextType(b) {
	case msgp.IntType:
		s, rest, err := msgp.ReadInt64Bytes(b)
		if err != nil || s > maxSeconds || s < -maxSeconds {
			return 0, b, fmt.Errorf("%w: bad integer time", ErrEntry)
		}
		return Time(s * 1e9), rest, nil
	case msgp.UintType:
		s, rest, err := msgp.ReadUint64Bytes(b)
		if err != nil || s > uint64(maxSeconds) {
			return 0, b, fmt.Errorf("%w: bad integer time", ErrEntry)
		}
		return Time(int64(s) * 1e9), rest, nil
	case msgp.Float64Type, msgp.Float32Type:
		f, rest, err := msgp.ReadFloat64Bytes(b)
		if err != nil || math.IsNaN(f) || math.Abs(f) > math.MaxInt64/1e9 {
			return 0, b, fmt.Errorf("%w: bad float time", ErrEntry)
		}
		return Time(f * 1e9), rest, nil
	}
	return 0, b, fmt.Errorf("%w: time is %s", ErrEntry, msgp.NextType(b))
}

// readEventTime decodes an EventTime, the forward protocol's time
// extension (type 0: seconds and nanoseconds, each a big-endian uint32),
// in either of the encodings clients use: fixext8, or ext8 with an 8-byte
// body. Nanoseconds past a second are taken modulo 1e9. Every reader of
// times (entries, record values) decodes through it, so that the same
// bytes always give the same time.
func readEventTime(b []byte) (Time, []byte, bool) {
	var body []byte
	switch {
	case len(b) >= 10 && b[0] == 0xd7 && b[1] == 0: // fixext8
		body, b = b[2:10], b[10:]
	case len(b) >= 11 && b[0] == 0xc7 && b[1] == 8 && b[2] == 0: // ext8
		body, b = b[3:11], b[11:]
	default:
		return 0, b, false
	}
	return eventTimeBody(body), b, true
}

// eventTimeBody decodes the 8 bytes of an EventTime.
func eventTimeBody(body []byte) Time {
	sec := binary.BigEndian.Uint32(body[0:4])
	nsec := binary.BigEndian.Uint32(body[4:8])
	return Time(int64(sec)*1e9 + int64(nsec%1e9))
}

// maxSeconds keeps seconds*1e9 inside int64.
const maxSeconds = math.MaxInt64 / int64(1e9)
