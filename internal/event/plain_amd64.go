//go:build amd64 && !purego

package event

import "golang.org/x/sys/cpu"

// hasAVX2 lets copyPlain take thirty-two bytes a step; without it, it
// takes sixteen with SSE2, which every amd64 processor has.
var hasAVX2 = cpu.X86.HasAVX2

// copyPlain copies the leading bytes of s that need no care in a JSON
// string to dst, which must have room for len(s)+plainSlack bytes, and
// returns how many. It may stop short of the first byte needing care (for
// a short string at the end of a memory page); the caller goes on from
// there. Bytes of dst past the count are overwritten with scratch.
//
//go:noescape
func copyPlain(dst, s []byte) int
