package formatter

import (
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// TSV prints the named fields joined by a delimiter, unquoted, as
// Fluentd's tsv formatter does (a missing field prints as nothing).
type TSV struct {
	Keys       []string `conf:"keys,required" desc:"The record fields written, in this order."`
	Delimiter  string   `conf:"delimiter" desc:"What separates the fields (a tab by default; \t for a tab)."`
	AddNewline bool     `conf:"add_newline" desc:"End each formatted event with a newline."`
	Newline

	paths [][]string
}

func init() {
	register("tsv", "chosen fields separated by tabs", func() any { return &TSV{Delimiter: "\t", AddNewline: true} })
}

// Configure implements plugin.Configurer.
func (f *TSV) Configure(*plugin.Context) error {
	if f.Delimiter == `\t` {
		f.Delimiter = "\t"
	}
	var err error
	f.paths, err = recordPaths("tsv", f.Keys)
	return err
}

// Format implements plugin.Formatter.
func (f *TSV) Format(dst []byte, _ string, _ event.Time, r event.Record) ([]byte, error) {
	for i, p := range f.paths {
		if i > 0 {
			dst = append(dst, f.Delimiter...)
		}
		if v, ok := r.Lookup(p); ok && !(len(v) > 0 && v[0] == 0xc0) {
			dst = v.AppendText(dst)
		}
	}
	if f.AddNewline {
		dst = f.Newline.append(dst)
	}
	return dst, nil
}
