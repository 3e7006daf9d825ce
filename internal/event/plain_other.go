//go:build !amd64 || purego

package event

func copyPlain(dst, s []byte) int {
	i := plainPrefixWords(s)
	return copy(dst[:i], s)
}

// hasPlainPairs: plainPairs renders nothing here, and appendJSONMap does
// not make room for it or call it.
const hasPlainPairs = false

// plainPairs does nothing here: every pair takes appendJSONMap's own path.
func plainPairs(dst, src []byte, n int) (written, read, pairs int) { return 0, 0, 0 }
