// Package tail is in_tail: it follows files as they grow, across
// rotation and truncation, emitting each line (or each multiline block)
// through <parse>, and keeps its place in Fluentd's pos_file format.
//
// One goroutine follows each file; a manager expands the paths every
// refresh_interval and starts and stops them. A file's position in the
// pos_file moves only after the route has taken its lines, so a restart
// (SIGTERM or kill -9) reads again at most the lines of the last batch
// whose position was not yet written: at least once, nothing lost.
//
// Shutdown: the manager stops refreshing, each follower finishes the
// batch it is emitting (a full buffer's wait ends with the shutdown),
// writes its position and closes its file; then the pos_file closes.
package tail

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tinylib/msgp/msgp"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/lograte"
	"github.com/sluice-log/sluice/internal/parser"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/strftime"
)

// Input is in_tail. Parameters keep Fluentd's names and defaults.
type Input struct {
	Path                          string          `conf:"path,required" desc:"The files to read: a list separated by path_delimiter, each a glob (*, ?, [...], ** for any depth) and strftime directives (%Y%m%d), expanded at every refresh."`
	PathDelimiter                 string          `conf:"path_delimiter" desc:"What separates the entries of path."`
	ExcludePath                   []string        `conf:"exclude_path" desc:"Globs of files never to read, even when path matches them."`
	Tag                           string          `conf:"tag,required" desc:"The tag of the events; a * in it is replaced by the file's path with / as . (/var/log/a.log under app.* is app.var.log.a.log)."`
	PosFile                       string          `conf:"pos_file" desc:"Where each file's position is kept, in Fluentd's format (PATH, hex position, hex inode), so that a restart goes on where it stopped, also after Fluentd's."`
	PosFileCompactionInterval     time.Duration   `conf:"pos_file_compaction_interval" desc:"How often the pos_file is rewritten without the lines of files no longer watched (it is also compacted at start; 0: only then)."`
	ReadFromHead                  bool            `conf:"read_from_head" desc:"Read files found at start that the pos_file does not know from their beginning, instead of from their end. Files that appear later are always read from the beginning."`
	RefreshInterval               time.Duration   `conf:"refresh_interval" desc:"How often path is expanded again to find new files and drop vanished ones."`
	RotateWait                    time.Duration   `conf:"rotate_wait" desc:"How long a file that was rotated away or deleted is still read for lines written late, before it is closed."`
	FollowInodes                  bool            `conf:"follow_inodes" desc:"Follow a file by its inode: a rotated file that path still matches under its new name (path app.log*) goes on from where it was, instead of being read again from its start; a file renamed while Sluice was down is found in the pos_file by its inode."`
	EnableWatchTimer              bool            `conf:"enable_watch_timer" desc:"Accepted for Fluentd compatibility: files are looked at every 50 ms to 1 s (sooner while they grow)." ignored:"Sluice always polls the files it follows"`
	EnableStatWatcher             bool            `conf:"enable_stat_watcher" desc:"Wake on inotify's notice that a file changed, so that lines are read as they are written; the files are still polled, every 5 s at most, as a safety net. False, or past the system's watch limit (fs.inotify.max_user_watches): polled 50 ms to 1 s apart."`
	OpenOnEveryUpdate             bool            `conf:"open_on_every_update" desc:"Close each file between reads and open it again when it may have grown, so that it can be deleted or rotated on systems that refuse that for open files."`
	ReadLinesLimit                int             `conf:"read_lines_limit" desc:"The most lines read from one file before they are emitted as one batch."`
	ReadBytesLimitPerSecond       config.Size     `conf:"read_bytes_limit_per_second" desc:"The most bytes read per second from one file (-1: no limit; at least 8192 otherwise, as Fluentd)."`
	LimitRecentlyModified         time.Duration   `conf:"limit_recently_modified" desc:"Follow only files modified within this long (0: any)."`
	SkipRefreshOnStartup          bool            `conf:"skip_refresh_on_startup" desc:"Do not expand path at start; the first refresh_interval does."`
	PathKey                       string          `conf:"path_key" desc:"Add the file's path to each record under this key."`
	MaxLineSize                   config.Size     `conf:"max_line_size" desc:"Lines longer than this are skipped, counted and logged. Unset, 16 MiB (Fluentd has no bound; Sluice keeps memory bounded)."`
	MultilineFlushInterval        time.Duration   `conf:"multiline_flush_interval" desc:"With a multiline parser: emit a block that no new first line has ended once its file has been quiet this long (0: only when the next block starts or the file closes)."`
	Encoding                      string          `conf:"encoding" desc:"The encoding of the events: UTF-8 (with from_encoding, the files' lines are converted to it), or ASCII-8BIT (passed on as read)."`
	FromEncoding                  string          `conf:"from_encoding" desc:"The encoding of the files (Shift_JIS, EUC-JP, ISO-8859-1, Windows-1252, GBK, ... by their IANA or WHATWG names); lines are converted to UTF-8, bytes that are not of the encoding becoming U+FFFD. UTF-16 and UTF-32 files are refused."`
	EmitUnmatchedLines            bool            `conf:"emit_unmatched_lines" desc:"Emit lines the parser does not match as {\"unmatched_line\": LINE}, instead of dropping them (they are counted either way)."`
	IgnoreRepeatedPermissionError bool            `conf:"ignore_repeated_permission_error" desc:"Log a file that cannot be read for lack of permission once, not at every refresh."`
	PathTimezone                  string          `conf:"path_timezone" desc:"The time zone of the strftime directives in path (the local zone by default)."`
	Parse                         *config.Element `section:"parse" desc:"The parser of each line (required); a multiline parser with format_firstline groups lines into blocks first."`
	Group                         *config.Element `section:"group" desc:"Rate limits by group of files, as Fluentd's <group>: pattern, rate_period, and <rule>s with match (named group to /regexp/, a JSON object) and limit (lines per rate_period for the rule's files together, shared equally; -1 no limit). A file over its share waits for the next period; nothing is dropped."`

	log        *slog.Logger
	tagPrefix  string
	tagSuffix  string
	wildcard   bool
	maxLine    int
	loc        *time.Location
	pos        *posFile
	workers    chan *worker
	multiline  bool
	firstLine  func([]byte) bool
	cri        bool
	groups     *groups   // nil without <group>
	notify     *notifier // inotify (enable_stat_watcher); nil: polling only
	notifyRare lograte.Limiter
	// fromEncoding converts lines to UTF-8 (nil: passed on as read).
	fromEncoding encoding.Encoding

	mu       sync.Mutex
	watching map[string]*follower // by path, guarded by mu
	byInode  map[uint64]*follower // every follower and drainer, guarded by mu
	denied   map[string]bool      // permission errors logged, guarded by mu
	wg       sync.WaitGroup

	Stats Stats
}

