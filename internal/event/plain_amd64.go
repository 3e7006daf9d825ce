//go:build amd64 && !purego

package event

import "golang.org/x/sys/cpu"

// hasAVX2 lets plainPrefix take thirty-two bytes a step; without it, it
// takes sixteen with SSE2, which every amd64 processor has.
var hasAVX2 = cpu.X86.HasAVX2

// plainPrefix returns how many leading bytes of s need no care in a JSON
// string. Strings shorter than sixteen bytes are read as one sixteen-byte
// load that stays inside s's memory page, so it cannot fault.
//
//go:noescape
func plainPrefix(s []byte) int
