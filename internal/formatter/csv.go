package formatter

import (
	"bytes"
	"fmt"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// CSV prints the named fields as one CSV line.
type CSV struct {
	Fields      []string `conf:"fields,required" desc:"The record fields written, in this order."`
	Delimiter   string   `conf:"delimiter" desc:"What separates the fields on a line (\t for a tab)."`
	ForceQuotes bool     `conf:"force_quotes" desc:"Quote every field, not only those that need it."`
	AddNewline  bool     `conf:"add_newline" desc:"End each formatted event with a newline."`
	Newline

	paths [][]string
}

func init() {
	register("csv", "chosen fields as a CSV line", func() any {
		return &CSV{Delimiter: ",", ForceQuotes: true, AddNewline: true}
	})
}

// Configure implements plugin.Configurer.
func (f *CSV) Configure(*plugin.Context) error {
	switch f.Delimiter {
	case "\\t", "TAB":
		f.Delimiter = "\t"
	case "SPACE":
		f.Delimiter = " "
	}
	if len(f.Delimiter) != 1 {
		return fmt.Errorf("csv: delimiter must be one character, got %q", f.Delimiter)
	}
	if len(f.Fields) == 0 {
		return fmt.Errorf("csv: fields is empty")
	}
	var err error
	f.paths, err = recordPaths("csv", f.Fields)
	return err
}

// recordPaths reads field names (a, a.b, $.a.b) into record paths.
func recordPaths(formatter string, names []string) ([][]string, error) {
	paths := make([][]string, 0, len(names))
	for _, name := range names {
		p, err := buffer.RecordPath(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", formatter, err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// Format implements plugin.Formatter. Quotes double inside quoted values;
// a missing field prints as an empty (unquoted) value, like Ruby's CSV.
func (f *CSV) Format(dst []byte, _ string, _ event.Time, r event.Record) ([]byte, error) {
	var scratch []byte
	for i, p := range f.paths {
		if i > 0 {
			dst = append(dst, f.Delimiter...)
		}
		v, ok := r.Lookup(p)
		if !ok || (len(v) > 0 && v[0] == 0xc0) {
			continue
		}
		scratch = v.AppendText(scratch[:0])
		quote := f.ForceQuotes || bytes.ContainsAny(scratch, "\"\r\n"+f.Delimiter)
		if !quote {
			dst = append(dst, scratch...)
			continue
		}
		dst = append(dst, '"')
		dst = append(dst, bytes.ReplaceAll(scratch, []byte{'"'}, []byte{'"', '"'})...)
		dst = append(dst, '"')
	}
	if f.AddNewline {
		dst = f.Newline.append(dst)
	}
	return dst, nil
}
