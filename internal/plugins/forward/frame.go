package forward

import (
	"encoding/binary"
	"errors"

	"github.com/tinylib/msgp/msgp"
)

// maxNesting bounds how deep containers in one message may nest. Log
// records nest a few levels; the bound keeps a hostile message from
// growing the scanner's stack (and every decoder after it).
const maxNesting = 512

// errNesting reports a message nested deeper than maxNesting.
var errNesting = errors.New("msgpack nesting deeper than 512 levels")

// frameScanner finds where one msgpack object ends in a buffer that grows
// between calls, reading each byte once: a message that arrives slowly
// costs time linear in its size, not in its size times the number of
// reads. It checks only framing (headers and lengths); Decode validates
// the message once it is whole. The zero value is ready for a message.
type frameScanner struct {
	off  int      // bytes of the object read so far
	open []uint64 // objects still to read in each open container, outermost first
}

// reset prepares the scanner for the next message.
func (s *frameScanner) reset() { s.off, s.open = 0, s.open[:0] }

// scan reads on in b, which holds the object from its first byte (the
// same bytes as the last call, and perhaps more). It returns the object's
// length once b holds all of it, and 0 while it does not.
func (s *frameScanner) scan(b []byte) (int, error) {
	for {
		head, children, err := objectHead(b[s.off:])
		if errors.Is(err, msgp.ErrShortBytes) {
			return 0, nil
		}
		if err != nil {
			return 0, err
		}
		if children > 0 {
			if len(s.open) >= maxNesting {
				return 0, errNesting
			}
			s.off += head
			s.open = append(s.open, children)
			continue
		}
		if uint64(len(b)-s.off) < uint64(head) {
			return 0, nil
		}
		s.off += head
		// One object is complete: close every container it completes.
		for {
			if len(s.open) == 0 {
				return s.off, nil
			}
			last := len(s.open) - 1
			if s.open[last]--; s.open[last] > 0 {
				break
			}
			s.open = s.open[:last]
		}
	}
}

// objectHead reads the header of the msgpack object at the start of b:
// for a container, the header's length and how many objects follow it
// (maps count keys and values); for anything else, the whole object's
// length and 0. It returns msgp.ErrShortBytes when b ends inside the
// header.
func objectHead(b []byte) (size int, children uint64, err error) {
	if len(b) == 0 {
		return 0, 0, msgp.ErrShortBytes
	}
	c := b[0]
	need := func(n int) error {
		if len(b) < n {
			return msgp.ErrShortBytes
		}
		return nil
	}
	switch {
	case c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		return 1, 0, nil
	case c >= 0xa0 && c <= 0xbf: // fixstr
		return 1 + int(c&0x1f), 0, nil
	case c >= 0x80 && c <= 0x8f: // fixmap
		return 1, 2 * uint64(c&0x0f), nil
	case c >= 0x90 && c <= 0x9f: // fixarray
		return 1, uint64(c & 0x0f), nil
	}
	switch c {
	case 0xcc, 0xd0: // uint8, int8
		return 2, 0, nil
	case 0xcd, 0xd1, 0xd4: // uint16, int16, fixext1
		return 3, 0, nil
	case 0xd5: // fixext2
		return 4, 0, nil
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return 5, 0, nil
	case 0xd6: // fixext4
		return 6, 0, nil
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		return 9, 0, nil
	case 0xd7: // fixext8 (EventTime)
		return 10, 0, nil
	case 0xd8: // fixext16
		return 18, 0, nil
	case 0xc4, 0xd9: // bin8, str8
		if err := need(2); err != nil {
			return 0, 0, err
		}
		return 2 + int(b[1]), 0, nil
	case 0xc5, 0xda: // bin16, str16
		if err := need(3); err != nil {
			return 0, 0, err
		}
		return 3 + int(binary.BigEndian.Uint16(b[1:])), 0, nil
	case 0xc6, 0xdb: // bin32, str32
		if err := need(5); err != nil {
			return 0, 0, err
		}
		return 5 + int(binary.BigEndian.Uint32(b[1:])), 0, nil
	case 0xc7: // ext8
		if err := need(2); err != nil {
			return 0, 0, err
		}
		return 3 + int(b[1]), 0, nil
	case 0xc8: // ext16
		if err := need(3); err != nil {
			return 0, 0, err
		}
		return 4 + int(binary.BigEndian.Uint16(b[1:])), 0, nil
	case 0xc9: // ext32
		if err := need(5); err != nil {
			return 0, 0, err
		}
		return 6 + int(binary.BigEndian.Uint32(b[1:])), 0, nil
	case 0xdc: // array16
		if err := need(3); err != nil {
			return 0, 0, err
		}
		return 3, uint64(binary.BigEndian.Uint16(b[1:])), nil
	case 0xdd: // array32
		if err := need(5); err != nil {
			return 0, 0, err
		}
		return 5, uint64(binary.BigEndian.Uint32(b[1:])), nil
	case 0xde: // map16
		if err := need(3); err != nil {
			return 0, 0, err
		}
		return 3, 2 * uint64(binary.BigEndian.Uint16(b[1:])), nil
	case 0xdf: // map32
		if err := need(5); err != nil {
			return 0, 0, err
		}
		return 5, 2 * uint64(binary.BigEndian.Uint32(b[1:])), nil
	}
	return 0, 0, msgp.InvalidPrefixError(c)
}
