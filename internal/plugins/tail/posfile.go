package tail

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"sync"
)

// posFile is Fluentd's pos_file, in its own format, so that a node moved
// from Fluentd to Sluice (or back) goes on where the other stopped: one
// line per file, "PATH\tPOSITION\tINODE\n", both numbers as 16 hex digits.
// The fixed width lets a position be rewritten in place (one pwrite); a
// file no longer watched gets position ffffffffffffffff, and compaction
// drops such lines and all but the last line of a path.
//
// The kernel keeps what was written when the process is killed, so no
// sync is needed for kill -9; a machine crash can lose the last updates,
// and the files are then read again from the older positions.
//
// With follow_inodes a file is known by its inode, as Fluentd keys the
// file then: two lines may name one path (a rotated file, and the new one
// at its name), and a line is found by the inode.
type posFile struct {
	mu      sync.Mutex
	f       *os.File
	size    int64
	byIno   bool                 // follow_inodes: entries are keyed by inode
	entries map[string]*posEntry // by key(path, inode), guarded by mu
}

// posEntry is one file's line in the pos_file.
type posEntry struct {
	path   string
	offset int64 // of the line in the pos_file
	pos    int64
	inode  uint64
}

// unwatched is the position Fluentd writes for a file it stopped watching.
const unwatched uint64 = 0xffffffffffffffff

// posLineWidth is a line's length beyond its path: tab, 16 hex digits,
// tab, 16 hex digits, newline.
const posLineWidth = 1 + 16 + 1 + 16 + 1

// key is an entry's key: its path, or with follow_inodes its inode.
func (p *posFile) key(path string, inode uint64) string {
	if p.byIno {
		return string(appendHex16(nil, inode))
	}
	return path
}

// openPosFile reads path (written by Fluentd or Sluice), compacts it and
// keeps it open for updates.
func openPosFile(path string, perm os.FileMode, byInode bool) (*posFile, error) {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	p := &posFile{entries: map[string]*posEntry{}, byIno: byInode}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		e, ok := parsePosLine(sc.Text())
		if !ok {
			continue // Fluentd skips a line it cannot read too
		}
		k := p.key(e.path, e.inode)
		if _, seen := p.entries[k]; !seen {
			order = append(order, k)
		}
		if e.pos < 0 { // unwatched
			if !p.byIno {
				delete(p.entries, k)
			}
			continue
		}
		p.entries[k] = e
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, perm)
	if err != nil {
		return nil, err
	}
	p.f = f
	if err := p.rewrite(order); err != nil {
		f.Close()
		return nil, err
	}
	return p, nil
}

func parsePosLine(line string) (*posEntry, bool) {
	// The path may hold tabs; the numbers are the last two fields (the
	// line comes without its newline).
	i := len(line) - (posLineWidth - 2)
	if i < 1 || line[i-1] != '\t' || line[i+16] != '\t' {
		return nil, false
	}
	pos, err1 := strconv.ParseUint(line[i:i+16], 16, 64)
	ino, err2 := strconv.ParseUint(line[i+17:], 16, 64)
	if err1 != nil || err2 != nil {
		return nil, false
	}
	e := &posEntry{path: line[:i-1], pos: int64(pos), inode: ino}
	if pos == unwatched || pos > 1<<62 {
		e.pos = -1
	}
	return e, true
}

func appendPosLine(dst []byte, e *posEntry) []byte {
	dst = append(dst, e.path...)
	dst = append(dst, '\t')
	dst = appendHex16(dst, uint64(e.pos))
	dst = append(dst, '\t')
	dst = appendHex16(dst, e.inode)
	return append(dst, '\n')
}

func appendHex16(dst []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, digits[(v>>uint(shift))&0xf])
	}
	return dst
}

// rewrite writes the live entries, in order, as the whole file. The new
// content is written over the old and the file then cut to its length:
// positions only move forward and the compacted file is never longer, so
// a kill in between leaves lines Fluentd's reader takes (at worst a
// position it has to read again from).
func (p *posFile) rewrite(order []string) error {
	var buf []byte
	for _, k := range order {
		e, ok := p.entries[k]
		if !ok {
			continue
		}
		e.offset = int64(len(buf))
		buf = appendPosLine(buf, e)
	}
	if _, err := p.f.WriteAt(buf, 0); err != nil {
		return err
	}
	if err := p.f.Truncate(int64(len(buf))); err != nil {
		return err
	}
	p.size = int64(len(buf))
	return nil
}

// get returns the entry of path, if the pos_file has one (by path only).
func (p *posFile) get(path string) (pos int64, inode uint64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entries[path]
	if !ok {
		return 0, 0, false
	}
	return e.pos, e.inode, true
}

// byInode is each inode's last position, under whatever path
// (follow_inodes: files renamed while Sluice was down). It is taken once
// per refresh, before new files' lines replace the entries of their paths.
func (p *posFile) byInode() map[uint64]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[uint64]int64, len(p.entries))
	for _, e := range p.entries {
		out[e.inode] = e.pos
	}
	return out
}

// set records path's position and inode: in place when the entry has a
// line under this path, else as a new line at the end (a renamed file's
// old line, with follow_inodes, is marked unwatched).
func (p *posFile) set(path string, pos int64, inode uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.key(path, inode)
	e, ok := p.entries[k]
	if ok && e.path != path {
		if err := p.markUnwatched(e); err != nil {
			return err
		}
		ok = false
	}
	if !ok {
		e = &posEntry{path: path, offset: p.size, pos: pos, inode: inode}
		line := appendPosLine(nil, e)
		if _, err := p.f.WriteAt(line, e.offset); err != nil {
			return err
		}
		p.size += int64(len(line))
		p.entries[k] = e
		return nil
	}
	var nums [33]byte
	b := appendHex16(nums[:0], uint64(pos))
	b = append(b, '\t')
	b = appendHex16(b, inode)
	e.pos, e.inode = pos, inode
	_, err := p.f.WriteAt(b, e.offset+int64(len(path))+1)
	return err
}

// unwatch marks the file as no longer watched, as Fluentd does;
// compaction removes its line.
func (p *posFile) unwatch(path string, inode uint64) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := p.key(path, inode)
	e, ok := p.entries[k]
	if !ok || e.path != path {
		return nil
	}
	delete(p.entries, k)
	// The line stays until compaction; a later set for the path appends
	// a new one, and the reader keeps the last.
	return p.markUnwatched(e)
}

func (p *posFile) markUnwatched(e *posEntry) error {
	var nums [16]byte
	_, err := p.f.WriteAt(appendHex16(nums[:0], unwatched), e.offset+int64(len(e.path))+1)
	return err
}

// compact rewrites the file without the lines of unwatched files
// (pos_file_compaction_interval).
func (p *posFile) compact() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	order := make([]string, 0, len(p.entries))
	for k := range p.entries {
		order = append(order, k)
	}
	return p.rewrite(order)
}

func (p *posFile) close() error {
	if p == nil || p.f == nil {
		return nil
	}
	return p.f.Close()
}