// Stats are in_tail's counters.
type Stats struct {
	Lines       atomic.Int64
	Bytes       atomic.Int64
	Events      atomic.Int64
	Unmatched   atomic.Int64
	LongLines   atomic.Int64 // skipped past max_line_size
	Opened      atomic.Int64
	Closed      atomic.Int64
	Rotations   atomic.Int64
	Truncations atomic.Int64
	Throttled   atomic.Int64 // reads held back by read_bytes_limit_per_second
	OpenErrors  atomic.Int64
	EmitRetries atomic.Int64 // batches an output refused, retried
}

// Measure implements plugin.Measured.
func (in *Input) Measure(report plugin.Report) {
	s := &in.Stats
	in.mu.Lock()
	files := len(in.watching)
	in.mu.Unlock()
	report("files", "Files followed now.", int64(files), true)
	report("lines_total", "Lines read.", s.Lines.Load(), false)
	report("bytes_total", "Bytes read.", s.Bytes.Load(), false)
	report("events_total", "Events emitted.", s.Events.Load(), false)
	report("unmatched_total", "Lines (or blocks) the parser did not match.", s.Unmatched.Load(), false)
	report("long_lines_total", "Lines skipped because they were longer than max_line_size.", s.LongLines.Load(), false)
	report("files_opened_total", "Files opened to be followed (a rotation opens the new file).", s.Opened.Load(), false)
	report("files_closed_total", "Files closed for good (read to their end after rotate_wait).", s.Closed.Load(), false)
	report("rotations_total", "Files found rotated (a new file at the path).", s.Rotations.Load(), false)
	report("throttled_total", "Reads held back by read_bytes_limit_per_second.", s.Throttled.Load(), false)
	report("truncations_total", "Files found truncated (copytruncate or truncate in place); read again from the start.", s.Truncations.Load(), false)
	report("open_errors_total", "Files that matched path but could not be opened.", s.OpenErrors.Load(), false)
	report("emit_retries_total", "Batches an output refused and that were offered again (the position waits for them).", s.EmitRetries.Load(), false)
}

