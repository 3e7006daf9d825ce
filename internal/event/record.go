package event

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/tinylib/msgp/msgp"
)

// Record is a view of a msgpack map. Lookups step over the bytes; nothing
// is decoded until asked for.
type Record []byte

// Value is a view of one msgpack object.
type Value []byte

// Get returns the value of the top-level key.
func (r Record) Get(key string) (Value, bool) {
	b := []byte(r)
	n, b, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		return nil, false
	}
	for ; n > 0; n-- {
		var k []byte
		k, b, err = readKey(b)
		if err != nil {
			return nil, false
		}
		rest, err := skip(b, 0)
		if err != nil {
			return nil, false
		}
		if string(k) == key {
			return Value(b[:len(b)-len(rest)]), true
		}
		b = rest
	}
	return nil, false
}

// Lookup follows a path of keys through nested maps ($.a.b is {"a","b"}).
func (r Record) Lookup(path []string) (Value, bool) {
	cur := r
	var v Value
	for i, k := range path {
		var ok bool
		if v, ok = cur.Get(k); !ok {
			return nil, false
		}
		if i < len(path)-1 {
			if msgp.NextType(v) != msgp.MapType {
				return nil, false
			}
			cur = Record(v)
		}
	}
	return v, true
}

// Each calls fn for every key and value in order until fn returns false.
func (r Record) Each(fn func(key []byte, v Value) bool) error {
	b := []byte(r)
	n, b, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		var k []byte
		if k, b, err = readKey(b); err != nil {
			return err
		}
		rest, err := skip(b, 0)
		if err != nil {
			return err
		}
		if !fn(k, Value(b[:len(b)-len(rest)])) {
			return nil
		}
		b = rest
	}
	return nil
}

// Len returns the number of keys, or 0 for a malformed map.
func (r Record) Len() int {
	n, _, err := msgp.ReadMapHeaderBytes(r)
	if err != nil {
		return 0
	}
	return int(n)
}

// readKey reads a map key. Keys are str or bin in practice; other scalar
// keys are rendered as text so that they can still be looked up. A map or
// array as a key is refused: rendered as text inside text, each level of
// nesting would double the escapes, and a hostile record of a few hundred
// bytes would cost gigabytes.
func readKey(b []byte) (key, rest []byte, err error) {
	switch msgp.NextType(b) {
	case msgp.StrType:
		return msgp.ReadStringZC(b)
	case msgp.BinType:
		return msgp.ReadBytesZC(b)
	case msgp.MapType, msgp.ArrayType:
		return nil, b, ErrContainerKey
	}
	rest, err = msgp.Skip(b)
	if err != nil {
		return nil, b, err
	}
	return Value(b[:len(b)-len(rest)]).AppendText(nil), rest, nil
}

// ErrContainerKey is a map key that is itself a map or an array.
var ErrContainerKey = errors.New("a map key is a map or an array")

// Type returns the msgpack type of v.
func (v Value) Type() msgp.Type { return msgp.NextType(v) }

// Bytes returns the contents of a str or bin value.
func (v Value) Bytes() ([]byte, bool) {
	switch msgp.NextType(v) {
	case msgp.StrType:
		s, _, err := msgp.ReadStringZC(v)
		return s, err == nil
	case msgp.BinType:
		s, _, err := msgp.ReadBytesZC(v)
		return s, err == nil
	}
	return nil, false
}

// AppendText appends v as Ruby's to_s would render it, which is what
// Fluentd's formatters and placeholders print: strings raw, nil empty,
// numbers and booleans as literals, maps and arrays as JSON.
func (v Value) AppendText(dst []byte) []byte {
	if s, ok := v.Bytes(); ok {
		return append(dst, s...)
	}
	if len(v) > 0 && v[0] == 0xc0 {
		return dst
	}
	out, err := v.AppendJSON(dst)
	if err != nil {
		return dst
	}
	return out
}

// String returns AppendText as a string.
func (v Value) String() string { return string(v.AppendText(nil)) }

// maxJSONDepth bounds recursion on hostile nesting (msgp.Skip has its own).
const maxJSONDepth = 64

// AppendJSON appends v encoded as JSON. Bin values are treated as strings
// (Fluentd does the same); invalid UTF-8 becomes U+FFFD; extension values
// other than EventTime become null.
func (v Value) AppendJSON(dst []byte) ([]byte, error) {
	out, _, err := appendJSON(dst, v, 0)
	return out, err
}

// AppendJSON appends the record as a JSON object.
func (r Record) AppendJSON(dst []byte) ([]byte, error) { return Value(r).AppendJSON(dst) }

