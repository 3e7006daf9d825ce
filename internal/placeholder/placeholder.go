// Package placeholder is Fluentd's record_transformer placeholders, which
// other plugins take too (elasticsearch_dynamic): ${tag}, ${tag_parts[N]},
// ${tag_prefix[N]}, ${tag_suffix[N]}, ${hostname}, ${time}, ${key} and
// ${record["a"]["b"]} (also with single quotes). N may be negative, from
// the end. A placeholder naming a field the record lacks is left as
// written, as Fluentd leaves it. Any other ${...} is Ruby, and an error.
package placeholder

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/strftime"
)

// Template is a parsed string with placeholders.
type Template struct{ parts []part }

type kind uint8

const (
	lit kind = iota
	tagKind
	tagParts
	tagPrefix
	tagSuffix
	hostnameKind
	timeKind
	recordKind
)

type part struct {
	kind kind
	lit  string // the literal, or the placeholder as written
	idx  int
	path []string
}

// Parse reads s.
func Parse(s string) (*Template, error) {
	var parts []part
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			if s != "" {
				parts = append(parts, part{kind: lit, lit: s})
			}
			return &Template{parts: parts}, nil
		}
		if i > 0 {
			parts = append(parts, part{kind: lit, lit: s[:i]})
		}
		end := strings.IndexByte(s[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("unclosed ${ in %q", s)
		}
		p, err := parsePlaceholder(s[i+2 : i+end])
		if err != nil {
			return nil, err
		}
		p.lit = s[i : i+end+1]
		parts = append(parts, p)
		s = s[i+end+1:]
	}
}

// Static reports whether the template has no placeholder.
func (t *Template) Static() bool {
	for _, p := range t.parts {
		if p.kind != lit {
			return false
		}
	}
	return true
}

// LoneRecord returns the record path when the template is exactly one
// record placeholder (record_transformer's auto_typecast keeps its type).
func (t *Template) LoneRecord() ([]string, bool) {
	if len(t.parts) != 1 || t.parts[0].kind != recordKind {
		return nil, false
	}
	return t.parts[0].path, true
}

func parsePlaceholder(name string) (part, error) {
	indexed := func(prefix string) (int, bool, error) {
		if !strings.HasPrefix(name, prefix+"[") || !strings.HasSuffix(name, "]") {
			return 0, false, nil
		}
		n, err := strconv.Atoi(name[len(prefix)+1 : len(name)-1])
		if err != nil {
			return 0, true, fmt.Errorf("bad index in ${%s}", name)
		}
		return n, true, nil
	}
	switch name {
	case "tag":
		return part{kind: tagKind}, nil
	case "hostname":
		return part{kind: hostnameKind}, nil
	case "time":
		return part{kind: timeKind}, nil
	}
	for _, k := range []struct {
		prefix string
		kind   kind
	}{{"tag_parts", tagParts}, {"tag_prefix", tagPrefix}, {"tag_suffix", tagSuffix}} {
		n, ok, err := indexed(k.prefix)
		if err != nil {
			return part{}, err
		}
		if ok {
			return part{kind: k.kind, idx: n}, nil
		}
	}
	if strings.HasPrefix(name, "record[") {
		path, err := parseRecordIndex(name[len("record"):])
		if err != nil {
			return part{}, fmt.Errorf("${%s}: %w", name, err)
		}
		return part{kind: recordKind, path: path}, nil
	}
	if strings.ContainsAny(name, "[]().() ") {
		return part{}, fmt.Errorf("${%s} is Ruby, which needs enable_ruby (not supported)", name)
	}
	return part{kind: recordKind, path: []string{name}}, nil
}

// parseRecordIndex reads ["a"]['b'] into {"a","b"}.
func parseRecordIndex(s string) ([]string, error) {
	var path []string
	for s != "" {
		if len(s) < 4 || s[0] != '[' || (s[1] != '"' && s[1] != '\'') {
			return nil, fmt.Errorf("want [\"key\"]")
		}
		q := s[1]
		end := strings.IndexByte(s[2:], q)
		if end < 0 || len(s) < end+4 || s[2+end+1] != ']' {
			return nil, fmt.Errorf("unclosed [\"key\"]")
		}
		path = append(path, s[2:2+end])
		s = s[2+end+2:]
	}
	return path, nil
}

// Render appends the template for an event with tag on hostname.
func (t *Template) Render(dst []byte, tag, hostname string, e *event.Entry) []byte {
	for _, p := range t.parts {
		switch p.kind {
		case lit:
			dst = append(dst, p.lit...)
		case tagKind:
			dst = append(dst, tag...)
		case hostnameKind:
			dst = append(dst, hostname...)
		case timeKind:
			dst = strftime.Append(dst, "%Y-%m-%d %H:%M:%S %z", e.Time.Std())
		case tagParts, tagPrefix, tagSuffix:
			dst = appendTagPart(dst, tag, p)
		case recordKind:
			if v, ok := e.Record.Lookup(p.path); ok {
				dst = v.AppendText(dst)
			} else {
				dst = append(dst, p.lit...)
			}
		}
	}
	return dst
}

func appendTagPart(dst []byte, tag string, p part) []byte {
	parts := strings.Count(tag, ".") + 1
	i := p.idx
	if i < 0 {
		i += parts
	}
	if i < 0 || i >= parts {
		return append(dst, p.lit...)
	}
	// Offsets of the i-th part without splitting the tag.
	start, end := 0, len(tag)
	for k, pos := 0, 0; k <= i; k++ {
		start = pos
		if j := strings.IndexByte(tag[pos:], '.'); j >= 0 {
			end = pos + j
			pos = end + 1
		} else {
			end = len(tag)
		}
	}
	switch p.kind {
	case tagPrefix:
		return append(dst, tag[:end]...)
	case tagSuffix:
		return append(dst, tag[start:]...)
	}
	return append(dst, tag[start:end]...)
}
