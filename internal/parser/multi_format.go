package parser

import (
	"errors"
	"fmt"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// MultiFormat tries several parsers in order, as
// fluent-plugin-multi-format-parser does: each <pattern> is a parser
// section whose format names its type; the first that matches a text
// gives its events.
type MultiFormat struct {
	Patterns []*config.Element `section:"pattern" desc:"A parser to try, in order: format names its type (json, regexp with expression, none ...), and the rest of the section is that parser's parameters."`

	parsers []plugin.Parser
}

func init() {
	register("multi_format", "the first of several parsers that matches", func() any { return &MultiFormat{} })
}

// Configure implements plugin.Configurer.
func (p *MultiFormat) Configure(c *plugin.Context) error {
	if len(p.Patterns) == 0 {
		return errors.New("multi_format needs at least one <pattern>")
	}
	for _, pat := range p.Patterns {
		format, ok := pat.Get("format")
		if !ok || format == "" {
			return config.Errorf(pat.Pos, "<pattern> needs format")
		}
		sec := &config.Element{Name: "parse", Pos: pat.Pos, Elements: pat.Elements}
		for _, kv := range pat.Params {
			if kv.Key == "format" {
				if len(format) >= 2 && format[0] == '/' && format[len(format)-1] == '/' {
					// format /re/ is the regexp parser, as in v0.12.
					sec.Params = append(sec.Params, &config.Param{Key: "@type", Value: "regexp", Pos: kv.Pos},
						&config.Param{Key: "expression", Value: format, Pos: kv.Pos})
					continue
				}
				sec.Params = append(sec.Params, &config.Param{Key: "@type", Value: format, Pos: kv.Pos})
				continue
			}
			sec.Params = append(sec.Params, kv)
		}
		sub, err := c.Build.Parser(sec, "")
		if err != nil {
			return fmt.Errorf("<pattern> format %s: %w", format, err)
		}
		pat.MarkAllUsed()
		p.parsers = append(p.parsers, sub)
	}
	return nil
}

// Parse implements plugin.Parser.
func (p *MultiFormat) Parse(text []byte, emit func(event.Time, []byte) error) error {
	var errs []error
	var emitErr error
	taken := func(t event.Time, rec []byte) error {
		if err := emit(t, rec); err != nil {
			emitErr = err
			return err
		}
		return nil
	}
	for _, sub := range p.parsers {
		err := sub.Parse(text, taken)
		if err == nil || emitErr != nil {
			return err // what the events' consumer refused is not a mismatch
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("%w: no <pattern> matched: %w", ErrNoMatch, errors.Join(errs...))
}