// Bounds.
const (
	defaultMaxLine = 16 << 20
	readSize       = 64 << 10
	poolSize       = 8
	maxPoll        = time.Second
	maxEmitBackoff = 5 * time.Second
	minDrainPoll   = 10 * time.Millisecond
)

// How often a file read to its end is looked at again: from minPoll,
// doubling while it stays quiet, to maxPoll, or to maxNotifiedPoll when
// inotify watches it (variables for a test that turns polling off).
var (
	minPoll         = 50 * time.Millisecond
	maxNotifiedPoll = 5 * time.Second
)

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "tail", Summary: "follow files as they grow, across rotation, with Fluentd's pos_file",
		Sections: map[string]plugin.Section{"parse": {Kind: plugin.KindParser}, "group": {New: func() any { return newGroupSection() }}},
		New: func() any {
			return &Input{PathDelimiter: ",", RefreshInterval: 60 * time.Second, RotateWait: 5 * time.Second, EnableWatchTimer: true,
				EnableStatWatcher: true, ReadLinesLimit: 1000, ReadBytesLimitPerSecond: -1}
		}})
}

// Configure implements plugin.Configurer.
func (in *Input) Configure(c *plugin.Context) error {
	in.log = c.Logger
	if in.Parse == nil {
		return fmt.Errorf("in_tail needs a <parse> section")
	}
	if err := in.configureEncoding(); err != nil {
		return err
	}
	if in.ReadLinesLimit <= 0 {
		return fmt.Errorf("read_lines_limit must be positive")
	}
	if in.ReadBytesLimitPerSecond >= 0 && in.ReadBytesLimitPerSecond < 8192 {
		in.log.Warn("read_bytes_limit_per_second is raised to 8192, its least", "was", int64(in.ReadBytesLimitPerSecond))
		in.ReadBytesLimitPerSecond = 8192
	}
	if in.RefreshInterval <= 0 {
		return fmt.Errorf("refresh_interval must be positive")
	}
	in.maxLine = int(in.MaxLineSize)
	if in.maxLine <= 0 {
		in.maxLine = defaultMaxLine
	}
	in.loc = time.Local
	if in.PathTimezone != "" {
		loc, err := strftime.ParseZone(in.PathTimezone)
		if err != nil {
			return fmt.Errorf("path_timezone: %w", err)
		}
		in.loc = loc
	}
	in.tagPrefix, in.tagSuffix, in.wildcard = strings.Cut(in.Tag, "*")
	if len(in.paths(time.Now())) == 0 {
		return fmt.Errorf("path is empty")
	}
	for _, pattern := range append(in.paths(time.Now()), in.ExcludePath...) {
		if _, err := filepath.Match(strings.ReplaceAll(pattern, "**", "*"), ""); err != nil {
			return fmt.Errorf("bad glob %q: %w", pattern, err)
		}
	}
	if in.Group != nil {
		gs, err := newGroups(in.Group)
		if err != nil {
			return err
		}
		in.groups = gs
	}
	in.workers = make(chan *worker, poolSize)
	for i := 0; i < poolSize; i++ {
		p, err := c.Build.Parser(in.Parse, "")
		if err != nil {
			return err
		}
		if m, ok := p.(*parser.Multiline); ok && m.FormatFirstline != "" {
			in.multiline, in.firstLine = true, m.FirstLine // a regexp is safe to share
		}
		if _, ok := p.(*parser.CRI); ok {
			in.cri = true
		}
		w := &worker{parser: p}
		if in.fromEncoding != nil {
			w.decoder = in.fromEncoding.NewDecoder()
		}
		in.workers <- w
	}
	in.watching = map[string]*follower{}
	in.byInode = map[uint64]*follower{}
	in.denied = map[string]bool{}
	return nil
}

