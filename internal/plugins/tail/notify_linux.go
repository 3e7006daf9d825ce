package tail

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

// notifier wakes followers when their files change (enable_stat_watcher:
// inotify), so that a line is read as soon as it is written rather than
// at the next poll. Polling stays as the safety net, less often.
type notifier struct {
	f    *os.File // the inotify descriptor, read through Go's poller
	mu   sync.Mutex
	byWD map[int32][]chan struct{} // guarded by mu
	done chan struct{}
}

// The changes that wake a follower: to its file, data written or the file
// truncated, its link count changed (deleted), renamed or gone; to its
// directory, a file created or moved in (the new file of a rotation).
const (
	fileEvents = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_MOVE_SELF | unix.IN_DELETE_SELF
	dirEvents  = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_ONLYDIR
)

func newNotifier() (*notifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, err
	}
	n := &notifier{f: os.NewFile(uintptr(fd), "inotify"), byWD: map[int32][]chan struct{}{}, done: make(chan struct{})}
	go n.read()
	return n, nil
}

// watch wakes wake on changes to the file at path (what it names now) and
// to the directory it is in; the returned function stops both.
func (n *notifier) watch(path string, wake chan struct{}) (stop func(), err error) {
	stopFile, err := n.add(path, fileEvents, wake)
	if err != nil {
		return nil, err
	}
	stopDir, err := n.add(filepath.Dir(path), dirEvents, wake)
	if err != nil {
		stopFile()
		return nil, err
	}
	return func() { stopFile(); stopDir() }, nil
}

func (n *notifier) add(path string, mask uint32, wake chan struct{}) (stop func(), err error) {
	conn, err := n.f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var wd int
	var addErr error
	if err := conn.Control(func(fd uintptr) { wd, addErr = unix.InotifyAddWatch(int(fd), path, mask) }); err != nil {
		return nil, err
	}
	if addErr != nil {
		return nil, addErr // ENOSPC past fs.inotify.max_user_watches: the caller polls
	}
	n.mu.Lock()
	n.byWD[int32(wd)] = append(n.byWD[int32(wd)], wake)
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		list := n.byWD[int32(wd)]
		for i, c := range list {
			if c == wake {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) > 0 {
			n.byWD[int32(wd)] = list
			return
		}
		delete(n.byWD, int32(wd))
		_ = conn.Control(func(fd uintptr) { _, _ = unix.InotifyRmWatch(int(fd), uint32(wd)) })
	}, nil
}

func (n *notifier) read() {
	defer close(n.done)
	buf := make([]byte, 64<<10)
	for {
		m, err := n.f.Read(buf)
		if err != nil {
			if errors.Is(err, os.ErrClosed) {
				return
			}
			continue // EINTR and the like; a closed descriptor ends the loop
		}
		for off := 0; off+unix.SizeofInotifyEvent <= m; {
			wd := int32(binary.NativeEndian.Uint32(buf[off:]))
			nameLen := int(binary.NativeEndian.Uint32(buf[off+12:]))
			off += unix.SizeofInotifyEvent + nameLen
			n.mu.Lock()
			for _, c := range n.byWD[wd] {
				select {
				case c <- struct{}{}:
				default: // a wake-up is already pending
				}
			}
			n.mu.Unlock()
		}
	}
}

func (n *notifier) close() {
	_ = n.f.Close()
	<-n.done
}
