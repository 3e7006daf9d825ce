package formatter

import (
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// OutFile prints "time<TAB>tag<TAB>json", the default of the file output.
type OutFile struct {
	Delimiter  string `conf:"delimiter" desc:"What separates the fields on a line (\t for a tab)."`
	OutputTag  bool   `conf:"output_tag" desc:"Write the tag on each line."`
	OutputTime bool   `conf:"output_time" desc:"Write the event time on each line."`
	TimeOptions
	Newline

	delim string
}

func init() {
	register("out_file", "time, tag and JSON record separated by a delimiter", func() any {
		return &OutFile{Delimiter: "\t", OutputTag: true, OutputTime: true,
			TimeOptions: defaultTimeOptions("%Y-%m-%dT%H:%M:%S%:z")}
	})
}

// Configure implements plugin.Configurer.
func (f *OutFile) Configure(*plugin.Context) error {
	switch f.Delimiter {
	case "SPACE", "space":
		f.delim = " "
	case "COMMA", "comma":
		f.delim = ","
	case "TAB", "tab", "\\t":
		f.delim = "\t"
	default:
		f.delim = f.Delimiter
	}
	return f.TimeOptions.configure()
}

// Format implements plugin.Formatter.
func (f *OutFile) Format(dst []byte, tag string, t event.Time, r event.Record) ([]byte, error) {
	if f.OutputTime {
		dst = f.appendTime(dst, t)
		dst = append(dst, f.delim...)
	}
	if f.OutputTag {
		dst = append(dst, tag...)
		dst = append(dst, f.delim...)
	}
	dst, err := r.AppendJSON(dst)
	return f.Newline.append(dst), err
}