func appendJSON(dst, b []byte, depth int) ([]byte, []byte, error) {
	if depth > maxJSONDepth {
		return dst, b, msgp.ErrRecursion
	}
	// Fast paths for the shapes of nearly every log record: short strings
	// and small maps, read straight from their first byte.
	if len(b) > 0 {
		switch c := b[0]; {
		case c >= 0xa0 && c <= 0xbf: // fixstr
			n := 1 + int(c&0x1f)
			if len(b) >= n {
				return AppendJSONString(dst, b[1:n]), b[n:], nil
			}
		case c == 0xd9 && len(b) >= 2: // str8
			n := 2 + int(b[1])
			if len(b) >= n {
				return AppendJSONString(dst, b[2:n]), b[n:], nil
			}
		case c <= 0x7f: // positive fixint
			return strconv.AppendUint(dst, uint64(c), 10), b[1:], nil
		case c >= 0x80 && c <= 0x8f: // fixmap
			return appendJSONMap(dst, b[1:], int(c&0x0f), depth)
		}
	}
	if isExt(b) {
		if t, rest, ok := readEventTime(b); ok {
			return strconv.AppendFloat(dst, float64(t)/1e9, 'f', -1, 64), rest, nil
		}
		rest, err := msgp.Skip(b)
		if err != nil {
			return dst, b, err
		}
		return append(dst, "null"...), rest, nil
	}
	var err error
	switch msgp.NextType(b) {
	case msgp.StrType, msgp.BinType:
		var s []byte
		if msgp.NextType(b) == msgp.StrType {
			s, b, err = msgp.ReadStringZC(b)
		} else {
			s, b, err = msgp.ReadBytesZC(b)
		}
		if err != nil {
			return dst, b, err
		}
		return AppendJSONString(dst, s), b, nil
	case msgp.MapType:
		var n uint32
		if n, b, err = msgp.ReadMapHeaderBytes(b); err != nil {
			return dst, b, err
		}
		return appendJSONMap(dst, b, int(n), depth)
	case msgp.ArrayType:
		var n uint32
		if n, b, err = msgp.ReadArrayHeaderBytes(b); err != nil {
			return dst, b, err
		}
		dst = append(dst, '[')
		for i := uint32(0); i < n; i++ {
			if i > 0 {
				dst = append(dst, ',')
			}
			if dst, b, err = appendJSON(dst, b, depth+1); err != nil {
				return dst, b, err
			}
		}
		return append(dst, ']'), b, nil
	case msgp.IntType:
		var i int64
		if i, b, err = msgp.ReadInt64Bytes(b); err != nil {
			return dst, b, err
		}
		return strconv.AppendInt(dst, i, 10), b, nil
	case msgp.UintType:
		var u uint64
		if u, b, err = msgp.ReadUint64Bytes(b); err != nil {
			return dst, b, err
		}
		return strconv.AppendUint(dst, u, 10), b, nil
	case msgp.Float64Type, msgp.Float32Type:
		var f float64
		if f, b, err = msgp.ReadFloat64Bytes(b); err != nil {
			return dst, b, err
		}
		return appendFloat(dst, f), b, nil
	case msgp.BoolType:
		var t bool
		if t, b, err = msgp.ReadBoolBytes(b); err != nil {
			return dst, b, err
		}
		return strconv.AppendBool(dst, t), b, nil
	case msgp.NilType:
		return append(dst, "null"...), b[1:], nil
	}
	return dst, b, msgp.InvalidPrefixError(firstByte(b))
}

// appendJSONMap appends the n pairs that follow a map header as an object.
func appendJSONMap(dst, b []byte, n, depth int) ([]byte, []byte, error) {
	dst = append(dst, '{')
	// Each round: a run of plain string pairs (plainPairs), then the pair
	// that ended it, if any. Plain output is at most twice the input, and
	// plainPairs stops where room runs out.
	for i := 0; i < n; i++ {
		if i > 0 {
			dst = append(dst, ',')
		}
		if hasPlainPairs {
			dst = slices.Grow(dst, 2*min(len(b), maxPairRun)+plainSlack)
			w, r, run := plainPairs(dst[len(dst):cap(dst)], b, n-i)
			dst, b, i = dst[:len(dst)+w], b[r:], i+run
			if i == n {
				break
			}
			if run > 0 {
				dst = append(dst, ',')
			}
		}
		var ok bool
		if dst, b, ok = appendStringPair(dst, b); ok {
			continue
		}
		var k []byte
		var err error
		if len(b) > 0 && b[0] >= 0xa0 && b[0] <= 0xbf && len(b) > int(b[0]&0x1f) {
			k, b = b[1:1+int(b[0]&0x1f)], b[1+int(b[0]&0x1f):] // fixstr key
		} else if k, b, err = readKey(b); err != nil {
			return dst, b, err
		}
		dst = AppendJSONString(dst, k)
		dst = append(dst, ':')
		if dst, b, err = appendJSON(dst, b, depth+1); err != nil {
			return dst, b, err
		}
	}
	return append(dst, '}'), b, nil
}

