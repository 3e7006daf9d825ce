package event

import (
	"encoding/binary"
	"math/bits"
	"testing"
)

// BenchmarkAppendJSONString renders a Docker log line with two quotes to
// escape, the bulk of a record's JSON.
func BenchmarkAppendJSONString(b *testing.B) {
	s := []byte(`6d33ade920a96179205e01c3a17d6e7f3eb98f0d5bb2b494383250220e7f443c 122.116.50.70 - Corwin8644 264 [2018-10-31T21:31:59Z] "POST /activate" 200 19886`)
	dst := make([]byte, 0, 512)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		dst = AppendJSONString(dst[:0], s)
	}
}

// TestNeedsCareLowestFlag checks the word trick exhaustively for one and
// two bytes of every value at every position, among plain bytes: the
// lowest flag falls on the first byte that needs care, and no flag is
// raised when none does.
func TestNeedsCareLowestFlag(t *testing.T) {
	care := func(c byte) bool { return c < 0x20 || c >= 0x80 || c == '"' || c == '\\' }
	check := func(word [8]byte) {
		w := binary.LittleEndian.Uint64(word[:])
		want := -1
		for i, c := range word {
			if care(c) {
				want = i
				break
			}
		}
		got := -1
		if bad := needsCare(w); bad != 0 {
			got = bits.TrailingZeros64(bad) / 8
		}
		if got != want {
			t.Fatalf("%q: first byte needing care at %d, needsCare says %d", word[:], want, got)
		}
	}
	for a := 0; a < 256; a++ {
		for i := 0; i < 8; i++ {
			word := [8]byte{'a', 'a', 'a', 'a', 'a', 'a', 'a', 'a'}
			word[i] = byte(a)
			check(word)
			for b := 0; b < 256; b++ {
				for j := i + 1; j < 8; j++ {
					two := word
					two[j] = byte(b)
					check(two)
				}
			}
		}
	}
}
