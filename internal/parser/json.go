package parser

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// JSON parses an object, or an array of objects (one record each).
type JSON struct {
	JSONParser string `conf:"json_parser" desc:"Accepted for Fluentd compatibility (oj, yajl, json); one JSON decoder serves them all." ignored:"one JSON decoder serves them all"` // oj, yajl, json: accepted; one decoder serves all
	Stream     bool   `conf:"stream_buffer_size" desc:"Accepted for Fluentd compatibility; Sluice reads each text whole." ignored:"each text is read whole"`
	Common

	scratch []byte
	buf     []byte
}

// Msgpack parses msgpack maps, or an array of maps.
type Msgpack struct {
	Common
	buf []byte
}

func init() {
	register("json", "a JSON object, or an array of objects", func() any { return &JSON{Common: defaultCommon("time")} })
	register("msgpack", "a msgpack map, or maps", func() any { return &Msgpack{Common: defaultCommon("time")} })
}

// Configure implements plugin.Configurer.
func (p *JSON) Configure(*plugin.Context) error { return p.Common.configure() }

// Configure implements plugin.Configurer.
func (p *Msgpack) Configure(*plugin.Context) error { return p.Common.configure() }

// Parse implements plugin.Parser.
func (p *JSON) Parse(text []byte, emit func(event.Time, []byte) error) error {
	var err error
	p.scratch, err = JSONToMsgpack(p.scratch[:0], text)
	if err != nil {
		return err
	}
	return emitStructured(&p.Common, p.scratch, &p.buf, emit)
}

// Parse implements plugin.Parser.
func (p *Msgpack) Parse(text []byte, emit func(event.Time, []byte) error) error {
	for rest := text; len(rest) > 0; {
		next, err := msgp.Skip(rest)
		if err != nil {
			return fmt.Errorf("msgpack: %w", err)
		}
		if err := emitStructured(&p.Common, rest[:len(rest)-len(next)], &p.buf, emit); err != nil {
			return err
		}
		rest = next
	}
	return nil
}

// emitStructured emits a map, or each map of an array.
func emitStructured(c *Common, v []byte, buf *[]byte, emit func(event.Time, []byte) error) error {
	one := func(m []byte) error {
		if msgp.NextType(m) != msgp.MapType {
			return fmt.Errorf("%w: a record must be an object, got %s", ErrNoMatch, msgp.NextType(m))
		}
		rec, t, err := c.structured((*buf)[:0], event.Record(m))
		*buf = rec
		if err != nil {
			return err
		}
		return emit(c.eventTime(t), rec)
	}
	if msgp.NextType(v) != msgp.ArrayType {
		return one(v)
	}
	n, rest, err := msgp.ReadArrayHeaderBytes(v)
	if err != nil {
		return err
	}
	for ; n > 0; n-- {
		next, err := msgp.Skip(rest)
		if err != nil {
			return err
		}
		if err := one(rest[:len(rest)-len(next)]); err != nil {
			return err
		}
		rest = next
	}
	return nil
}

// maxJSONDepth bounds nesting in untrusted JSON.
const maxJSONDepth = 100

// JSONToMsgpack transcodes one JSON value to msgpack, keeping the order of
// object keys (Fluentd keeps it too). Integers stay integers; other numbers
// become floats. Trailing data other than white space is an error. Strings
// decode as encoding/json decodes them: invalid UTF-8 and lone surrogates
// become U+FFFD. It scans the bytes once, without encoding/json's tokens
// (an allocation per token); the tests hold it to encoding/json.
func JSONToMsgpack(dst, text []byte) ([]byte, error) {
	s := jsonScanner{in: text}
	s.space()
	out, err := s.value(dst, 0)
	if err == nil {
		if s.space(); s.pos < len(s.in) {
			err = errors.New("data after the value")
		}
	}
	if err != nil {
		return dst, fmt.Errorf("%w: JSON: %v", ErrNoMatch, err)
	}
	return out, nil
}

type jsonScanner struct {
	in  []byte
	pos int
}

var errJSONEnd = errors.New("unexpected end of JSON input")

