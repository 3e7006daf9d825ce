// Package file holds the file output.
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// File writes each flushed chunk to a file whose name comes from path, as
// Fluentd's out_file does:
//
//	path /var/log/app            → /var/log/app.20240101_0.log (timekey 1d)
//	path /var/log/${tag}/%Y%m%d  → /var/log/web/20240101_0.log
//	append true                  → no _N index: every chunk of a slice appends
//	compress gzip                → .gz; appended chunks are gzip members
//	drop_page_cache false        → leave written data in the page cache
//
// Without append, each chunk gets the first free index, so a retried chunk
// never overwrites another.
type File struct {
	Path          string          `conf:"path,required" desc:"The file path, without its suffix: a time slice and index are added (app.20240101_0.log). ${tag}, ${key} and strftime placeholders take the chunk's values."`
	Append        bool            `conf:"append" desc:"Append every chunk of a time slice to one file instead of one file per chunk (_0, _1, ...)."`
	AddPathSuffix bool            `conf:"add_path_suffix" desc:"Add path_suffix to the file names."`
	PathSuffix    string          `conf:"path_suffix" desc:"The suffix of the file names."`
	Compress      string          `conf:"compress" enum:"text,gzip,gz" desc:"gzip compresses the files (.gz); appended chunks are separate gzip members."`
	Recompress    bool            `conf:"recompress" desc:"Accepted for Fluentd compatibility; chunks are compressed as they are written." ignored:"chunks are compressed as they are written"`
	SymlinkPath   string          `conf:"symlink_path" desc:"A symbolic link kept pointing at the file written last."`
	DropPageCache bool            `conf:"drop_page_cache" desc:"Tell the kernel, after each write, that the written data need not stay in the page cache."`
	Format        *config.Element `section:"format" desc:"How each event is written: a formatter, out_file (time, tag, JSON) unless @type says otherwise."`

	tmpl *buffer.Template
	loc  *time.Location
	f    plugin.Formatter
	mu   sync.Mutex // serialises index selection and writes
	wb   writeBehind
	perm buffer.Perm // <system> file_permission, dir_permission
}

var (
	_ plugin.BufferedOutput = (*File)(nil)
	_ plugin.EntryFormatter = (*File)(nil)
)

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "file", Summary: "write events to local files",
		// Chunks by time, one day each, as Fluentd's out_file. (Fluentd
		// also defaults to a file buffer; Sluice keeps memory unless asked.)
		BufferDefaults: map[string]string{"": "time", "timekey": "1d"},
		// Write is done with the bytes when it returns.
		DoneWithDataOnReturn: true,
		Inject:               true,
		Sections:             map[string]plugin.Section{"format": {Kind: plugin.KindFormatter, Default: "out_file"}},
		New: func() any {
			return &File{AddPathSuffix: true, PathSuffix: ".log", Compress: "text", DropPageCache: true}
		}})
}

// Configure implements plugin.Configurer.
func (f *File) Configure(c *plugin.Context) error {
	f.perm = c.Perm.OrDefault()
	formatter, err := c.Build.Formatter(f.Format, "out_file")
	if err != nil {
		return err
	}
	f.f = formatter
	f.loc = c.Location
	full := f.Path
	if c.ChunkKeys.Time && !strings.Contains(full, "%") {
		sep := "."
		if strings.HasSuffix(full, "/") {
			sep = ""
		}
		full += sep + buffer.TimekeyFormat(c.Timekey)
	}
	if f.AddPathSuffix {
		full += f.PathSuffix
	}
	tmpl, err := buffer.NewTemplate(full, c.ChunkKeys)
	if err != nil {
		return fmt.Errorf("path: %w", err)
	}
	f.tmpl = tmpl
	return nil
}

// FormatEntry implements plugin.EntryFormatter.
func (f *File) FormatEntry(dst []byte, tag string, t event.Time, r event.Record) ([]byte, error) {
	return f.f.Format(dst, tag, t, r)
}

// Write implements plugin.BufferedOutput.
func (f *File) Write(_ context.Context, c *plugin.Chunk) error {
	base, err := f.tmpl.Expand(c.Key, f.loc)
	if err != nil {
		return fmt.Errorf("path: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(base), f.perm.Dir); err != nil {
		return refusedName(err)
	}
	path, flags, err := f.target(base)
	if err != nil {
		return refusedName(err)
	}
	fh, err := os.OpenFile(path, flags, f.perm.File)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%s appeared while writing; will retry with the next index", path)
		}
		return refusedName(err)
	}
	// Where the chunk starts, for drop_page_cache; a file that cannot seek
	// (a pipe) is written all the same, without the advice.
	start := int64(-1)
	if f.DropPageCache {
		if at, err := fh.Seek(0, io.SeekEnd); err == nil {
			start = at
		}
	}
	if err := writeData(fh, c.Data, f.gzip()); err != nil {
		fh.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if start >= 0 {
		if end, err := fh.Seek(0, io.SeekCurrent); err == nil {
			f.wb.wrote(fh, path, start, end)
		}
	}
	if err := fh.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	if f.SymlinkPath != "" {
		_ = os.Remove(f.SymlinkPath)
		if err := os.Symlink(path, f.SymlinkPath); err != nil {
			return &plugin.Permanent{Err: fmt.Errorf("symlink_path: %w", err)}
		}
	}
	return nil
}

func (f *File) gzip() bool { return f.Compress == "gzip" || f.Compress == "gz" }

// target picks the file for a chunk: with append the slice's one file;
// otherwise the first index not taken (created exclusively). A name the
// file system refuses ends the search with the error.
func (f *File) target(base string) (string, int, error) {
	ext := ""
	if f.gzip() {
		ext = ".gz"
	}
	if f.Append {
		return base + ext, os.O_CREATE | os.O_WRONLY | os.O_APPEND, nil
	}
	suffix := ""
	if f.AddPathSuffix && strings.HasSuffix(base, f.PathSuffix) {
		base, suffix = strings.TrimSuffix(base, f.PathSuffix), f.PathSuffix
	}
	p, err := firstFree(func(i int) string { return base + "_" + strconv.Itoa(i) + suffix + ext })
	return p, os.O_CREATE | os.O_WRONLY | os.O_EXCL, err
}

// firstFree returns the first of name(0), name(1), ... that no file has.
// Any answer of the file system but "does not exist" ends the search: a
// name too long or invalid for it is refused for every index alike.
func firstFree(name func(i int) string) (string, error) {
	for i := 0; ; i++ {
		p := name(i)
		_, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return p, nil
		case err != nil:
			return "", err
		}
	}
}

// refusedName wraps an error of a file name the system will never accept
// (too long, or invalid) as permanent: retrying the chunk cannot help.
func refusedName(err error) error {
	if errors.Is(err, syscall.ENAMETOOLONG) || errors.Is(err, syscall.EINVAL) {
		return &plugin.Permanent{Err: err}
	}
	return err
}

func writeData(fh *os.File, data []byte, gz bool) error {
	if !gz {
		_, err := fh.Write(data)
		return err
	}
	zw := gzip.NewWriter(fh)
	if _, err := zw.Write(data); err != nil {
		return err
	}
	return zw.Close()
}
