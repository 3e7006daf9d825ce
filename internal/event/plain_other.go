//go:build !amd64 || purego

package event

func plainPrefix(s []byte) int { return plainPrefixWords(s) }
