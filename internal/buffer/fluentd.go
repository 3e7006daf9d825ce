package buffer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
)

// Fluentd's buf_file leaves chunks as PREFIX.b<id>.log (staged) or
// PREFIX.q<id>.log (queued), each with a PREFIX...log.meta beside it: a
// msgpack map {id, s (records), c (created), m, timekey, tag, variables},
// in newer versions preceded by 0xc1 0x00 and a 4-byte big-endian length.
// When Sluice's buffer path is (or names) such a directory, each of those
// chunks is copied into a Sluice chunk, made durable, and the Fluentd files
// are removed: delivered once, by Sluice.
var fluentdChunk = regexp.MustCompile(`^(.*)\.([bq])([0-9a-f]{32})\.([^/]*)$`)

// importFluentd converts the Fluentd chunks found in s.Path, and beside it
// when the path was given as a file prefix (path /x/buf → /x/buf.b….log).
func (s *File) importFluentd() (imported []*Chunk, problems []error) {
	var candidates []string
	for _, pattern := range []string{filepath.Join(s.Path, "*"), s.Path + ".*"} {
		m, _ := filepath.Glob(pattern)
		candidates = append(candidates, m...)
	}
	for _, path := range candidates {
		name := filepath.Base(path)
		if isSluiceChunk(name) || filepath.Ext(name) == ".meta" {
			continue
		}
		m := fluentdChunk.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		id, ok := idFromHex(m[3])
		if !ok {
			continue
		}
		c, err := s.importOne(path, id)
		if err != nil {
			problems = append(problems, fmt.Errorf("buffer: importing Fluentd chunk %s: %w", path, err))
			if merr := moveAside(path, s.BackupDir, "fluentd-corrupt", s.perm()); merr == nil {
				_ = moveAside(path+".meta", s.BackupDir, "fluentd-corrupt", s.perm())
			}
			continue
		}
		if c != nil {
			imported = append(imported, c)
			if s.Log != nil {
				s.Log.Info("imported a Fluentd buffer chunk", "path", path, "records", c.Records, "tag", c.Key.Tag)
			}
		}
	}
	return imported, problems
}

func (s *File) importOne(path string, id ID) (*Chunk, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &Chunk{ID: id, Created: time.Now()}
	records := -1
	if meta, err := os.ReadFile(path + ".meta"); err == nil {
		fm, err := parseFluentdMeta(meta)
		if err != nil {
			return nil, fmt.Errorf("meta: %w", err)
		}
		records = fm.records
		if fm.created > 0 {
			c.Created = time.Unix(fm.created, 0)
		}
		values := make([]string, len(s.Keys.Names))
		for i, name := range s.Keys.Names {
			values[i] = fm.variables[name]
		}
		c.Key = NewKey(fm.tag, fm.timekey, values)
	}
	if !s.Formatted {
		n, err := event.Validate(data)
		if err != nil {
			return nil, fmt.Errorf("not msgpack entries: %w", err)
		}
		records = n
	}
	if records < 0 {
		records = 0
	}
	if len(data) == 0 {
		removeFluentd(path)
		return nil, nil
	}
	if err := s.Create(c); err != nil {
		return nil, err
	}
	if err := s.Append(c, data, records); err != nil {
		return nil, err
	}
	if err := c.file.f.Sync(); err != nil {
		return nil, err
	}
	if err := s.Enqueue(c); err != nil {
		return nil, err
	}
	removeFluentd(path)
	return c, nil
}

func removeFluentd(path string) {
	os.Remove(path)
	os.Remove(path + ".meta")
}

type fluentdMeta struct {
	records   int
	created   int64
	timekey   int64
	tag       string
	variables map[string]string
}

// parseFluentdMeta reads a buf_file .meta file, old or new layout.
func parseFluentdMeta(b []byte) (fluentdMeta, error) {
	var m fluentdMeta
	if len(b) > 6 && b[0] == 0xc1 && b[1] == 0x00 {
		n := int(binary.BigEndian.Uint32(b[2:6]))
		if n > len(b)-6 {
			return m, errors.New("truncated")
		}
		b = b[6 : 6+n]
	}
	n, b, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		return m, err
	}
	for ; n > 0; n-- {
		var key []byte
		if key, b, err = msgp.ReadMapKeyZC(b); err != nil {
			return m, err
		}
		v := b
		if b, err = msgp.Skip(b); err != nil {
			return m, err
		}
		v = v[:len(v)-len(b)]
		switch string(key) {
		case "s":
			if i, _, err := msgp.ReadInt64Bytes(v); err == nil {
				m.records = int(i)
			}
		case "c":
			if i, _, err := msgp.ReadInt64Bytes(v); err == nil {
				m.created = i
			}
		case "timekey":
			if i, _, err := msgp.ReadInt64Bytes(v); err == nil {
				m.timekey = i
			}
		case "tag":
			if s, ok := event.Value(v).Bytes(); ok {
				m.tag = string(s)
			}
		case "variables":
			m.variables = map[string]string{}
			_ = event.Record(v).Each(func(k []byte, val event.Value) bool {
				m.variables[string(k)] = val.String()
				return true
			})
		}
	}
	return m, nil
}

// FluentdChunkName returns the file name Fluentd's buf_file gives a staged
// (state 'b') or queued ('q') chunk; for tests that lay out such a
// directory.
func FluentdChunkName(state byte, id ID) string {
	return "buffer." + string(state) + id.String() + ".log"
}
