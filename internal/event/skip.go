package event

import "github.com/tinylib/msgp/msgp"

// skipFastDepth is how deep Skip follows nesting itself before it leaves
// the rest to msgp.Skip, whose own limit then applies: hostile nesting
// cannot grow the stack through this function.
const skipFastDepth = 16

// Skip returns b after its first msgpack object, as msgp.Skip does. It
// reads the shapes that make up nearly every log record itself (short
// strings, small integers, nil and booleans, small maps and arrays) and
// hands every other object to msgp.Skip.
func Skip(b []byte) ([]byte, error) { return skip(b, 0) }

func skip(b []byte, depth int) ([]byte, error) {
	if len(b) == 0 || depth > skipFastDepth {
		return msgp.Skip(b)
	}
	c := b[0]
	n := 0 // bytes of a string, or objects of a container
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return b[1:], nil
	case c >= 0xa0 && c <= 0xbf: // fixstr
		n = 1 + int(c&0x1f)
		if len(b) < n {
			return b, msgp.ErrShortBytes
		}
		return b[n:], nil
	case c == 0xd9 && len(b) >= 2: // str8
		n = 2 + int(b[1])
		if len(b) < n {
			return b, msgp.ErrShortBytes
		}
		return b[n:], nil
	case c >= 0x80 && c <= 0x8f: // fixmap
		n = 2 * int(c&0x0f)
	case c >= 0x90 && c <= 0x9f: // fixarray
		n = int(c & 0x0f)
	default:
		return msgp.Skip(b)
	}
	rest := b[1:]
	for ; n > 0; n-- {
		// Strings and small integers inline: a call per key and value
		// would cost as much as the reading.
		if len(rest) > 0 {
			if c := rest[0]; c >= 0xa0 && c <= 0xbf && len(rest) > int(c&0x1f) {
				rest = rest[1+int(c&0x1f):]
				continue
			} else if c <= 0x7f {
				rest = rest[1:]
				continue
			} else if c == 0xd9 && len(rest) >= 2 && len(rest) >= 2+int(rest[1]) {
				rest = rest[2+int(rest[1]):]
				continue
			}
		}
		var err error
		if rest, err = skip(rest, depth+1); err != nil {
			return b, err
		}
	}
	return rest, nil
}
