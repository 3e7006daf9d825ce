package formatter

import (
	"bytes"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Stdout prints "time tag: <record>" with the record rendered by the
// output_type formatter (json by default): what out_stdout shows.
type Stdout struct {
	OutputType string `conf:"output_type" desc:"The formatter that renders the record after the time and tag (json, hash, ltsv...)."`
	TimeOptions

	sub plugin.Formatter
}

func init() {
	register("stdout", "time, tag and the record for humans", func() any {
		return &Stdout{OutputType: "json", TimeOptions: defaultTimeOptions("%Y-%m-%d %H:%M:%S.%N %z")}
	})
}

// Configure implements plugin.Configurer.
func (f *Stdout) Configure(c *plugin.Context) error {
	if err := f.TimeOptions.configure(); err != nil {
		return err
	}
	sub, err := c.Build.Formatter(nil, f.OutputType)
	if err != nil {
		return err
	}
	f.sub = sub
	return nil
}

// Format implements plugin.Formatter.
func (f *Stdout) Format(dst []byte, tag string, t event.Time, r event.Record) ([]byte, error) {
	dst = f.appendTime(dst, t)
	dst = append(dst, ' ')
	dst = append(dst, tag...)
	dst = append(dst, ':', ' ')
	start := len(dst)
	dst, err := f.sub.Format(dst, tag, t, r)
	dst = append(dst[:start], bytes.TrimRight(dst[start:], "\r\n")...)
	return append(dst, '\n'), err
}
