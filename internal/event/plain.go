package event

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// A byte needs care in a JSON string when it is a control byte, a quote, a
// backslash, or not ASCII (it must then be checked as UTF-8). Finding and
// copying the run of bytes that need none is most of the cost of rendering
// log text. copyPlain does both: on amd64 (plain_amd64.s) sixteen or
// thirty-two bytes a step, elsewhere with plainPrefixWords, eight at a
// time, and copy.

// plainSlack is the room copyPlain needs past the end of a string: it
// stores whole vectors.
const plainSlack = 32

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// plainPrefixWords returns how many leading bytes of s need no care in a
// JSON string, eight at a time: the common case of log text. Of the flags
// the word tricks below raise, the lowest is always exact, which is all
// that TrailingZeros reads. It serves where the vector version in
// plain_amd64.s does not.
func plainPrefixWords(s []byte) int {
	n := len(s)
	rest := s
	for len(rest) >= 16 {
		// Two words a round: independent work that the CPU overlaps.
		lo := needsCare(binary.LittleEndian.Uint64(rest))
		hi := needsCare(binary.LittleEndian.Uint64(rest[8:]))
		if lo|hi != 0 {
			if lo != 0 {
				return n - len(rest) + bits.TrailingZeros64(lo)/8
			}
			return n - len(rest) + 8 + bits.TrailingZeros64(hi)/8
		}
		rest = rest[16:]
	}
	if len(rest) >= 8 {
		if bad := needsCare(binary.LittleEndian.Uint64(rest)); bad != 0 {
			return n - len(rest) + bits.TrailingZeros64(bad)/8
		}
		rest = rest[8:]
	}
	switch {
	case len(rest) == 0:
		return n
	case n >= 8:
		// The tail, read as the last eight bytes: those before it are
		// plain already, so the lowest flag still falls in the tail.
		if bad := needsCare(binary.LittleEndian.Uint64(s[n-8:])); bad != 0 {
			return n - 8 + bits.TrailingZeros64(bad)/8
		}
		return n
	}
	for i, c := range rest {
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' {
			return n - len(rest) + i
		}
	}
	return n
}

// needsCare flags the high bit of each byte of w that is a control byte,
// quote, backslash or non-ASCII byte, and perhaps of bytes above the first
// such. Each subtraction sets a byte's high bit when it borrows: the byte
// is below 0x20, or is a quote or backslash (xored to zero), or sits above
// one that borrowed. It also sets it for a byte that had it: a non-ASCII
// byte keeps it after one of the two xors at least. Borrows start only at
// bytes that need care, so the lowest flag is always a true one
// (TestNeedsCareLowestFlag checks it exhaustively).
func needsCare(w uint64) uint64 {
	q := w ^ ('"' * lsb)
	bs := w ^ ('\\' * lsb)
	return ((w - 0x20*lsb) | (q - lsb) | (bs - lsb)) & msb
}
