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

// hasPlainPairs: plainPairs renders pairs here.
const hasPlainPairs = true

// plainPairs renders a run of up to n map pairs from the front of src
// into dst (free space, not appended to), as "key":"value" joined by
// commas, while each key is a fixstr and each value a fixstr or str8, the
// key needs no care and the value none but quotes and backslashes, which
// it escapes: the pairs of nearly every log record. It returns the bytes
// written and read and the pairs done, and stops before any other pair,
// before one that would not fit (with its value's every byte escaped and
// sixteen bytes to spare), and before one whose last vector would read
// past cap(src): it reads whole vectors, up to fifteen bytes past a
// string, and src's capacity is memory it may read (a record's usually
// goes on to the next entry). Bytes of dst past written are scratch.
//
//go:noescape
func plainPairs(dst, src []byte, n int) (written, read, pairs int)
