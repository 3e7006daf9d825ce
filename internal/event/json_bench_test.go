package event

import "testing"

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
