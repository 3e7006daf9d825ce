// Package event is Sluice's event model: tagged runs of msgpack entries kept
// in wire format.
//
// An entry is the Forward protocol's [time, record] array, or Fluent Bit's
// [[time, metadata], record]. A Stream carries the concatenated entries of
// one tag; stages step over the bytes with a Reader and decode a field only
// when they need it (Record.Get). Nothing here copies Stream.Data: a stage
// borrows it for the length of a call, and whoever keeps it makes the one
// copy (the buffer).
package event

import (
	"encoding/binary"
	"time"
)

// Time is an event time in nanoseconds since the Unix epoch.
type Time int64

// FromStd converts a time.Time.
func FromStd(t time.Time) Time { return Time(t.UnixNano()) }

// Now is the current time.
func Now() Time { return FromStd(time.Now()) }

// Std converts to a time.Time in the local zone.
func (t Time) Std() time.Time { return time.Unix(0, int64(t)) }

// Unix returns whole seconds since the epoch.
func (t Time) Unix() int64 { return int64(t) / int64(time.Second) }

// Nanos returns the nanoseconds within the second.
func (t Time) Nanos() int64 { return int64(t) % int64(time.Second) }

// AppendEventTime appends t as Fluentd's EventTime: msgpack ext type 0 with
// 4 bytes of seconds and 4 bytes of nanoseconds, big-endian (fixext8).
func AppendEventTime(dst []byte, t Time) []byte {
	dst = append(dst, 0xd7, 0x00)
	dst = binary.BigEndian.AppendUint32(dst, uint32(t.Unix()))
	return binary.BigEndian.AppendUint32(dst, uint32(t.Nanos()))
}

// Stream is a run of entries that share a tag. Data holds Len concatenated
// msgpack entries (the Forward protocol's PackedForward "entries" bytes).
type Stream struct {
	Tag  string
	Data []byte
	Len  int
	// Index, when not nil, is where each entry of Data ends, found by the
	// validation that the input ran (see Stream.Reader). It is ignored
	// unless it was built over these very bytes.
	Index *Index
}

// Entry is a view of one entry; its slices alias the Reader's data.
type Entry struct {
	Time   Time
	Record Record
	// Meta is Fluent Bit's metadata map, or nil for [time, record] entries.
	Meta []byte
	// Raw is the whole entry, ready to copy into another stream.
	Raw []byte
}

// TimePart returns the encoded time, or Fluent Bit's [time, metadata], as
// it stands in Raw between the entry's array header and its record.
func (e *Entry) TimePart() []byte {
	hdr := 1 // fixarray
	switch e.Raw[0] {
	case 0xdc:
		hdr = 3
	case 0xdd:
		hdr = 5
	}
	return e.Raw[hdr : len(e.Raw)-len(e.Record)]
}
