package core

import (
	"context"
	"io"
	"os"
	"sync"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Stdout prints events to standard output, formatted by <format> (the
// stdout formatter by default: "time tag: {json}").
type Stdout struct {
	Format *config.Element `section:"format" desc:"How each event is printed: a formatter, stdout (time, tag and JSON) unless @type says otherwise."`

	printer
}

var (
	_ plugin.SyncOutput     = (*Stdout)(nil)
	_ plugin.BufferedOutput = (*Stdout)(nil)
)

func init() {
	format := map[string]plugin.Section{"format": {Kind: plugin.KindFormatter, Default: "stdout"}}
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "stdout", Summary: "print events to standard output",
		DoneWithDataOnReturn: true, Inject: true, Sections: format, New: func() any { return &Stdout{printer: printer{w: os.Stdout}} }})
	plugin.Register(plugin.Info{Kind: plugin.KindFilter, Type: "stdout", Summary: "print events and pass them on",
		Sections: format, New: func() any { return &StdoutFilter{printer: printer{w: os.Stdout}} }})
}

// printer formats streams and writes each one with a single Write.
type printer struct {
	w   io.Writer
	f   plugin.Formatter
	mu  sync.Mutex // guards buf and serialises writes to w
	buf []byte
}

func (p *printer) configure(c *plugin.Context, sec *config.Element) error {
	f, err := c.Build.Formatter(sec, "stdout")
	p.f = f
	return err
}

func (p *printer) print(tag string, data []byte) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = p.buf[:0]
	r := event.NewReader(data)
	for r.Next() {
		e := r.Entry()
		var err error
		if p.buf, err = p.f.Format(p.buf, tag, e.Time, e.Record); err != nil {
			return err
		}
	}
	if err := r.Err(); err != nil {
		return err
	}
	_, err := p.w.Write(p.buf)
	return err
}

// Configure implements plugin.Configurer.
func (s *Stdout) Configure(c *plugin.Context) error { return s.configure(c, s.Format) }

// Process implements plugin.SyncOutput.
func (s *Stdout) Process(_ context.Context, st event.Stream) error { return s.print(st.Tag, st.Data) }

// Write implements plugin.BufferedOutput.
func (s *Stdout) Write(_ context.Context, c *plugin.Chunk) error { return s.print(c.Key.Tag, c.Data) }

// StdoutFilter prints events and passes them on unchanged.
type StdoutFilter struct {
	Format *config.Element `section:"format" desc:"How each event is printed: a formatter, stdout (time, tag and JSON) unless @type says otherwise."`

	printer
}

// Configure implements plugin.Configurer.
func (s *StdoutFilter) Configure(c *plugin.Context) error { return s.configure(c, s.Format) }

// Filter implements plugin.Filter.
func (s *StdoutFilter) Filter(_ context.Context, st event.Stream, _ *event.Builder) (event.Stream, error) {
	return st, s.print(st.Tag, st.Data)
}
