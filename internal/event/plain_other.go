//go:build !amd64 || purego

package event

func copyPlain(dst, s []byte) int {
	i := plainPrefixWords(s)
	return copy(dst[:i], s)
}
