package transform

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/placeholder"
	"github.com/sluice-log/sluice/internal/plugin"
)

// RecordTransformer sets fields from <record>, whose values may use
// Fluentd's placeholders:
//
//	${tag} ${tag_parts[N]} ${tag_prefix[N]} ${tag_suffix[N]} ${hostname}
//	${time} ${key} ${record["key"]} ${record["a"]["b"]}
//
// N may be negative (from the end). A placeholder naming a field the record
// lacks is left as written, as Fluentd leaves it. enable_ruby is refused:
// Sluice does not run Ruby.
type RecordTransformer struct {
	Record       *config.Element `section:"record" desc:"The fields to set, as key value lines; values may use ${tag}, ${tag_parts[N]}, ${hostname}, ${time} and ${record fields}."`
	EnableRuby   bool            `conf:"enable_ruby" desc:"Accepted: the placeholders that need no Ruby (${record[\"a\"][\"b\"]}, ${tag_parts[N]}, ${hostname} ...) work as with it; an expression that needs Ruby is an error naming it."`
	AutoTypecast bool            `conf:"auto_typecast" desc:"Keep a value that is exactly one ${field} as the field's type instead of a string."`
	RenewRecord  bool            `conf:"renew_record" desc:"Start each record empty, with only <record>'s fields (and keep_keys)."`
	KeepKeys     []string        `conf:"keep_keys" desc:"Fields of the old record kept with renew_record."`
	RemoveKeys   []string        `conf:"remove_keys" desc:"Fields removed from each record."`
	RenewTimeKey string          `conf:"renew_time_key" desc:"Set each event's time from this field of the new record, in seconds since the epoch (a number, or a string holding one); an event without it, or with a value that is not a number, keeps its time."`

	fields   []rtField
	skip     map[string]bool // keys not copied from the original record
	keep     map[string]bool
	hostname string
	pool     sync.Pool
}

type rtField struct {
	key  string
	tmpl *placeholder.Template
}

type rtScratch struct{ body, text []byte }

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindFilter, Type: "record_transformer", Summary: "add, change or remove record fields",
		New: func() any { return &RecordTransformer{} }})
}

// Configure implements plugin.Configurer.
func (t *RecordTransformer) Configure(c *plugin.Context) error {
	if len(t.KeepKeys) > 0 && !t.RenewRecord {
		return fmt.Errorf("keep_keys works only with renew_record true")
	}
	t.hostname = c.Hostname
	t.skip = map[string]bool{}
	for _, k := range t.RemoveKeys {
		t.skip[k] = true
	}
	t.keep = map[string]bool{}
	for _, k := range t.KeepKeys {
		t.keep[k] = true
	}
	if t.Record != nil {
		t.Record.MarkAllUsed()
		for _, p := range t.Record.Params {
			tmpl, err := placeholder.Parse(p.Value)
			if err != nil {
				if t.EnableRuby {
					// enable_ruby: the forms that need no Ruby (record["a"]["b"],
					// tag_parts[N], hostname) work; the rest cannot.
					return config.Errorf(p.Pos, "%s: %v; with enable_ruby Sluice takes ${record[\"key\"]}, ${tag_parts[N]}, ${hostname} and the other placeholders, but runs no Ruby", p.Key, err)
				}
				return config.Errorf(p.Pos, "%s: %v", p.Key, err)
			}
			t.fields = append(t.fields, rtField{key: p.Key, tmpl: tmpl})
			t.skip[p.Key] = true
		}
		if len(t.Record.Elements) > 0 {
			return config.Errorf(t.Record.Elements[0].Pos, "<record> takes only key value lines")
		}
	}
	t.pool.New = func() any { return new(rtScratch) }
	return nil
}

// Filter implements plugin.Filter.
func (t *RecordTransformer) Filter(_ context.Context, s event.Stream, b *event.Builder) (event.Stream, error) {
	sc := t.pool.Get().(*rtScratch)
	defer t.pool.Put(sc)
	r := event.NewReader(s.Data)
	for r.Next() {
		e := r.Entry()
		rec, err := t.transform(sc, s.Tag, e)
		if err != nil {
			return s, err
		}
		b.Append(t.eventTime(sc, e.Time, rec), rec)
	}
	if err := r.Err(); err != nil {
		return s, err
	}
	return b.Stream(s.Tag), nil
}

// eventTime is renew_time_key's time from the new record, or old.
func (t *RecordTransformer) eventTime(sc *rtScratch, old event.Time, rec []byte) event.Time {
	if t.RenewTimeKey == "" {
		return old
	}
	v, ok := event.Record(rec).Get(t.RenewTimeKey)
	if !ok {
		return old
	}
	sc.text = v.AppendText(sc.text[:0])
	secs, err := strconv.ParseFloat(string(sc.text), 64)
	if err != nil || math.IsNaN(secs) || math.IsInf(secs, 0) || math.Abs(secs) > maxUnixSeconds {
		return old
	}
	whole, frac := math.Modf(secs)
	return event.Time(int64(whole)*int64(time.Second) + int64(math.Round(frac*1e9)))
}

// maxUnixSeconds keeps a renewed time within what event.Time holds.
const maxUnixSeconds = float64(math.MaxInt64 / int64(time.Second))

// transform builds the new record in sc.body and returns it; the slice is
// valid until the next call.
func (t *RecordTransformer) transform(sc *rtScratch, tag string, e *event.Entry) ([]byte, error) {
	body := event.OpenMap(sc.body)
	var n uint32
	err := e.Record.Each(func(k []byte, v event.Value) bool {
		if t.RenewRecord && !t.keep[string(k)] || t.skip[string(k)] { // lookups with string(k) do not allocate
			return true
		}
		body = msgp.AppendStringFromBytes(body, k)
		body = append(body, v...)
		n++
		return true
	})
	if err != nil {
		return nil, err
	}
	for _, f := range t.fields {
		body = msgp.AppendString(body, f.key)
		if raw, ok := t.typed(f, e.Record); ok {
			body = append(body, raw...)
		} else {
			sc.text = f.tmpl.Render(sc.text[:0], tag, t.hostname, e)
			body = msgp.AppendStringFromBytes(body, sc.text)
		}
		n++
	}
	sc.body = body
	return event.CloseMap(body, n), nil
}

// typed returns the raw value when auto_typecast keeps a lone record
// placeholder's type.
func (t *RecordTransformer) typed(f rtField, r event.Record) (event.Value, bool) {
	path, lone := f.tmpl.LoneRecord()
	if !t.AutoTypecast || !lone {
		return nil, false
	}
	return r.Lookup(path)
}
