//go:build amd64 && !purego

package event

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// pairsModel is plainPairs' contract written plainly: pairs of a fixstr
// key needing no care and a fixstr or str8 value needing none but quotes
// and backslashes (escaped), each written when dst has room for it with
// every value byte escaped and 22 bytes more (the comma, quotes, colon
// and a vector) and when a vector read from its value's end stays inside
// src's capacity.
func pairsModel(room int, src []byte, n int) (out []byte, read, pairs int) {
	for pairs < n {
		b := src[read:]
		if len(b) < 1 || b[0] < 0xa0 || b[0] > 0xbf {
			break
		}
		kn := int(b[0] & 0x1f)
		if len(b) < 2+kn {
			break
		}
		key, v := b[1:1+kn], b[1+kn:]
		var val []byte
		hdr := 1
		switch c := v[0]; {
		case c >= 0xa0 && c <= 0xbf && len(v) >= 1+int(c&0x1f):
			val = v[1 : 1+int(c&0x1f)]
		case c == 0xd9 && len(v) >= 2 && len(v) >= 2+int(v[1]):
			val, hdr = v[2:2+int(v[1])], 2
		default:
			return out, read, pairs
		}
		end := read + 1 + kn + hdr + len(val)
		if end+16 > cap(src) || len(out)+22+kn+2*len(val) > room ||
			plainPrefixLoop(key) != kn || !plainButQuotes(val) {
			break
		}
		if pairs > 0 {
			out = append(out, ',')
		}
		out = append(out, '"')
		out = append(out, key...)
		out = append(out, `":"`...)
		for _, c := range val {
			if c == '"' || c == '\\' {
				out = append(out, '\\')
			}
			out = append(out, c)
		}
		out = append(out, '"')
		read = end
		pairs++
	}
	return out, read, pairs
}

// plainButQuotes reports whether s needs no care in a JSON string but for
// quotes and backslashes.
func plainButQuotes(s []byte) bool {
	for len(s) > 0 {
		i := plainPrefixLoop(s)
		if i == len(s) {
			return true
		}
		if s[i] != '"' && s[i] != '\\' {
			return false
		}
		s = s[i+1:]
	}
	return true
}

// checkPairs runs plainPairs on src with room bytes of dst and holds it
// to the model.
func checkPairs(t *testing.T, room int, src []byte, n int) int {
	t.Helper()
	dst := make([]byte, room)
	w, r, k := plainPairs(dst, src, n)
	want, wr, wk := pairsModel(room, src, n)
	if k != wk || r != wr || !bytes.Equal(dst[:w], want) {
		t.Fatalf("plainPairs(room %d, %x, %d) = %q, read %d, %d pairs; want %q, read %d, %d pairs",
			room, src, n, dst[:w], r, k, want, wr, wk)
	}
	return k
}

// randomPairs encodes m pairs with strings at the lengths where the
// vector steps and msgpack's headers change, some needing care, some of
// other types.
func randomPairs(rng *rand.Rand, m int) []byte {
	lengths := []int{0, 1, 5, 15, 16, 17, 31, 32, 33, 47, 64, 100, 200, 255, 256}
	str := func(maxLen int) []byte {
		n := lengths[rng.IntN(len(lengths))]
		n = min(n, maxLen)
		s := []byte(strings.Repeat("x", n))
		for i := range s {
			s[i] = plainBytes[rng.IntN(len(plainBytes))]
		}
		if n > 0 && rng.IntN(6) == 0 {
			s[rng.IntN(n)] = careBytes[rng.IntN(len(careBytes))]
		}
		for n > 0 && rng.IntN(3) == 0 {
			s[rng.IntN(n)] = `"\`[rng.IntN(2)]
		}
		return s
	}
	var b []byte
	for range m {
		if rng.IntN(12) == 0 {
			b = msgp.AppendInt64(msgp.AppendStringFromBytes(b, str(31)), rng.Int64())
			continue
		}
		b = msgp.AppendStringFromBytes(b, str(40)) // 32 and more: str8, not a fixstr
		b = msgp.AppendStringFromBytes(b, str(300))
	}
	return b
}

func TestPlainPairsModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	done := 0
	for range 20000 {
		src := randomPairs(rng, 1+rng.IntN(6))
		// Capacity past the length, as a record inside a message has,
		// or none.
		if rng.IntN(2) == 0 {
			src = append(src, make([]byte, rng.IntN(40))...)[:len(src)]
		}
		room := []int{0, 30, 100, 300, 4096}[rng.IntN(5)]
		done += checkPairs(t, room, src, 1+rng.IntN(8))
	}
	if done < 2000 {
		t.Fatalf("only %d pairs rendered: the cases miss the fast path", done)
	}
}

// TestPlainPairsPageEdge ends src where a page that cannot be read
// begins: pairs whose last vector would cross are left to the caller,
// and nothing faults.
func TestPlainPairsPageEdge(t *testing.T) {
	usable := guardedPage(t)
	page := len(usable)
	for vn := 0; vn <= 40; vn++ {
		for tail := 0; tail <= 20; tail++ {
			for _, quote := range []int{-1, 0, vn / 2, vn - 1} {
				val := []byte(strings.Repeat("v", vn))
				if quote >= 0 && vn > 0 {
					val[quote] = '"' // the copy restarts after it
				}
				pair := msgp.AppendStringFromBytes(msgp.AppendString(nil, "key"), val)
				src := usable[page-len(pair)-tail:]
				copy(src, pair)
				for i := len(pair); i < len(src); i++ {
					src[i] = 0xc0 // nil: ends the run
				}
				checkPairs(t, 4096, src, 2)
			}
		}
	}
}

func FuzzPlainPairs(f *testing.F) {
	f.Add(dockerRecord(f)[1:], 300)
	f.Add(randomPairs(rand.New(rand.NewPCG(1, 1)), 5), 4096)
	f.Fuzz(func(t *testing.T, src []byte, room int) {
		room = max(0, min(room, 1<<16))
		checkPairs(t, room, src, 8)
	})
}
