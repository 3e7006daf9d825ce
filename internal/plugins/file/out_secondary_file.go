package file

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/plugin"
)

// SecondaryFile is Fluentd's secondary_file: the <secondary> that dumps
// chunks the primary output cannot deliver into files, bytes as buffered
// (msgpack entries, or the primary's formatted text), so they can be
// replayed. directory and basename may use ${tag}, ${key}, ${chunk_id} and
// strftime (from the chunk's timekey). Without append, each chunk gets its
// own file: basename.0, basename.1, ...
type SecondaryFile struct {
	Directory string `conf:"directory,required" desc:"The directory the chunks are dumped into (${tag}, ${key}, ${chunk_id} and strftime placeholders allowed)."`
	Basename  string `conf:"basename" desc:"The file name, to which .0, .1 ... are added unless append."`
	Append    bool   `conf:"append" desc:"Append every chunk to one file instead of one file per chunk."`
	Compress  string `conf:"compress" enum:"text,gzip" desc:"gzip compresses the dumped files."`

	tmpl *buffer.Template
	loc  *time.Location
	mu   sync.Mutex  // serialises index selection and writes
	perm buffer.Perm // <system> file_permission, dir_permission
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "secondary_file",
		Summary:              "dump chunks a primary output cannot deliver into files (for <secondary>)",
		DoneWithDataOnReturn: true,
		New:                  func() any { return &SecondaryFile{Basename: "dump.bin", Compress: "text"} }})
}

// Configure implements plugin.Configurer.
func (s *SecondaryFile) Configure(c *plugin.Context) error {
	s.perm = c.Perm.OrDefault()
	if strings.Contains(s.Basename, "/") {
		return fmt.Errorf("basename %q must not contain '/'", s.Basename)
	}
	// ${chunk_id} is resolved per chunk; the rest against the chunk keys.
	path := filepath.Join(s.Directory, s.Basename)
	tmpl, err := buffer.NewTemplate(strings.ReplaceAll(path, "${chunk_id}", "\x00chunk_id\x00"), c.ChunkKeys)
	if err != nil {
		return err
	}
	s.tmpl = tmpl
	s.loc = c.Location
	if s.loc == nil {
		s.loc = time.Local
	}
	return nil
}

// Write implements plugin.BufferedOutput.
func (s *SecondaryFile) Write(_ context.Context, c *plugin.Chunk) error {
	base, err := s.tmpl.Expand(c.Key, s.loc)
	if err != nil {
		return fmt.Errorf("path: %w", err)
	}
	base = strings.ReplaceAll(base, "\x00chunk_id\x00", c.ID.String())
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(base), s.perm.Dir); err != nil {
		return refusedName(err)
	}
	ext := ""
	if s.Compress == "gzip" {
		ext = ".gz"
	}
	path, flags := base+ext, os.O_CREATE|os.O_WRONLY|os.O_APPEND
	if !s.Append {
		if path, err = firstFree(func(i int) string { return base + "." + strconv.Itoa(i) + ext }); err != nil {
			return refusedName(err)
		}
		flags = os.O_CREATE | os.O_WRONLY | os.O_EXCL
	}
	fh, err := os.OpenFile(path, flags, s.perm.File)
	if err != nil {
		return refusedName(err)
	}
	if err := writeData(fh, c.Data, s.Compress == "gzip"); err != nil {
		fh.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return fh.Close()
}
