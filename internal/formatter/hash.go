package formatter

import (
	"strconv"
	"strings"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
)

// Hash prints the record as Ruby's Hash#inspect does ({"k"=>"v"}), which
// is what Fluentd's hash formatter writes.
type Hash struct {
	AddNewline bool `conf:"add_newline" desc:"End each formatted event with a newline."`
	Newline
}

func init() {
	register("hash", "record as a Ruby hash literal", func() any { return &Hash{AddNewline: true} })
}

// Format implements plugin.Formatter.
func (f *Hash) Format(dst []byte, _ string, _ event.Time, r event.Record) ([]byte, error) {
	dst, _, err := appendRuby(dst, r, 0)
	if f.AddNewline {
		dst = f.Newline.append(dst)
	}
	return dst, err
}

func appendRuby(dst, b []byte, depth int) ([]byte, []byte, error) {
	if depth > 64 {
		return dst, b, msgp.ErrRecursion
	}
	var err error
	switch msgp.NextType(b) {
	case msgp.MapType:
		var n uint32
		if n, b, err = msgp.ReadMapHeaderBytes(b); err != nil {
			return dst, b, err
		}
		dst = append(dst, '{')
		for i := uint32(0); i < n; i++ {
			if i > 0 {
				dst = append(dst, ',', ' ')
			}
			if dst, b, err = appendRuby(dst, b, depth+1); err != nil {
				return dst, b, err
			}
			dst = append(dst, '=', '>')
			if dst, b, err = appendRuby(dst, b, depth+1); err != nil {
				return dst, b, err
			}
		}
		return append(dst, '}'), b, nil
	case msgp.ArrayType:
		var n uint32
		if n, b, err = msgp.ReadArrayHeaderBytes(b); err != nil {
			return dst, b, err
		}
		dst = append(dst, '[')
		for i := uint32(0); i < n; i++ {
			if i > 0 {
				dst = append(dst, ',', ' ')
			}
			if dst, b, err = appendRuby(dst, b, depth+1); err != nil {
				return dst, b, err
			}
		}
		return append(dst, ']'), b, nil
	case msgp.StrType, msgp.BinType:
		rest, err := msgp.Skip(b)
		if err != nil {
			return dst, b, err
		}
		s, _ := event.Value(b[:len(b)-len(rest)]).Bytes()
		return appendRubyString(dst, s), rest, nil
	case msgp.NilType:
		return append(dst, "nil"...), b[1:], nil
	}
	rest, err := msgp.Skip(b)
	if err != nil {
		return dst, b, err
	}
	return event.Value(b[:len(b)-len(rest)]).AppendText(dst), rest, nil
}

// appendRubyString quotes like String#inspect for UTF-8 strings.
func appendRubyString(dst, s []byte) []byte {
	dst = append(dst, '"')
	for i, c := range s {
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\r':
			dst = append(dst, '\\', 'r')
		case 0x1b:
			dst = append(dst, '\\', 'e')
		case '#':
			// Ruby escapes only what would interpolate: #{ #$ #@
			if i+1 < len(s) && (s[i+1] == '{' || s[i+1] == '$' || s[i+1] == '@') {
				dst = append(dst, '\\')
			}
			dst = append(dst, '#')
		default:
			if c < 0x20 || c == 0x7f {
				dst = append(dst, "\\u00"...)
				dst = append(dst, strings.ToUpper(strconv.FormatUint(uint64(c)+0x100, 16)[1:])...)
				continue
			}
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
