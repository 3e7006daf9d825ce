//go:build amd64 && !purego

package event

import "testing"

// TestPlainPrefixWithoutAVX2 runs the checks again on the SSE2 path, which
// processors without AVX2 take for strings of every length.
func TestPlainPrefixWithoutAVX2(t *testing.T) {
	defer func(had bool) { hasAVX2 = had }(hasAVX2)
	hasAVX2 = false
	TestPlainPrefix(t)
	TestPlainPrefixPageEdges(t)
	TestPlainPrefixRandom(t)
}
