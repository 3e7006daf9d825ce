package event

import (
	"fmt"
	"sort"

	"github.com/tinylib/msgp/msgp"
)

// Builder accumulates entries for a Stream. The zero value is ready to use.
// Reset keeps the allocated buffer, so a Builder reused per call allocates
// nothing in steady state. A Builder is not safe for concurrent use.
type Builder struct {
	buf []byte
	n   int
}

// Reset empties the builder, keeping its memory.
func (b *Builder) Reset() { b.buf, b.n = b.buf[:0], 0 }

// AppendRaw appends an already-encoded entry.
func (b *Builder) AppendRaw(entry []byte) {
	b.buf = append(b.buf, entry...)
	b.n++
}

// AppendTimeRecord appends [time, record] from an already-encoded time
// (any form ReadTime accepts) and record.
func (b *Builder) AppendTimeRecord(rawTime, record []byte) {
	b.buf = append(b.buf, 0x92)
	b.buf = append(b.buf, rawTime...)
	b.buf = append(b.buf, record...)
	b.n++
}

// AppendEntries appends n already-encoded entries held back to back in data.
func (b *Builder) AppendEntries(data []byte, n int) {
	b.buf = append(b.buf, data...)
	b.n += n
}

// Append appends [EventTime, record]; record must be an encoded map.
func (b *Builder) Append(t Time, record []byte) {
	b.buf = append(b.buf, 0x92)
	b.buf = AppendEventTime(b.buf, t)
	b.buf = append(b.buf, record...)
	b.n++
}

// Bytes returns the entries; they alias the builder until the next Reset.
func (b *Builder) Bytes() []byte { return b.buf }

// Len returns the number of entries.
func (b *Builder) Len() int { return b.n }

// Stream returns a Stream over the builder's entries.
func (b *Builder) Stream(tag string) Stream { return Stream{Tag: tag, Data: b.buf, Len: b.n} }

// mapHeaderRoom is the size of the largest msgpack map header (map32).
const mapHeaderRoom = 5

// OpenMap starts, in scratch's memory (its bytes are dropped), a map
// whose count is not known yet: append its pairs to the result, then
// CloseMap. It saves walking a record twice, once to count its fields.
func OpenMap(scratch []byte) []byte { return append(scratch[:0], 0, 0, 0, 0, 0) }

// CloseMap puts the smallest header for n pairs in front of the pairs
// appended after OpenMap, without moving them, and returns the map: a
// slice of body, which the caller keeps whole to reuse.
func CloseMap(body []byte, n uint32) []byte {
	var hb [mapHeaderRoom]byte
	hdr := msgp.AppendMapHeader(hb[:0], n)
	start := mapHeaderRoom - len(hdr)
	copy(body[start:], hdr)
	return body[start:]
}

// AppendRecordFields appends rec with string fields set from kv (key,
// value, key, value ...). A key rec already has is replaced, as Fluentd's
// record[key] = value does.
func AppendRecordFields(dst []byte, rec Record, kv ...string) ([]byte, error) {
	n := uint32(len(kv) / 2)
	err := rec.Each(func(k []byte, _ Value) bool {
		if !hasKey(kv, k) {
			n++
		}
		return true
	})
	if err != nil {
		return dst, err
	}
	dst = msgp.AppendMapHeader(dst, n)
	_ = rec.Each(func(k []byte, v Value) bool {
		if !hasKey(kv, k) {
			dst = msgp.AppendStringFromBytes(dst, k)
			dst = append(dst, v...)
		}
		return true
	})
	for i := 0; i+1 < len(kv); i += 2 {
		dst = msgp.AppendString(dst, kv[i])
		dst = msgp.AppendString(dst, kv[i+1])
	}
	return dst, nil
}

func hasKey(kv []string, k []byte) bool {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i] == string(k) {
			return true
		}
	}
	return false
}

// EncodeRecord encodes a map as a msgpack record with keys in sorted order,
// for tests and for plugins that build records from configuration.
func EncodeRecord(m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := msgp.AppendMapHeader(nil, uint32(len(keys)))
	for _, k := range keys {
		out = msgp.AppendString(out, k)
		var err error
		if out, err = appendAny(out, m[k]); err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
	}
	return out, nil
}

func appendAny(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case map[string]any:
		rec, err := EncodeRecord(x)
		return append(dst, rec...), err
	case []any:
		dst = msgp.AppendArrayHeader(dst, uint32(len(x)))
		for _, item := range x {
			var err error
			if dst, err = appendAny(dst, item); err != nil {
				return dst, err
			}
		}
		return dst, nil
	case float64:
		// JSON numbers arrive as float64; keep integers integers.
		if x == float64(int64(x)) {
			return msgp.AppendInt64(dst, int64(x)), nil
		}
		return msgp.AppendFloat64(dst, x), nil
	}
	return msgp.AppendIntf(dst, v)
}

// AppendWithout appends rec to dst less the fields at paths (each a path
// of keys, as buffer.RecordPath makes them: {"a"} is a top-level field,
// {"k8s","labels"} a nested one). A map a path goes through stays, emptied
// of what the path names, as Fluentd's record accessor deletes.
func AppendWithout(dst []byte, rec Record, paths [][]string) ([]byte, error) {
	kept := uint32(0)
	if err := rec.Each(func(k []byte, _ Value) bool {
		if !removed(paths, k) {
			kept++
		}
		return true
	}); err != nil {
		return dst, err
	}
	dst = msgp.AppendMapHeader(dst, kept)
	var err error
	_ = rec.Each(func(k []byte, v Value) bool {
		if removed(paths, k) {
			return true
		}
		dst = msgp.AppendStringFromBytes(dst, k)
		var sub [][]string
		for _, p := range paths {
			if len(p) > 1 && p[0] == string(k) {
				sub = append(sub, p[1:])
			}
		}
		if sub == nil || msgp.NextType(v) != msgp.MapType {
			dst = append(dst, v...)
			return true
		}
		dst, err = AppendWithout(dst, Record(v), sub)
		return err == nil
	})
	return dst, err
}

func removed(paths [][]string, key []byte) bool {
	for _, p := range paths {
		if len(p) == 1 && p[0] == string(key) {
			return true
		}
	}
	return false
}
