//go:build linux

package file

import (
	"os"

	"golang.org/x/sys/unix"
)

// writeBehind keeps an output's files from filling the page cache: each
// chunk's pages are handed to the disk as soon as they are written, and
// once the next chunk arrives, the earlier ones, on disk by then, are
// dropped from the cache. The kernel would otherwise keep gigabytes of
// write-once log data cached and dirty for up to 30 seconds: memory a
// container's limit counts, and, on virtual machines that hand free
// memory back to the host, fresh pages that cost a host fault each.
type writeBehind struct {
	path string // where the previous chunk went
	end  int64  // and where it ended
}

// wrote is told, under the output's lock, that a chunk went to fh (opened
// at path) at [start, end). Errors are ignored: this is advice, and a
// filesystem that cannot take it (tmpfs, a pipe) loses nothing.
func (w *writeBehind) wrote(fh *os.File, path string, start, end int64) {
	_ = unix.SyncFileRange(int(fh.Fd()), start, end-start, unix.SYNC_FILE_RANGE_WRITE)
	if w.path != "" {
		prev := fh
		if w.path != path {
			var err error
			if prev, err = os.Open(w.path); err != nil {
				w.path, w.end = path, end // rotated away: nothing to drop
				return
			}
			defer prev.Close()
		}
		// The earlier chunks' writes started one chunk ago, so this wait is
		// normally over at once; on a disk slower than the output it paces
		// the output, which the buffer in front absorbs. The kernel keeps a
		// partial last page unless it ends the file: in an appended file,
		// the page this chunk went on writing.
		fd := int(prev.Fd())
		_ = unix.SyncFileRange(fd, 0, w.end, unix.SYNC_FILE_RANGE_WAIT_BEFORE|unix.SYNC_FILE_RANGE_WRITE|unix.SYNC_FILE_RANGE_WAIT_AFTER)
		_ = unix.Fadvise(fd, 0, w.end, unix.FADV_DONTNEED)
	}
	w.path, w.end = path, end
}
