package transform

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Parser is Fluentd's parser filter: it parses one field of each record
// with <parse> and replaces the record with the result.
//
//	reserve_data           keep the original fields too (parsed ones win)
//	remove_key_name_field  with reserve_data, drop the parsed field
//	reserve_time           keep the event's time even when the text has one
//	inject_key_prefix      prefix the parsed keys
//	hash_value_field       put the parsed fields under this one key
//	emit_invalid_record_to_error  send records that do not parse to @ERROR
//	                       (otherwise they are dropped, or kept as they
//	                       were with reserve_data)
type Parser struct {
	KeyName                string          `conf:"key_name,required" desc:"The field whose text is parsed."`
	ReserveData            bool            `conf:"reserve_data" desc:"Keep the original record's fields beside the parsed ones."`
	ReserveTime            bool            `conf:"reserve_time" desc:"Keep the record's own time even when the parsed text has one."`
	RemoveKeyNameField     bool            `conf:"remove_key_name_field" desc:"Remove key_name from the record once parsed (with reserve_data)."`
	ReplaceInvalidSequence bool            `conf:"replace_invalid_sequence" desc:"Replace invalid UTF-8 in the text before parsing."`
	InjectKeyPrefix        string          `conf:"inject_key_prefix" desc:"Prefix the parsed fields' names with this."`
	HashValueField         string          `conf:"hash_value_field" desc:"Put the parsed fields in a map under this field instead of at the top level."`
	EmitInvalidRecordToErr bool            `conf:"emit_invalid_record_to_error" desc:"Send records that do not parse to @ERROR; otherwise they are dropped and counted."`
	Parse                  *config.Element `section:"parse" desc:"The parser, required: <parse> with @type."`

	errorOut plugin.Emitter
	log      *slog.Logger

	// Filter runs on the pipeline's goroutines; parsing is serialised
	// per call by taking the scratch state from a channel.
	state chan *parserState
}

type parserState struct {
	parser  plugin.Parser
	parsed  []byte
	out     []byte
	invalid event.Builder
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindFilter, Type: "parser", Summary: "parse a field of each record with <parse>",
		Sections: map[string]plugin.Section{"parse": {Kind: plugin.KindParser}},
		New:      func() any { return &Parser{EmitInvalidRecordToErr: true} }})
}

// parserPool is how many streams may be parsed at once by one filter.
const parserPool = 4

// Configure implements plugin.Configurer.
func (p *Parser) Configure(c *plugin.Context) error {
	if p.Parse == nil {
		return fmt.Errorf("the parser filter needs a <parse> section")
	}
	p.errorOut, p.log = c.ErrorOut, c.Logger
	p.state = make(chan *parserState, parserPool)
	for i := 0; i < parserPool; i++ {
		pr, err := c.Build.Parser(p.Parse, "")
		if err != nil {
			return err
		}
		if est, ok := pr.(plugin.CurrentTimeEstimator); ok {
			est.SetEstimateCurrentEvent(false) // no time in the text: keep the event's
		}
		p.state <- &parserState{parser: pr}
	}
	return nil
}

// Filter implements plugin.Filter.
func (p *Parser) Filter(ctx context.Context, s event.Stream, b *event.Builder) (event.Stream, error) {
	st := <-p.state
	defer func() { p.state <- st }()
	st.invalid.Reset()
	r := event.NewReader(s.Data)
	for r.Next() {
		e := r.Entry()
		if err := p.one(st, b, e); err != nil {
			if p.EmitInvalidRecordToErr {
				st.invalid.AppendRaw(e.Raw)
			} else if p.ReserveData {
				b.AppendRaw(e.Raw)
			}
			p.log.Debug("record not parsed", "tag", s.Tag, "key_name", p.KeyName, "err", err)
		}
	}
	if st.invalid.Len() > 0 {
		p.log.Warn("records that do not parse go to @ERROR", "tag", s.Tag, "records", st.invalid.Len(), "key_name", p.KeyName)
		if err := p.errorOut.Emit(ctx, st.invalid.Stream(s.Tag)); err != nil {
			return s, err
		}
	}
	return b.Stream(s.Tag), r.Err()
}

func (p *Parser) one(st *parserState, b *event.Builder, e *event.Entry) error {
	v, ok := e.Record.Get(p.KeyName)
	if !ok {
		return fmt.Errorf("no field %q", p.KeyName)
	}
	text, ok := v.Bytes()
	if !ok {
		text = v.AppendText(nil)
	}
	found := false
	err := st.parser.Parse(text, func(t event.Time, parsed []byte) error {
		found = true
		if t == 0 || p.ReserveTime {
			t = e.Time
		}
		st.parsed = p.shape(st.parsed[:0], parsed)
		rec := st.parsed
		if p.ReserveData {
			st.out = mergeRecords(st.out[:0], e.Record, event.Record(st.parsed), p.removedKey())
			rec = st.out
		}
		b.Append(t, rec)
		return nil
	})
	if err == nil && !found {
		return fmt.Errorf("the parser returned nothing")
	}
	return err
}

func (p *Parser) removedKey() string {
	if p.RemoveKeyNameField {
		return p.KeyName
	}
	return ""
}

// shape applies inject_key_prefix and hash_value_field to a parsed record.
func (p *Parser) shape(dst, parsed []byte) []byte {
	if p.InjectKeyPrefix == "" && p.HashValueField == "" {
		return append(dst, parsed...)
	}
	rec := event.Record(parsed)
	if p.HashValueField != "" {
		dst = msgp.AppendMapHeader(dst, 1)
		dst = msgp.AppendString(dst, p.HashValueField)
	}
	dst = msgp.AppendMapHeader(dst, uint32(rec.Len()))
	_ = rec.Each(func(k []byte, v event.Value) bool {
		dst = msgp.AppendString(dst, p.InjectKeyPrefix+string(k))
		dst = append(dst, v...)
		return true
	})
	return dst
}

// mergeRecords writes base's fields, except those parsed sets and except
// drop, followed by parsed's: Ruby's base.merge(parsed).
func mergeRecords(dst []byte, base, parsed event.Record, drop string) []byte {
	n := uint32(parsed.Len())
	keep := func(k []byte) bool {
		if drop != "" && string(k) == drop {
			return false
		}
		_, dup := parsed.Get(string(k))
		return !dup
	}
	_ = base.Each(func(k []byte, _ event.Value) bool {
		if keep(k) {
			n++
		}
		return true
	})
	dst = msgp.AppendMapHeader(dst, n)
	_ = base.Each(func(k []byte, v event.Value) bool {
		if keep(k) {
			dst = msgp.AppendStringFromBytes(dst, k)
			dst = append(dst, v...)
		}
		return true
	})
	_ = parsed.Each(func(k []byte, v event.Value) bool {
		dst = msgp.AppendStringFromBytes(dst, k)
		dst = append(dst, v...)
		return true
	})
	return dst
}
