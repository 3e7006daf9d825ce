package buffer

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sluice-log/sluice/internal/strftime"
)

// Template is an output parameter with chunk placeholders: ${tag},
// ${tag[N]} (negative N counts from the end), ${key} for record chunk keys,
// and strftime directives for the chunk's timekey. Templates are checked
// against the chunk keys when configured, so a placeholder that no chunk
// can resolve is a configuration error, not a surprise at flush time.
type Template struct {
	src   string
	parts []tmplPart
	time  bool
}

type tmplPart struct {
	lit    string
	tag    bool
	tagIdx int
	allTag bool
	keyIdx int // index into ChunkKeys.Names, or -1
}

// NewTemplate parses s and checks it against keys.
func NewTemplate(s string, keys ChunkKeys) (*Template, error) {
	t := &Template{src: s}
	rest := s
	for {
		i := strings.Index(rest, "${")
		if i < 0 {
			t.parts = append(t.parts, tmplPart{lit: rest, keyIdx: -1})
			break
		}
		t.parts = append(t.parts, tmplPart{lit: rest[:i], keyIdx: -1})
		end := strings.IndexByte(rest[i:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%q: unclosed ${", s)
		}
		name := rest[i+2 : i+end]
		rest = rest[i+end+1:]
		p := tmplPart{keyIdx: -1}
		switch {
		case name == "tag":
			p.tag, p.allTag = true, true
		case strings.HasPrefix(name, "tag[") && strings.HasSuffix(name, "]"):
			n, err := strconv.Atoi(name[4 : len(name)-1])
			if err != nil {
				return nil, fmt.Errorf("%q: bad placeholder ${%s}", s, name)
			}
			p.tag, p.tagIdx = true, n
		default:
			for idx, k := range keys.Names {
				if k == name {
					p.keyIdx = idx
				}
			}
			if p.keyIdx < 0 {
				return nil, fmt.Errorf("%q: placeholder ${%s} is not a chunk key (add it to <buffer %s>)", s, name, joinKeys(keys, name))
			}
		}
		if p.tag && !keys.Tag {
			return nil, fmt.Errorf("%q: placeholder ${%s} needs tag in the chunk keys (<buffer %s>)", s, name, joinKeys(keys, "tag"))
		}
		t.parts = append(t.parts, p)
	}
	t.time = strftime.HasTimeDirective(s)
	if t.time && !keys.Time {
		return nil, fmt.Errorf("%q: time placeholders need time in the chunk keys and a timekey (<buffer %s>)", s, joinKeys(keys, "time"))
	}
	return t, nil
}

func joinKeys(k ChunkKeys, add string) string {
	var names []string
	if k.Tag {
		names = append(names, "tag")
	}
	if k.Time {
		names = append(names, "time")
	}
	names = append(names, k.Names...)
	return strings.Join(append(names, add), ",")
}

// HasTime reports whether the template uses strftime directives.
func (t *Template) HasTime() bool { return t.time }

// String returns the source.
func (t *Template) String() string { return t.src }

// ErrCrossesPath is returned by Expand when a tag or record value would
// leave the place the template's literal text puts it.
var ErrCrossesPath = errors.New("placeholder value crosses a path boundary")

// crossesPath reports whether a value substituted into a template could
// reach outside the directory or prefix around it: a parent component
// (..), a leading separator, or a NUL byte, which no file name may hold.
// Tags and record values come from clients, so every plugin's templates
// are checked, as Fluentd (since 1.19.3) checks in extract_placeholders.
func crossesPath(v string) bool {
	if strings.IndexByte(v, 0) >= 0 || strings.HasPrefix(v, "/") || strings.HasPrefix(v, "\\") {
		return true
	}
	for len(v) > 0 {
		i := strings.IndexAny(v, "/\\")
		if i < 0 {
			return v == ".."
		}
		if v[:i] == ".." {
			return true
		}
		v = v[i+1:]
	}
	return false
}

// Expand resolves the template for a chunk key; loc is the timekey zone.
// A tag or record value that would cross a path boundary is refused with
// an error wrapping ErrCrossesPath: retrying cannot help.
func (t *Template) Expand(k Key, loc *time.Location) (string, error) {
	var b []byte
	var values []string
	var parts []string
	var at time.Time
	if t.time {
		at = time.Unix(k.Timekey, 0).In(loc)
	}
	for _, p := range t.parts {
		start := len(b)
		switch {
		case p.allTag:
			b = append(b, k.Tag...)
		case p.tag:
			if parts == nil {
				parts = strings.Split(k.Tag, ".")
			}
			i := p.tagIdx
			if i < 0 {
				i += len(parts)
			}
			if i >= 0 && i < len(parts) {
				b = append(b, parts[i]...)
			}
		case p.keyIdx >= 0:
			if values == nil {
				values = k.Values()
			}
			if p.keyIdx < len(values) {
				b = append(b, values[p.keyIdx]...)
			}
		case t.time:
			// Only literal text carries directives: a '%' inside a tag
			// or record value is data.
			b = strftime.Append(b, p.lit, at)
		default:
			b = append(b, p.lit...)
		}
		if (p.tag || p.keyIdx >= 0) && crossesPath(string(b[start:])) {
			return "", fmt.Errorf("%w: %q in %q", ErrCrossesPath, b[start:], t.src)
		}
	}
	return string(b), nil
}

// TimekeyFormat is Fluentd's strftime layout for a timekey's windows (its
// timekey_to_timeformat): as fine as the width, %Y%m%d for a day or more.
// out_file names its files with it, and s3 its %{time_slice}.
func TimekeyFormat(timekey time.Duration) string {
	switch {
	case timekey < time.Minute:
		return "%Y%m%d%H%M%S"
	case timekey < time.Hour:
		return "%Y%m%d%H%M"
	case timekey < 24*time.Hour:
		return "%Y%m%d%H"
	}
	return "%Y%m%d"
}
