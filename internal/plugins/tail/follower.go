package tail

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/text/transform"

	"github.com/sluice-log/sluice/internal/lograte"
	"github.com/sluice-log/sluice/internal/plugin"
)

// follower reads one file. Its position is the offset after the last
// line the route has taken; lines held back (a partial last line, a
// multiline block or a CRI partial line waiting for the rest) keep it at
// their start, so a restart reads them again whole.
type follower struct {
	in      *Input
	path    string
	tag     string
	f       *os.File // nil between reads with open_on_every_update
	inode   uint64
	read    int64  // the offset of the next byte to read
	buf     []byte // read and not yet taken: the file's bytes from read-len(buf)
	persist bool   // the position is kept in the pos_file (not for a rotated-away file)
	// rotatedAway: a drainer, reading a file rotated away from the path
	// for rotate_wait. Written under in.mu (the manager reads it).
	rotatedAway bool
	wake        chan struct{} // inotify's wake-ups
	unwatch     func()        // stops them (nil: polled only)

	skipping  bool  // dropping a line longer than max_line_size, up to its newline
	skipStart int64 // where that line starts
	saved     int64 // the position last written
	// What the metrics show, read from other goroutines.
	shownPos   atomic.Int64
	shownInode atomic.Uint64
	draining   bool // the path is gone: read what is left for rotate_wait, then stop
	drainUntil time.Time
	unmatched  atomic.Bool            // the manager found the path no longer matched
	adopted    atomic.Pointer[string] // follow_inodes: the new name of a rotated file
	lastData   time.Time

	// Held back: a multiline block, and CRI partial lines by stream.
	block      []byte
	blockStart int64 // -1: none
	partials   map[string]*partial

	window      time.Time // read_bytes_limit_per_second's current second
	windowBytes int64
	quota       quota // the <group> limit

	rare lograte.Limiter
}

type partial struct {
	start int64 // the offset of the first P line
	head  []byte
	msg   []byte
}

// newFollower opens path and finds where to start: the pos_file's
// position when it is for this inode (with follow_inodes, under any path:
// inodes holds those), the end of a file found at start unless
// read_from_head, else the beginning.
func (in *Input) newFollower(path string, startup bool, inodes map[uint64]int64) (*follower, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	fl := &follower{in: in, path: path, tag: in.tagOf(path), f: fh, inode: inodeOf(fi), persist: in.pos != nil, blockStart: -1, lastData: time.Now()}
	if in.groups != nil {
		fl.quota.g = in.groups.of(path)
		fl.quota.g.join(1)
	}
	start := int64(0)
	known := false
	if pos, ok := inodes[fl.inode]; ok && pos <= fi.Size() {
		start, known = pos, true
	} else if in.pos != nil && !in.FollowInodes {
		if pos, inode, ok := in.pos.get(path); ok {
			known = true
			if inode == fl.inode && pos <= fi.Size() {
				start = pos
			}
			// Another inode: the file was rotated while Sluice was down;
			// a smaller file: truncated. Both are read from the start.
		}
	}
	if !known && startup && !in.ReadFromHead {
		start = fi.Size()
	}
	if _, err := fh.Seek(start, io.SeekStart); err != nil {
		fh.Close()
		return nil, err
	}
	fl.read, fl.saved = start, start
	in.Stats.Opened.Add(1)
	fl.watchFile()
	if err := fl.savePosition(start); err != nil {
		in.log.Warn("pos_file write failed", "path", path, "err", err)
	}
	return fl, nil
}

// unmatch tells the follower that refresh no longer finds its path.
func (fl *follower) unmatch() { fl.unmatched.Store(true) }

// adopt tells a drainer that refresh found its file under path
// (follow_inodes): it becomes that path's follower.
func (fl *follower) adopt(path string) { fl.adopted.Store(&path) }

func (fl *follower) savePosition(pos int64) error {
	fl.shownPos.Store(pos)
	fl.shownInode.Store(fl.inode)
	if !fl.persist {
		return nil
	}
	return fl.in.pos.set(fl.path, pos, fl.inode)
}

// position is where a restart would start: before anything held back.
func (fl *follower) position() int64 {
	pos := fl.read - int64(len(fl.buf))
	if fl.skipping {
		pos = fl.skipStart // a restart skips it again
	}
	if fl.blockStart >= 0 && fl.blockStart < pos {
		pos = fl.blockStart
	}
	for _, p := range fl.partials {
		if p.start < pos {
			pos = p.start
		}
	}
	return pos
}

