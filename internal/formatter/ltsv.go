package formatter

import (
	"bytes"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// LTSV prints label:value pairs separated by tabs.
type LTSV struct {
	Delimiter      string `conf:"delimiter" desc:"What separates the fields on a line (\t for a tab)."`
	LabelDelimiter string `conf:"label_delimiter" desc:"What separates a label from its value."`
	Replacement    string `conf:"replacement" desc:"What a delimiter or label delimiter inside a value is replaced with."`
	AddNewline     bool   `conf:"add_newline" desc:"End each formatted event with a newline."`
	Newline
}

func init() {
	register("ltsv", "Labeled Tab-Separated Values", func() any {
		return &LTSV{Delimiter: "\t", LabelDelimiter: ":", Replacement: " ", AddNewline: true}
	})
}

// Format implements plugin.Formatter. Delimiters inside values are
// replaced so that the line stays parseable.
func (f *LTSV) Format(dst []byte, _ string, _ event.Time, r event.Record) ([]byte, error) {
	first := true
	var scratch []byte
	err := r.Each(func(k []byte, v event.Value) bool {
		if !first {
			dst = append(dst, f.Delimiter...)
		}
		first = false
		dst = append(dst, k...)
		dst = append(dst, f.LabelDelimiter...)
		scratch = v.AppendText(scratch[:0])
		scratch = bytes.ReplaceAll(scratch, []byte(f.Delimiter), []byte(f.Replacement))
		dst = append(dst, scratch...)
		return true
	})
	if f.AddNewline {
		dst = f.Newline.append(dst)
	}
	return dst, err
}

var _ plugin.Formatter = (*LTSV)(nil)
