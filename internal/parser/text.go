package parser

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"regexp"
	"strings"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// None puts the whole text in one field.
type None struct {
	MessageKey string `conf:"message_key" desc:"The field the whole text is put in."`
	Common
	buf []byte
}

// LTSV parses label:value pairs.
type LTSV struct {
	Delimiter        string `conf:"delimiter" desc:"What separates the fields (\t for a tab)."`
	DelimiterPattern string `conf:"delimiter_pattern" desc:"A regular expression that separates the fields, instead of delimiter."`
	LabelDelimiter   string `conf:"label_delimiter" desc:"What separates a label from its value."`
	Common

	split  *regexp.Regexp
	fields []field
	buf    []byte
}

// CSV parses delimited values into the named keys (csv, and tsv with a tab).
type CSV struct {
	Keys       []string `conf:"keys,required" desc:"The field names of the columns, in order."`
	Delimiter  string   `conf:"delimiter" desc:"What separates the fields (\t for a tab)."`
	ParserType string   `conf:"parser_engine" alias:"parser_type" enum:"normal,fast" desc:"Accepted for Fluentd compatibility (normal, fast; parser_type is its old name); one parser serves both." ignored:"one CSV parser serves both"`
	Common

	tab    bool
	fields []field
	buf    []byte
}

func init() {
	register("none", "the whole text in one field", func() any {
		c := defaultCommon("")
		c.EstimateCurrentEvent = true
		return &None{MessageKey: "message", Common: c}
	})
	register("ltsv", "Labeled Tab-Separated Values", func() any {
		return &LTSV{Delimiter: "\t", LabelDelimiter: ":", Common: defaultCommon("time")}
	})
	register("csv", "comma-separated values into keys", func() any {
		return &CSV{Delimiter: ",", ParserType: "normal", Common: defaultCommon("time")}
	})
	register("tsv", "tab-separated values into keys", func() any {
		return &CSV{Delimiter: "\t", tab: true, ParserType: "normal", Common: defaultCommon("time")}
	})
}

// Configure implements plugin.Configurer.
func (p *None) Configure(*plugin.Context) error { return p.Common.configure() }

// Parse implements plugin.Parser.
func (p *None) Parse(text []byte, emit func(event.Time, []byte) error) error {
	rec, t, err := p.record(p.buf[:0], []field{{key: p.MessageKey, val: string(text)}})
	p.buf = rec
	if err != nil {
		return err
	}
	return emit(p.eventTime(t), rec)
}

// Configure implements plugin.Configurer.
func (p *LTSV) Configure(*plugin.Context) error {
	if p.DelimiterPattern != "" {
		re, err := CompileRuby(p.DelimiterPattern)
		if err != nil {
			return fmt.Errorf("delimiter_pattern: %w", err)
		}
		p.split = re
	}
	if p.LabelDelimiter == "" {
		return fmt.Errorf("label_delimiter is empty")
	}
	return p.Common.configure()
}

// Parse implements plugin.Parser.
func (p *LTSV) Parse(text []byte, emit func(event.Time, []byte) error) error {
	line := strings.TrimRight(string(text), "\r\n")
	var parts []string
	if p.split != nil {
		parts = p.split.Split(line, -1)
	} else {
		parts = strings.Split(line, unescapeDelimiter(p.Delimiter))
	}
	p.fields = p.fields[:0]
	for _, part := range parts {
		k, v, ok := strings.Cut(part, p.LabelDelimiter)
		if !ok {
			if part == "" {
				continue
			}
			return fmt.Errorf("%w: ltsv field %q has no %q", ErrNoMatch, part, p.LabelDelimiter)
		}
		p.fields = append(p.fields, field{key: k, val: v})
	}
	rec, t, err := p.record(p.buf[:0], p.fields)
	p.buf = rec
	if err != nil {
		return err
	}
	return emit(p.eventTime(t), rec)
}

func unescapeDelimiter(d string) string {
	switch d {
	case `\t`:
		return "\t"
	case `\n`:
		return "\n"
	}
	return d
}

// Configure implements plugin.Configurer.
func (p *CSV) Configure(*plugin.Context) error {
	p.Delimiter = unescapeDelimiter(p.Delimiter)
	if len([]rune(p.Delimiter)) != 1 {
		return fmt.Errorf("delimiter must be one character, got %q", p.Delimiter)
	}
	if len(p.Keys) == 0 {
		return fmt.Errorf("keys is empty")
	}
	return p.Common.configure()
}

// Parse implements plugin.Parser. csv honours quotes (Ruby's CSV); tsv
// splits on tabs only, as Fluentd's tsv parser does.
func (p *CSV) Parse(text []byte, emit func(event.Time, []byte) error) error {
	line := bytes.TrimRight(text, "\r\n")
	var values []string
	if p.tab {
		values = strings.Split(string(line), p.Delimiter)
	} else {
		r := csv.NewReader(bytes.NewReader(line))
		r.Comma = []rune(p.Delimiter)[0]
		r.FieldsPerRecord = -1
		r.LazyQuotes = true
		rec, err := r.Read()
		if err != nil {
			return fmt.Errorf("%w: csv: %v", ErrNoMatch, err)
		}
		values = rec
	}
	p.fields = p.fields[:0]
	for i, k := range p.Keys {
		if i < len(values) {
			p.fields = append(p.fields, field{key: k, val: values[i]})
		} else {
			p.fields = append(p.fields, field{key: k, null: true})
		}
	}
	rec, t, err := p.record(p.buf[:0], p.fields)
	p.buf = rec
	if err != nil {
		return err
	}
	return emit(p.eventTime(t), rec)
}
