//go:build !linux

package file

import "os"

// writeBehind is Linux-only advice (sync_file_range and fadvise); other
// systems keep their own page cache policy.
type writeBehind struct{}

func (w *writeBehind) wrote(fh *os.File, path string, start, end int64) {}
