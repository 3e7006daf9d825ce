package buffer

import (
	"fmt"
	"strings"
)

// ChunkKeys is the parsed argument of <buffer>.
type ChunkKeys struct {
	Tag  bool
	Time bool
	// Names are the record keys in order, as written ("path", "$.a.b").
	Names []string
	// Paths are Names split for event.Record.Lookup.
	Paths [][]string
}

// ParseChunkKeys parses "tag,time,key,$.a.b".
func ParseChunkKeys(arg string) (ChunkKeys, error) {
	var k ChunkKeys
	if strings.TrimSpace(arg) == "" {
		return k, nil
	}
	seen := map[string]bool{}
	for _, raw := range strings.Split(arg, ",") {
		name := strings.TrimSpace(raw)
		if name == "" {
			return k, fmt.Errorf("empty chunk key in %q", arg)
		}
		if seen[name] {
			return k, fmt.Errorf("chunk key %q given twice", name)
		}
		seen[name] = true
		switch name {
		case "tag":
			k.Tag = true
		case "time":
			k.Time = true
		default:
			path, err := RecordPath(name)
			if err != nil {
				return k, err
			}
			k.Names = append(k.Names, name)
			k.Paths = append(k.Paths, path)
		}
	}
	return k, nil
}

// RecordPath turns a record key ("log") or Fluentd record accessor
// ("$.kubernetes.pod_name", "$['a']['b']") into a path of keys.
func RecordPath(s string) ([]string, error) {
	if !strings.HasPrefix(s, "$") {
		return []string{s}, nil
	}
	rest := s[1:]
	var path []string
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "."):
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			if end == 0 {
				return nil, fmt.Errorf("record accessor %q: empty key", s)
			}
			path = append(path, rest[:end])
			rest = rest[end:]
		case strings.HasPrefix(rest, "['") || strings.HasPrefix(rest, `["`):
			q := rest[1]
			end := strings.Index(rest[2:], string(q)+"]")
			if end < 0 {
				return nil, fmt.Errorf("record accessor %q: unclosed bracket", s)
			}
			path = append(path, rest[2:2+end])
			rest = rest[2+end+2:]
		default:
			return nil, fmt.Errorf("record accessor %q: expected '.' or ['key']", s)
		}
	}
	if len(path) == 0 {
		return nil, fmt.Errorf("record accessor %q: no keys", s)
	}
	return path, nil
}
