//go:build race

package transform_test

// raceEnabled: the race detector makes sync.Pool drop items, so allocation
// counts are not meaningful under it.
const raceEnabled = true
