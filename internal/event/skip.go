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
	// An index rather than a slice cut after every object: it is most of
	// the cost of validating a record. i may pass len(b) on a string that
	// overruns; the checks below turn that into msgp's short-bytes error.
	i := 1
	for ; n > 0; n-- {
		// Strings and small integers inline: a call per key and value
		// would cost as much as the reading.
		if i < len(b) {
			if c := b[i]; c >= 0xa0 && c <= 0xbf {
				i += 1 + int(c&0x1f)
				continue
			} else if c <= 0x7f {
				i++
				continue
			} else if c == 0xd9 && i+1 < len(b) {
				i += 2 + int(b[i+1])
				continue
			}
		}
		if i > len(b) {
			return b, msgp.ErrShortBytes
		}
		rest, err := skip(b[i:], depth+1)
		if err != nil {
			return b, err
		}
		i = len(b) - len(rest)
	}
	if i > len(b) {
		return b, msgp.ErrShortBytes
	}
	return b[i:], nil
}
