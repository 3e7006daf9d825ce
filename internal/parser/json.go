package parser

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

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
// become floats. Trailing data other than white space is an error.
func JSONToMsgpack(dst, text []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	out, err := transcode(dst, dec, 0)
	if err != nil {
		return dst, fmt.Errorf("%w: JSON: %v", ErrNoMatch, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return dst, fmt.Errorf("%w: JSON: data after the value", ErrNoMatch)
	}
	return out, nil
}

func transcode(dst []byte, dec *json.Decoder, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return dst, errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return dst, err
	}
	switch x := tok.(type) {
	case json.Delim:
		var body []byte
		n := uint32(0)
		switch x {
		case '{':
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return dst, err
				}
				key, ok := kt.(string)
				if !ok {
					return dst, errors.New("object key is not a string")
				}
				body = msgp.AppendString(body, key)
				if body, err = transcode(body, dec, depth+1); err != nil {
					return dst, err
				}
				n++
			}
			if _, err := dec.Token(); err != nil { // '}'
				return dst, err
			}
			dst = msgp.AppendMapHeader(dst, n)
		case '[':
			for dec.More() {
				if body, err = transcode(body, dec, depth+1); err != nil {
					return dst, err
				}
				n++
			}
			if _, err := dec.Token(); err != nil { // ']'
				return dst, err
			}
			dst = msgp.AppendArrayHeader(dst, n)
		default:
			return dst, fmt.Errorf("unexpected %q", x)
		}
		return append(dst, body...), nil
	case string:
		return msgp.AppendString(dst, x), nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return msgp.AppendInt64(dst, i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return dst, err
		}
		return msgp.AppendFloat64(dst, f), nil
	case bool:
		return msgp.AppendBool(dst, x), nil
	case nil:
		return msgp.AppendNil(dst), nil
	}
	return dst, fmt.Errorf("unexpected token %v", tok)
}