func (fl *follower) run(ctx context.Context, out plugin.Emitter) {
	defer fl.closeFile()
	defer func() {
		if fl.unwatch != nil {
			fl.unwatch()
		}
	}()
	defer func() {
		if ctx.Err() == nil {
			fl.in.Stats.Closed.Add(1) // closed for good, not by the shutdown
		}
		if fl.quota.g != nil {
			fl.quota.g.join(-1)
		}
	}()
	poll := minPoll
	for ctx.Err() == nil {
		n, wait := fl.readBatch(ctx, out)
		if n > 0 && wait == 0 {
			poll = minPoll
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if wait == 0 {
			fl.flushIdleBlock(ctx, out)
			switch fl.closeIfDone(ctx, out) {
			case fileDone:
				return
			case fileChanged: // a new or truncated file: read it now
				poll = minPoll
				continue
			}
			wait = poll
			limit := maxPoll
			if fl.unwatch != nil {
				limit = maxNotifiedPoll // inotify wakes it; the poll is the safety net
			}
			poll = min(2*poll, limit)
			if fl.in.OpenOnEveryUpdate {
				fl.closeFile()
			}
		}
		if fl.draining {
			wait = max(minDrainPoll, min(wait, time.Until(fl.drainUntil))) // the drain ends on time
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-fl.wake:
			t.Stop()
			poll = minPoll
		}
	}
}

// watchFile asks inotify to wake the follower when its file changes;
// without it (enable_stat_watcher false, or the system's watch limit) the
// file is polled.
func (fl *follower) watchFile() {
	fl.wake = make(chan struct{}, 1)
	n := fl.in.notify
	if n == nil {
		return
	}
	stop, err := n.watch(fl.path, fl.wake)
	if err != nil {
		if fl.in.notifyRare.Allow() {
			fl.in.log.Warn("inotify watch failed; the file is polled instead (raise fs.inotify.max_user_watches for many files)", "path", fl.path, "err", err)
		}
		return
	}
	fl.unwatch = stop
}

// readBatch reads up to read_lines_limit lines, emits them and saves the
// position. It returns the lines taken and, when
// read_bytes_limit_per_second holds the file back, how long to wait.
func (fl *follower) readBatch(ctx context.Context, out plugin.Emitter) (lines int, wait time.Duration) {
	if fl.f == nil && !fl.reopen() {
		return 0, 0
	}
	in := fl.in
	w := <-in.workers
	defer func() { in.workers <- w }()
	w.batch.Reset()
	taken := 0 // bytes of buf used by whole lines
	for lines < in.ReadLinesLimit {
		i := bytes.IndexByte(fl.buf[taken:], '\n')
		if i < 0 {
			fl.buf = fl.buf[:copy(fl.buf, fl.buf[taken:])]
			taken = 0
			if !fl.skipping && len(fl.buf) > in.maxLine {
				fl.longLine()
				fl.skipping, fl.skipStart = true, fl.read-int64(len(fl.buf))
			}
			if fl.skipping {
				fl.buf = fl.buf[:0]
			}
			if wait = fl.throttle(); wait > 0 {
				break
			}
			n, err := fl.fill()
			if n == 0 || err != nil {
				if err != nil && !errors.Is(err, io.EOF) {
					in.log.Warn("read failed", "path", fl.path, "err", err)
				}
				fl.release()
				break
			}
			continue
		}
		if ok, hold := fl.quota.take(); !ok {
			in.Stats.Throttled.Add(1)
			wait = hold // the line stays in buf, its position unsaved
			break
		}
		end := taken + i
		line := fl.buf[taken:end]
		lineStart := fl.read - int64(len(fl.buf)) + int64(taken)
		taken = end + 1
		if fl.skipping {
			fl.skipping = false
			continue
		}
		if len(line) > in.maxLine {
			fl.longLine()
			continue
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		in.Stats.Lines.Add(1)
		fl.take(w, line, lineStart)
		lines++
	}
	if w.batch.Len() > 0 && !fl.emit(ctx, out, w) {
		return lines, wait // the shutdown cut the emit short: the position stays
	}
	fl.buf = fl.buf[:copy(fl.buf, fl.buf[taken:])]
	fl.checkpoint()
	return lines, wait
}

// checkpoint writes the position when it moved.
func (fl *follower) checkpoint() {
	pos := fl.position()
	if pos == fl.saved {
		return
	}
	if err := fl.savePosition(pos); err != nil {
		if fl.rare.Allow() {
			fl.in.log.Warn("pos_file write failed", "path", fl.path, "err", err)
		}
		return
	}
	fl.saved = pos
}

// fill reads more of the file into buf.
func (fl *follower) fill() (int, error) {
	if cap(fl.buf)-len(fl.buf) < readSize {
		fl.buf = append(make([]byte, 0, len(fl.buf)+readSize), fl.buf...)
	}
	room := fl.buf[len(fl.buf):cap(fl.buf)]
	if limit := int64(fl.in.ReadBytesLimitPerSecond); limit >= 0 {
		// Read no more than the second has left of the limit.
		room = room[:min(int64(len(room)), max(1, limit-fl.windowBytes))]
	}
	n, err := fl.f.Read(room)
	fl.buf = fl.buf[:len(fl.buf)+n]
	fl.read += int64(n)
	fl.windowBytes += int64(n)
	fl.in.Stats.Bytes.Add(int64(n))
	if n > 0 {
		fl.lastData = time.Now()
	}
	return n, err
}

// release gives back the read buffer of a file read to its end, keeping
// only a partial last line: thousands of quiet files then hold nothing.
func (fl *follower) release() {
	if len(fl.buf) == 0 {
		fl.buf = nil
	} else if cap(fl.buf) > 4*len(fl.buf) {
		fl.buf = append([]byte(nil), fl.buf...)
	}
}

// throttle is how long to wait before the next read under
// read_bytes_limit_per_second (0: read now).
func (fl *follower) throttle() time.Duration {
	limit := int64(fl.in.ReadBytesLimitPerSecond)
	if limit < 0 {
		return 0
	}
	now := time.Now()
	if now.Sub(fl.window) >= time.Second {
		fl.window, fl.windowBytes = now, 0
		return 0
	}
	if fl.windowBytes < limit {
		return 0
	}
	fl.in.Stats.Throttled.Add(1)
	return time.Second - now.Sub(fl.window)
}

func (fl *follower) longLine() {
	fl.in.Stats.LongLines.Add(1)
	if fl.rare.Allow() {
		fl.in.log.Warn("skipping a line longer than max_line_size", "path", fl.path, "max_line_size", fl.in.maxLine)
	}
}

// take handles one line: through the multiline grouping or the CRI
// reassembly when the parser asks for them, else straight to the parser.
func (fl *follower) take(w *worker, line []byte, start int64) {
	in := fl.in
	if w.decoder != nil {
		// Invalid bytes become U+FFFD; a decoder error is not possible then.
		w.utf8, _, _ = transform.Append(w.decoder, w.utf8[:0], line)
		line = w.utf8
	}
	if in.cri {
		var ok bool
		if line, ok = fl.joinCRI(line, start); !ok {
			return
		}
	}
	if !in.multiline {
		in.parse(w, fl, line)
		return
	}
	if in.firstLine(line) {
		fl.flushBlock(w)
		fl.block = append(fl.block[:0], line...)
		fl.blockStart = start
		return
	}
	if fl.blockStart < 0 {
		// As Fluentd: a line before any first line is dropped, or
		// emitted as unmatched.
		in.unmatched(w, fl, line, errBeforeFirstLine)
		return
	}
	if len(fl.block)+1+len(line) > in.maxLine {
		fl.longLine() // the block is dropped, not the lines after it
		fl.block, fl.blockStart = fl.block[:0], -1
		return
	}
	fl.block = append(append(fl.block, '\n'), line...)
}

var errBeforeFirstLine = errors.New("a line before the first line of any block (format_firstline)")

// flushBlock parses the held multiline block.
func (fl *follower) flushBlock(w *worker) {
	if fl.blockStart < 0 {
		return
	}
	fl.in.parse(w, fl, fl.block)
	fl.block, fl.blockStart = fl.block[:0], -1
}

// flushIdleBlock emits a block its file has been quiet on for
// multiline_flush_interval.
func (fl *follower) flushIdleBlock(ctx context.Context, out plugin.Emitter) {
	if fl.blockStart < 0 || fl.in.MultilineFlushInterval <= 0 || time.Since(fl.lastData) < fl.in.MultilineFlushInterval {
		return
	}
	fl.emitHeld(ctx, out, false)
}

// emitHeld emits the multiline block and, when the file is done with,
// the CRI partial lines, and saves the position after them.
func (fl *follower) emitHeld(ctx context.Context, out plugin.Emitter, partials bool) {
	in := fl.in
	w := <-in.workers
	defer func() { in.workers <- w }()
	w.batch.Reset()
	if partials {
		for stream, p := range fl.partials {
			in.parse(w, fl, append(p.head, p.msg...))
			delete(fl.partials, stream)
		}
	}
	fl.flushBlock(w)
	if w.batch.Len() > 0 && !fl.emit(ctx, out, w) {
		return
	}
	fl.checkpoint()
}

// emit offers the batch until the route takes it: a full buffer pauses
// the file, and the position waits. False: the shutdown came first.
func (fl *follower) emit(ctx context.Context, out plugin.Emitter, w *worker) bool {
	backoff := 100 * time.Millisecond
	n := int64(w.batch.Len())
	for {
		err := out.Emit(ctx, w.batch.Stream(fl.tag))
		if err == nil {
			fl.in.Stats.Events.Add(n)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		fl.in.Stats.EmitRetries.Add(1)
		if fl.rare.Allow() {
			fl.in.log.Warn("events not accepted; reading this file waits for the output", "path", fl.path, "records", n, "err", err)
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, maxEmitBackoff)
	}
}

// What closeIfDone found.
const (
	fileIdle    = iota // nothing new: wait
	fileChanged        // rotated or truncated: read the file at the path now
	fileDone           // closed for good
)

// closeIfDone looks at the path once the file is read to its end: a new
// file there (rotation) or a truncated one is read from the start; a
// deleted or no longer matched one is read for rotate_wait more, then
// closed and its pos_file line marked unwatched.
func (fl *follower) closeIfDone(ctx context.Context, out plugin.Emitter) int {
	if fl.f != nil {
		if fi, err := fl.f.Stat(); err == nil && fi.Size() < fl.read {
			fl.truncated()
			return fileChanged
		}
	}
	if p := fl.adopted.Load(); p != nil && fl.rotatedAway {
		fl.in.mu.Lock()
		fl.path, fl.tag, fl.persist, fl.rotatedAway, fl.draining = *p, fl.in.tagOf(*p), fl.in.pos != nil, false, false
		fl.in.mu.Unlock()
		fl.unmatched.Store(false)
		if gs := fl.in.groups; gs != nil {
			fl.quota = quota{g: gs.of(fl.path)}
			fl.quota.g.join(1)
		}
		fl.saved = -1
		fl.checkpoint()
		return fileIdle
	}
	// A drainer only waits out rotate_wait.
	if !fl.rotatedAway {
		fi, err := os.Stat(fl.path)
		switch {
		case err == nil && inodeOf(fi) != fl.inode:
			fl.rotated(ctx, out)
			return fileChanged
		case err == nil && !fl.unmatched.Load():
			fl.draining = false
			return fileIdle
		}
	}
	switch {
	case !fl.draining:
		fl.draining, fl.drainUntil = true, time.Now().Add(fl.in.RotateWait)
		return fileIdle
	case time.Now().Before(fl.drainUntil):
		return fileIdle
	}
	// Nothing more will be written to it: what is held is emitted whole,
	// the last line too even without its newline.
	if len(fl.buf) > 0 && !fl.skipping {
		w := <-fl.in.workers
		w.batch.Reset()
		fl.take(w, bytes.TrimSuffix(fl.buf, []byte("\r")), fl.read-int64(len(fl.buf)))
		fl.buf = fl.buf[:0]
		ok := w.batch.Len() == 0 || fl.emit(ctx, out, w)
		fl.in.workers <- w
		if !ok {
			return fileDone
		}
	}
	fl.emitHeld(ctx, out, true)
	if ctx.Err() == nil && fl.persist {
		if err := fl.in.pos.unwatch(fl.path, fl.inode); err != nil {
			fl.in.log.Warn("pos_file write failed", "path", fl.path, "err", err)
		}
	}
	return fileDone
}

func (fl *follower) truncated() {
	fl.in.Stats.Truncations.Add(1)
	fl.in.log.Info("file truncated; reading it from the start", "path", fl.path, "was_at", fl.read)
	_, _ = fl.f.Seek(0, io.SeekStart)
	fl.read, fl.buf, fl.skipping = 0, fl.buf[:0], false
	fl.block, fl.blockStart, fl.partials = fl.block[:0], -1, nil
	_ = fl.savePosition(0)
	fl.saved = 0
}

// rotated hands the open file to a drainer, which reads it to its end
// for rotate_wait (without a pos_file line), and follows the new file at
// the path from its start.
func (fl *follower) rotated(ctx context.Context, out plugin.Emitter) {
	fh, err := os.Open(fl.path)
	if err != nil {
		return // it went again; the next look decides
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return
	}
	in := fl.in
	in.Stats.Rotations.Add(1)
	in.Stats.Opened.Add(1)
	old := &follower{in: in, path: fl.path, tag: fl.tag, f: fl.f, inode: fl.inode, read: fl.read, buf: fl.buf,
		skipping: fl.skipping, block: fl.block, blockStart: fl.blockStart, partials: fl.partials,
		draining: true, drainUntil: time.Now().Add(in.RotateWait), lastData: fl.lastData, rotatedAway: true,
		// With follow_inodes the pos_file keeps the rotated file's line
		// (by its inode), so a restart goes on where it was.
		persist: in.FollowInodes && in.pos != nil, saved: fl.saved,
		wake: fl.wake, unwatch: fl.unwatch} // the watch is on the old file
	if fl.f == nil { // open_on_every_update: the old file cannot be reached any more
		if fl.unwatch != nil {
			fl.unwatch()
		}
		old = nil
	}
	oldInode := fl.inode
	fl.f, fl.inode, fl.read, fl.buf, fl.skipping = fh, inodeOf(fi), 0, nil, false
	fl.block, fl.blockStart, fl.partials = nil, -1, nil
	_ = fl.savePosition(0)
	fl.saved = 0
	fl.unwatch = nil
	fl.watchFile() // the new file at the path
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.byInode[oldInode] == fl {
		delete(in.byInode, oldInode)
	}
	in.byInode[fl.inode] = fl
	if old != nil {
		in.start(ctx, out, old)
	}
}

// reopen opens the file again for open_on_every_update; a new inode at
// the path is a rotation, read from the start.
func (fl *follower) reopen() bool {
	fh, err := os.Open(fl.path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) && fl.rare.Allow() {
			fl.in.log.Warn("cannot open the file again", "path", fl.path, "err", err)
		}
		return false
	}
	fi, err := fh.Stat()
	if err != nil {
		fh.Close()
		return false
	}
	if inodeOf(fi) != fl.inode || fi.Size() < fl.read {
		fl.inode, fl.read, fl.buf, fl.skipping = inodeOf(fi), 0, fl.buf[:0], false
	}
	if _, err := fh.Seek(fl.read, io.SeekStart); err != nil {
		fh.Close()
		return false
	}
	fl.f = fh
	return true
}

func (fl *follower) closeFile() {
	if fl.f != nil {
		fl.f.Close()
		fl.f = nil
	}
}

// joinCRI holds CRI partial lines (flag P) until the full line (flag F)
// of their stream comes, and returns the whole line; false while it holds.
func (fl *follower) joinCRI(line []byte, start int64) ([]byte, bool) {
	flagAt, stream, msg, partialLine, ok := splitCRI(line)
	if !ok {
		return line, true // the parser says what is wrong with it
	}
	p := fl.partials[string(stream)]
	if partialLine {
		if p == nil {
			if fl.partials == nil {
				fl.partials = map[string]*partial{}
			}
			// The joined line is the first part's time and stream, flag F.
			p = &partial{start: start, head: append(append([]byte(nil), line[:flagAt]...), 'F', ' ')}
			fl.partials[string(stream)] = p
		}
		if len(p.msg)+len(msg) > fl.in.maxLine {
			fl.longLine()
			delete(fl.partials, string(stream))
			return nil, false
		}
		p.msg = append(p.msg, msg...)
		return nil, false
	}
	if p == nil {
		return line, true
	}
	delete(fl.partials, string(stream))
	return append(append(p.head, p.msg...), msg...), true
}

// splitCRI cuts a CRI line "TIME STREAM FLAG MESSAGE": where the flag is,
// the stream, the message, and whether the flag is P.
func splitCRI(line []byte) (flagAt int, stream, msg []byte, partialLine, ok bool) {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return 0, nil, nil, false, false
	}
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 < 0 {
		return 0, nil, nil, false, false
	}
	flagAt = sp1 + 1 + sp2 + 1
	if flagAt >= len(line) || (flagAt+1 < len(line) && line[flagAt+1] != ' ') {
		return 0, nil, nil, false, false
	}
	if flagAt+2 <= len(line) {
		msg = line[min(len(line), flagAt+2):]
	}
	return flagAt, line[sp1+1 : flagAt-1], msg, line[flagAt] == 'P', true
}