// maxPairRun bounds the room appendJSONMap makes for plainPairs: a large
// record is rendered in runs rather than with room for all of it at once.
const maxPairRun = 16 << 10

// appendStringPair appends a pair whose key is a fixstr and whose value is
// a fixstr or str8, nearly every pair of a log record, as "key":"value",
// with one check for room. It returns ok false, and dst and b as they
// were, for any other pair or a key that needs escapes.
func appendStringPair(dst, b []byte) (_, _ []byte, ok bool) {
	if len(b) < 2 || b[0] < 0xa0 || b[0] > 0xbf {
		return dst, b, false
	}
	kn := int(b[0] & 0x1f)
	if len(b) < 2+kn {
		return dst, b, false
	}
	key, v := b[1:1+kn], b[1+kn:]
	var val, rest []byte
	switch c := v[0]; {
	case c >= 0xa0 && c <= 0xbf:
		vn := int(c & 0x1f)
		if len(v) < 1+vn {
			return dst, b, false
		}
		val, rest = v[1:1+vn], v[1+vn:]
	case c == 0xd9 && len(v) >= 2:
		vn := int(v[1])
		if len(v) < 2+vn {
			return dst, b, false
		}
		val, rest = v[2:2+vn], v[2+vn:]
	default:
		return dst, b, false
	}
	// Room for "key":"value" and copyPlain's slack after either string.
	n, room := len(dst), kn+len(val)+5+plainSlack
	dst = slices.Grow(dst, room)
	out := dst[n : n+room]
	out[0] = '"'
	if copyPlain(out[1:1+kn+plainSlack], key) != kn {
		return dst[:n], b, false
	}
	at := 1 + kn
	out[at], out[at+1], out[at+2] = '"', ':', '"'
	at += 3
	i := copyPlain(out[at:at+len(val)+plainSlack], val)
	if i != len(val) {
		return appendJSONEscaped(dst[:n+at+i], val, i), rest, true
	}
	out[at+i] = '"'
	return dst[:n+at+i+1], rest, true
}

// isExt reports whether b starts with a msgpack extension (fixext1-16,
// ext8/16/32). msgp.NextType maps some of these to pseudo-types.
func isExt(b []byte) bool {
	return len(b) > 0 && ((b[0] >= 0xd4 && b[0] <= 0xd8) || (b[0] >= 0xc7 && b[0] <= 0xc9))
}

func firstByte(b []byte) byte {
	if len(b) == 0 {
		return 0
	}
	return b[0]
}

// appendFloat prints floats the way Ruby's to_json does: integral values
// keep a ".0", non-finite values (not JSON) become null.
func appendFloat(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e16 {
		dst = strconv.AppendFloat(dst, f, 'f', -1, 64)
		return append(dst, ".0"...)
	}
	return strconv.AppendFloat(dst, f, 'g', -1, 64)
}

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s as a quoted JSON string.
func AppendJSONString(dst, s []byte) []byte {
	// Copy while scanning, into room for the string and its quotes: in
	// the common case, nothing to escape, that is the whole job.
	n := len(dst)
	dst = slices.Grow(dst, len(s)+2+plainSlack)[:n+1]
	dst[n] = '"'
	i := copyPlain(dst[n+1:n+1+len(s)+plainSlack], s)
	dst = dst[:n+1+i]
	if i == len(s) {
		return append(dst, '"')
	}
	return appendJSONEscaped(dst, s, i)
}

// appendJSONEscaped finishes the JSON string that dst has begun with the
// quote and s[:i]: s[i] on needs care, or copyPlain stopped short there.
func appendJSONEscaped(dst, s []byte, i int) []byte {
	for i < len(s) {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		case c < utf8.RuneSelf:
			dst = append(dst, c)
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				dst = append(dst, "\ufffd"...)
			} else {
				dst = append(dst, s[i:i+size]...)
				i += size - 1
			}
		}
		i++
		n, rest := len(dst), len(s)-i
		dst = slices.Grow(dst, rest+1+plainSlack)
		k := copyPlain(dst[n:n+rest+plainSlack], s[i:])
		dst = dst[:n+k]
		i += k
	}
	return append(dst, '"')
}

// Equal reports whether two values have identical encodings.
func (v Value) Equal(o Value) bool { return bytes.Equal(v, o) }