// passThrough are the encodings whose lines are passed on as read.
var passThrough = map[string]bool{"": true, "UTF-8": true, "UTF8": true, "ASCII-8BIT": true, "BINARY": true, "US-ASCII": true, "ASCII": true}

// configureEncoding finds from_encoding's decoder; encoding must then be
// UTF-8, what records hold.
func (in *Input) configureEncoding() error {
	to, from := strings.ToUpper(in.Encoding), strings.ToUpper(in.FromEncoding)
	if !passThrough[to] {
		return fmt.Errorf("encoding %q: events are UTF-8 (or ASCII-8BIT, as read); set from_encoding for the files' encoding", in.Encoding)
	}
	if passThrough[from] {
		return nil
	}
	if to == "ASCII-8BIT" || to == "BINARY" {
		return fmt.Errorf("from_encoding %q with encoding %s: nothing to convert to; set encoding UTF-8", in.FromEncoding, in.Encoding)
	}
	if strings.HasPrefix(from, "UTF-16") || strings.HasPrefix(from, "UTF-32") {
		return fmt.Errorf("from_encoding %q: files whose newline is not the byte \n cannot be split into lines; convert them first", in.FromEncoding)
	}
	enc, err := ianaindex.IANA.Encoding(in.FromEncoding)
	if err != nil || enc == nil {
		enc, err = htmlindex.Get(in.FromEncoding)
	}
	if err != nil || enc == nil {
		return fmt.Errorf("from_encoding %q: not an encoding Sluice knows", in.FromEncoding)
	}
	in.fromEncoding = enc
	return nil
}

// MemoryBound implements plugin.MemoryBounded: at most poolSize files are
// read at once, each into a 64 KiB buffer and a batch of read_lines_limit
// lines (counted at 1 KiB a line); a file read to its end keeps only its
// partial last line, which is not in this figure (docs/tail.md).
func (in *Input) MemoryBound() int64 {
	return int64(poolSize) * (2*readSize + int64(in.ReadLinesLimit)*1024)
}

// Init opens the pos_file (a bad path fails the start) and inotify.
func (in *Input) Init(context.Context) error {
	if in.EnableStatWatcher {
		n, err := newNotifier()
		if err != nil {
			in.log.Warn("inotify is not available; files are polled", "err", err)
		} else {
			in.notify = n
		}
	}
	if in.PosFile == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(in.PosFile), 0o755); err != nil {
		return err
	}
	pos, err := openPosFile(in.PosFile, 0o644, in.FollowInodes)
	if err != nil {
		return fmt.Errorf("pos_file: %w", err)
	}
	in.pos = pos
	return nil
}

// Close implements plugin.Closer; Run has returned, and with it every
// follower.
func (in *Input) Close(context.Context) error {
	if in.notify != nil {
		in.notify.close()
	}
	return in.pos.close()
}

// paths is the path list with the strftime directives for now.
func (in *Input) paths(now time.Time) []string {
	var out []string
	for _, p := range strings.Split(in.Path, in.PathDelimiter) {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if strings.Contains(p, "%") {
			p = strftime.Format(p, now.In(in.loc))
		}
		out = append(out, p)
	}
	return out
}