func (s *jsonScanner) space() {
	for s.pos < len(s.in) {
		switch s.in[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

func (s *jsonScanner) syntax(what string) error {
	if s.pos >= len(s.in) {
		return errJSONEnd
	}
	return fmt.Errorf("invalid character %q %s at offset %d", s.in[s.pos], what, s.pos)
}

func (s *jsonScanner) value(dst []byte, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return dst, errors.New("nested too deeply")
	}
	if s.pos >= len(s.in) {
		return dst, errJSONEnd
	}
	switch c := s.in[s.pos]; {
	case c == '{':
		return s.compound(dst, depth, true)
	case c == '[':
		return s.compound(dst, depth, false)
	case c == '"':
		return s.str(dst)
	case c == '-' || (c >= '0' && c <= '9'):
		return s.number(dst)
	case c == 't':
		return s.literal(dst, "true", msgp.AppendBool(dst, true))
	case c == 'f':
		return s.literal(dst, "false", msgp.AppendBool(dst, false))
	case c == 'n':
		return s.literal(dst, "null", msgp.AppendNil(dst))
	}
	return dst, s.syntax("looking for beginning of value")
}

func (s *jsonScanner) literal(dst []byte, word string, out []byte) ([]byte, error) {
	if !bytes.HasPrefix(s.in[s.pos:], []byte(word)) {
		for i := 0; i < len(word) && s.pos < len(s.in) && s.in[s.pos] == word[i]; i++ {
			s.pos++
		}
		return dst, s.syntax("in literal " + word)
	}
	s.pos += len(word)
	return out, nil
}

// container writes a map or array header for n elements before the body
// that starts at dst[start+1:]: one byte was kept for the header, enough
// for up to 15 elements; more moves the body up.
func container(dst []byte, start int, n uint32, isMap bool) []byte {
	var hdr [5]byte
	var h []byte
	if isMap {
		h = msgp.AppendMapHeader(hdr[:0], n)
	} else {
		h = msgp.AppendArrayHeader(hdr[:0], n)
	}
	if len(h) == 1 {
		dst[start] = h[0]
		return dst
	}
	body := len(dst) - start - 1
	dst = append(dst, h[1:]...)
	copy(dst[start+len(h):], dst[start+1:start+1+body])
	copy(dst[start:], h)
	return dst
}

// compound appends the object (isMap) or array at s.pos: elements
// separated by commas up to the closing bracket, an object's element being
// key:value.
func (s *jsonScanner) compound(dst []byte, depth int, isMap bool) ([]byte, error) {
	closer, after := byte(']'), "after array element"
	if isMap {
		closer, after = '}', "after object key:value pair"
	}
	s.pos++ // '{' or '['
	start := len(dst)
	dst = append(dst, 0)
	n := uint32(0)
	s.space()
	if s.pos < len(s.in) && s.in[s.pos] == closer {
		s.pos++
		return container(dst, start, 0, isMap), nil
	}
	for {
		var err error
		if isMap {
			if dst, err = s.key(dst); err != nil {
				return dst, err
			}
		}
		if dst, err = s.value(dst, depth+1); err != nil {
			return dst, err
		}
		n++
		s.space()
		if s.pos >= len(s.in) {
			return dst, errJSONEnd
		}
		switch s.in[s.pos] {
		case ',':
			s.pos++
			s.space()
		case closer:
			s.pos++
			return container(dst, start, n, isMap), nil
		default:
			return dst, s.syntax(after)
		}
	}
}

// key appends an object key and steps over the colon after it.
func (s *jsonScanner) key(dst []byte) ([]byte, error) {
	if s.pos >= len(s.in) || s.in[s.pos] != '"' {
		return dst, s.syntax("looking for beginning of object key string")
	}
	dst, err := s.str(dst)
	if err != nil {
		return dst, err
	}
	s.space()
	if s.pos >= len(s.in) || s.in[s.pos] != ':' {
		return dst, s.syntax("after object key")
	}
	s.pos++
	s.space()
	return dst, nil
}

// str appends the string at s.pos (its opening quote) as msgpack.
func (s *jsonScanner) str(dst []byte) ([]byte, error) {
	s.pos++ // '"'
	begin := s.pos
	// The common case: no escapes, valid UTF-8, copied as it is.
	for s.pos < len(s.in) {
		c := s.in[s.pos]
		if c == '"' {
			raw := s.in[begin:s.pos]
			if utf8.Valid(raw) {
				s.pos++
				return msgp.AppendStringFromBytes(dst, raw), nil
			}
			break
		}
		if c == '\\' || c < 0x20 {
			break
		}
		s.pos++
	}
	s.pos = begin
	var text []byte
	for {
		if s.pos >= len(s.in) {
			return dst, errJSONEnd
		}
		c := s.in[s.pos]
		switch {
		case c == '"':
			s.pos++
			return msgp.AppendStringFromBytes(dst, text), nil
		case c < 0x20:
			return dst, s.syntax("in string literal")
		case c == '\\':
			s.pos++
			if s.pos >= len(s.in) {
				return dst, errJSONEnd
			}
			e := s.in[s.pos]
			s.pos++
			switch e {
			case '"', '\\', '/':
				text = append(text, e)
			case 'b':
				text = append(text, '\b')
			case 'f':
				text = append(text, '\f')
			case 'n':
				text = append(text, '\n')
			case 'r':
				text = append(text, '\r')
			case 't':
				text = append(text, '\t')
			case 'u':
				r, ok := s.hex4()
				if !ok {
					return dst, s.syntax("in \\u hexadecimal character escape")
				}
				if utf16.IsSurrogate(r) {
					// A pair makes one rune; anything else is U+FFFD, and
					// the next escape is read on its own.
					if s.pos+1 < len(s.in) && s.in[s.pos] == '\\' && s.in[s.pos+1] == 'u' {
						save := s.pos
						s.pos += 2
						if r2, ok := s.hex4(); ok {
							if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
								text = utf8.AppendRune(text, dec)
								continue
							}
						}
						s.pos = save
					}
					r = utf8.RuneError
				}
				text = utf8.AppendRune(text, r)
			default:
				s.pos--
				return dst, s.syntax("in string escape code")
			}
		case c < utf8.RuneSelf:
			text = append(text, c)
			s.pos++
		default:
			r, size := utf8.DecodeRune(s.in[s.pos:])
			if r == utf8.RuneError && size == 1 {
				text = utf8.AppendRune(text, utf8.RuneError)
			} else {
				text = append(text, s.in[s.pos:s.pos+size]...)
			}
			s.pos += size
		}
	}
}

// hex4 reads four hex digits at s.pos.
func (s *jsonScanner) hex4() (rune, bool) {
	if s.pos+4 > len(s.in) {
		return 0, false
	}
	var r rune
	for _, c := range s.in[s.pos : s.pos+4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	s.pos += 4
	return r, true
}

// number appends the number at s.pos: an int64 when it is an integer that
// fits, else a float64, as encoding/json's Number gives them.
func (s *jsonScanner) number(dst []byte) ([]byte, error) {
	begin := s.pos
	digits := func() int {
		n := 0
		for s.pos < len(s.in) && s.in[s.pos] >= '0' && s.in[s.pos] <= '9' {
			s.pos++
			n++
		}
		return n
	}
	if s.in[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.in) && s.in[s.pos] == '0':
		s.pos++
	case digits() == 0:
		return dst, s.syntax("in numeric literal")
	}
	integer := true
	if s.pos < len(s.in) && s.in[s.pos] == '.' {
		integer = false
		s.pos++
		if digits() == 0 {
			return dst, s.syntax("after decimal point in numeric literal")
		}
	}
	if s.pos < len(s.in) && (s.in[s.pos] == 'e' || s.in[s.pos] == 'E') {
		integer = false
		s.pos++
		if s.pos < len(s.in) && (s.in[s.pos] == '+' || s.in[s.pos] == '-') {
			s.pos++
		}
		if digits() == 0 {
			return dst, s.syntax("in exponent of numeric literal")
		}
	}
	text := unsafeString(s.in[begin:s.pos])
	if integer {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return msgp.AppendInt64(dst, i), nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return dst, err
	}
	return msgp.AppendFloat64(dst, f), nil
}

func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