// Run implements plugin.Input.
func (in *Input) Run(ctx context.Context, out plugin.Emitter) error {
	defer in.wg.Wait()
	if !in.SkipRefreshOnStartup {
		in.refresh(ctx, out, true)
	}
	refresh := time.NewTicker(in.RefreshInterval)
	defer refresh.Stop()
	var compact <-chan time.Time
	if in.pos != nil && in.PosFileCompactionInterval > 0 {
		t := time.NewTicker(in.PosFileCompactionInterval)
		defer t.Stop()
		compact = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refresh.C:
			in.refresh(ctx, out, false)
		case <-compact:
			if err := in.pos.compact(); err != nil {
				in.log.Warn("pos_file compaction failed", "err", err)
			}
		}
	}
}

// expand is every file path matches now, less exclude_path and files
// not modified within limit_recently_modified.
func (in *Input) expand(now time.Time) []string {
	seen := map[string]bool{}
	var out []string
	for _, pattern := range in.paths(now) {
		matches, _ := glob(pattern)
		for _, m := range matches {
			if seen[m] || in.excluded(m) {
				continue
			}
			fi, err := os.Stat(m)
			if err != nil || fi.IsDir() {
				continue
			}
			if in.LimitRecentlyModified > 0 && now.Sub(fi.ModTime()) > in.LimitRecentlyModified {
				continue
			}
			seen[m] = true
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out
}

func (in *Input) excluded(path string) bool {
	for _, ex := range in.ExcludePath {
		if ok, _ := matchGlob(ex, path); ok {
			return true
		}
	}
	return false
}

// refresh starts a follower for each new file and tells the followers of
// files no longer matched to finish.
func (in *Input) refresh(ctx context.Context, out plugin.Emitter, startup bool) {
	if ctx.Err() != nil {
		return
	}
	paths := in.expand(time.Now())
	in.mu.Lock()
	defer in.mu.Unlock()
	matched := map[string]bool{}
	var inodes map[uint64]int64
	if in.FollowInodes && in.pos != nil {
		inodes = in.pos.byInode()
	}
	for _, p := range paths {
		matched[p] = true
		if _, ok := in.watching[p]; ok {
			continue
		}
		if in.FollowInodes {
			if fi, err := os.Stat(p); err == nil {
				if f := in.byInode[inodeOf(fi)]; f != nil {
					if f.rotatedAway { // a rotated file draining: it goes on under its new name
						f.adopt(p)
						in.watching[p] = f
					}
					continue // else its follower has not seen the rotation yet
				}
			}
		}
		f, err := in.newFollower(p, startup, inodes)
		if err != nil {
			in.openFailed(p, err)
			continue
		}
		in.watching[p] = f
		in.start(ctx, out, f)
	}
	for p, f := range in.watching {
		if !matched[p] {
			f.unmatch()
		}
	}
}

// start runs a follower (or a drainer) until it is done; the caller holds
// mu.
func (in *Input) start(ctx context.Context, out plugin.Emitter, f *follower) {
	in.byInode[f.inode] = f
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		f.run(ctx, out)
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.watching[f.path] == f {
			delete(in.watching, f.path)
		}
		if p := f.adopted.Load(); p != nil && in.watching[*p] == f {
			delete(in.watching, *p) // adopted as it finished
		}
		if in.byInode[f.inode] == f {
			delete(in.byInode, f.inode)
		}
	}()
}

func (in *Input) openFailed(path string, err error) {
	in.Stats.OpenErrors.Add(1)
	if errors.Is(err, fs.ErrPermission) && in.IgnoreRepeatedPermissionError {
		if in.denied[path] {
			return
		}
		in.denied[path] = true
	}
	in.log.Warn("cannot follow a file", "path", path, "err", err)
}

// FollowedFiles implements plugin.FileFollower: each path's saved
// position and inode (prometheus_tail_monitor).
func (in *Input) FollowedFiles() []plugin.FollowedFile {
	in.mu.Lock()
	defer in.mu.Unlock()
	out := make([]plugin.FollowedFile, 0, len(in.watching))
	for path, f := range in.watching {
		out = append(out, plugin.FollowedFile{Path: path, Position: f.shownPos.Load(), Inode: f.shownInode.Load()})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// FileCounts implements plugin.FileFollower.
func (in *Input) FileCounts() (opened, closed, rotated, throttled int64) {
	s := &in.Stats
	return s.Opened.Load(), s.Closed.Load(), s.Rotations.Load(), s.Throttled.Load()
}

// tagOf is the tag of a file's events.
func (in *Input) tagOf(path string) string {
	if !in.wildcard {
		return in.Tag
	}
	t := strings.ReplaceAll(path, "/", ".")
	for strings.Contains(t, "..") {
		t = strings.ReplaceAll(t, "..", ".")
	}
	t = strings.TrimPrefix(t, ".")
	return in.tagPrefix + t + in.tagSuffix
}

// inodeOf is a file's inode number.
func inodeOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// worker is what one batch is parsed with.
type worker struct {
	parser  plugin.Parser
	batch   event.Builder
	record  []byte
	decoder *encoding.Decoder // from_encoding
	utf8    []byte            // a line converted by decoder
}

// unmatchedKey is the start of an unmatched line's record.
var unmatchedKey = msgp.AppendString(msgp.AppendMapHeader(nil, 1), "unmatched_line")

// parse adds line's events to w's batch.
func (in *Input) parse(w *worker, f *follower, line []byte) {
	err := w.parser.Parse(line, func(t event.Time, rec []byte) error {
		if t == 0 {
			t = event.Now()
		}
		if in.PathKey != "" {
			var err error
			if w.record, err = event.AppendRecordFields(w.record[:0], rec, in.PathKey, f.path); err != nil {
				return err
			}
			rec = w.record
		}
		w.batch.Append(t, rec)
		return nil
	})
	if err == nil {
		return
	}
	in.unmatched(w, f, line, err)
}

// unmatched counts a line the parser did not take, logs some, and with
// emit_unmatched_lines emits it as {"unmatched_line": LINE}.
func (in *Input) unmatched(w *worker, f *follower, line []byte, err error) {
	in.Stats.Unmatched.Add(1)
	if f.rare.Allow() {
		in.log.Warn("line not matched by the parser", "path", f.path, "line", string(line[:min(len(line), 64)]), "err", err)
	}
	if in.EmitUnmatchedLines {
		rec := msgp.AppendStringFromBytes(append(w.record[:0], unmatchedKey...), line)
		if in.PathKey != "" {
			rec[0]++ // the map grows by one key (fixmap header)
			rec = msgp.AppendString(msgp.AppendString(rec, in.PathKey), f.path)
		}
		w.record = rec
		w.batch.Append(event.Now(), rec)
	}
}

// glob is filepath.Glob with ** matching any number of directories.
func glob(pattern string) ([]string, error) {
	if !strings.Contains(pattern, "**") {
		return filepath.Glob(pattern)
	}
	root, _, _ := strings.Cut(pattern, "**")
	root = filepath.Dir(root + "x")
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil //nolint:nilerr // an unreadable directory is skipped, as a glob skips it
		}
		if ok, _ := matchGlob(pattern, p); ok && !d.IsDir() {
			out = append(out, p)
		}
		return nil
	})
	return out, err
}

// matchGlob matches path against pattern, ** crossing directories.
func matchGlob(pattern, path string) (bool, error) {
	if !strings.Contains(pattern, "**") {
		return filepath.Match(pattern, path)
	}
	pp, sp := strings.Split(pattern, "/"), strings.Split(path, "/")
	return matchParts(pp, sp)
}

func matchParts(pp, sp []string) (bool, error) {
	for len(pp) > 0 {
		if pp[0] == "**" {
			for i := 0; i <= len(sp); i++ {
				if ok, err := matchParts(pp[1:], sp[i:]); ok || err != nil {
					return ok, err
				}
			}
			return false, nil
		}
		if len(sp) == 0 {
			return false, nil
		}
		ok, err := filepath.Match(pp[0], sp[0])
		if !ok || err != nil {
			return false, err
		}
		pp, sp = pp[1:], sp[1:]
	}
	return len(sp) == 0, nil
}
