package elasticsearch

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/strftime"
)

// doc is what one event becomes in a _bulk request.
type doc struct {
	index, id, routing, parent, typ string
}

// fields are the record paths the output reads per event.
type fields struct {
	targetIndex, targetType, id, routing, parent, time []string
	removeOnUpdateKey                                  []string
}

func path(key string) ([]string, error) {
	if key == "" {
		return nil, nil
	}
	return buffer.RecordPath(key)
}

// lookupText returns a field's value as text.
func lookupText(r event.Record, p []string, scratch []byte) (string, bool) {
	if p == nil {
		return "", false
	}
	v, ok := r.Lookup(p)
	if !ok || (len(v) > 0 && v[0] == 0xc0) {
		return "", false
	}
	return string(v.AppendText(scratch[:0])), true
}

// appendDocument writes the event's document source as JSON: the record
// without remove_keys (and target_index_key), flattened when asked, with
// tag_key and @timestamp added.
func (o *Output) appendDocument(dst []byte, tag string, e *event.Entry, ts time.Time, skip map[string]bool) ([]byte, error) {
	dst = append(dst, '{')
	n := 0
	var err error
	each := e.Record.Each(func(k []byte, v event.Value) bool {
		if skip[string(k)] {
			return true
		}
		if o.FlattenHashes && len(v) > 0 && msgp.NextType(v) == msgp.MapType {
			dst, n, err = o.appendFlat(dst, n, string(k), v)
			return err == nil
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = event.AppendJSONString(dst, k)
		dst = append(dst, ':')
		dst, err = v.AppendJSON(dst)
		return err == nil
	})
	if each != nil {
		return dst, each
	}
	if err != nil {
		return dst, err
	}
	if o.IncludeTagKey {
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = event.AppendJSONString(dst, []byte(o.TagKey))
		dst = append(dst, ':')
		dst = event.AppendJSONString(dst, []byte(tag))
	}
	if o.addTimestamp && !ts.IsZero() {
		if n > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `"@timestamp":"`...)
		dst = o.appendTimestamp(dst, ts)
		dst = append(dst, '"')
	}
	return append(dst, '}'), nil
}

// appendFlat writes a map's fields as prefix_key pairs (flatten_hashes).
func (o *Output) appendFlat(dst []byte, n int, prefix string, m event.Value) ([]byte, int, error) {
	var err error
	each := event.Record(m).Each(func(k []byte, v event.Value) bool {
		key := prefix + o.FlattenHashesSeparator + string(k)
		if len(v) > 0 && msgp.NextType(v) == msgp.MapType {
			dst, n, err = o.appendFlat(dst, n, key, v)
			return err == nil
		}
		if n > 0 {
			dst = append(dst, ',')
		}
		n++
		dst = event.AppendJSONString(dst, []byte(key))
		dst = append(dst, ':')
		dst, err = v.AppendJSON(dst)
		return err == nil
	})
	if each != nil {
		return dst, n, each
	}
	return dst, n, err
}

// appendTimestamp writes t as ISO 8601 with time_precision fraction
// digits and the zone's offset, as the plugin's iso8601(time_precision).
func (o *Output) appendTimestamp(dst []byte, t time.Time) []byte {
	dst = t.AppendFormat(dst, "2006-01-02T15:04:05")
	if o.TimePrecision > 0 {
		frac := strconv.Itoa(t.Nanosecond() + 1e9)[1 : 1+o.TimePrecision]
		dst = append(append(dst, '.'), frac...)
	}
	return t.AppendFormat(dst, "-07:00")
}

// eventTime is the time the document is dated by: time_key's value (or an
// @timestamp already in the record) when given, else the event's.
func (o *Output) eventTime(e *event.Entry, scratch []byte) (time.Time, error) {
	t := e.Time.Std().In(time.Local)
	for _, p := range [][]string{o.timestampPath, o.fields.time} {
		s, ok := lookupText(e.Record, p, scratch)
		if !ok {
			continue
		}
		parsed, err := o.parseTime(s)
		if err != nil {
			return t, err
		}
		return parsed, nil
	}
	return t, nil
}

func (o *Output) parseTime(s string) (time.Time, error) {
	if o.TimeKeyFormat != "" {
		return strftime.Parse(o.TimeKeyFormat, s, time.Local)
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		sec := int64(f)
		return time.Unix(sec, int64((f-float64(sec))*1e9)).In(time.Local), nil
	}
	return time.Time{}, fmt.Errorf("time %q is neither ISO 8601 nor epoch seconds (set time_key_format)", s)
}

// indexFor is the event's index: target_index_key's value, the
// logstash_format daily index, the data stream, or index_name.
func (o *Output) indexFor(chunkIndex, chunkPrefix string, e *event.Entry, ts time.Time, scratch []byte) string {
	if v, ok := lookupText(e.Record, o.fields.targetIndex, scratch); ok && v != "" {
		return strings.ToLower(v)
	}
	if o.LogstashFormat && !o.dataStream {
		d := ts
		if o.UTCIndex {
			d = d.UTC()
		}
		return strings.ToLower(chunkPrefix + o.LogstashPrefixSeparator + strftime.Format(o.LogstashDateformat, d))
	}
	return chunkIndex
}

// hashID is a document id from the record's bytes (<hash>): the same
// record always gets the same id, so a resend overwrites itself.
func hashID(r event.Record) string {
	sum := sha1.Sum(r)
	return hex.EncodeToString(sum[:])
}

// appendAction writes a bulk action line.
func appendAction(dst []byte, op string, d *doc, routingField, parentField string) []byte {
	dst = append(dst, `{"`...)
	dst = append(dst, op...)
	dst = append(dst, `":{"_index":`...)
	dst = event.AppendJSONString(dst, []byte(d.index))
	for _, f := range [...]struct{ name, v string }{{"_type", d.typ}, {"_id", d.id}, {routingField, d.routing}, {parentField, d.parent}} {
		if f.v == "" {
			continue
		}
		dst = append(dst, `,"`...)
		dst = append(dst, f.name...)
		dst = append(dst, `":`...)
		dst = event.AppendJSONString(dst, []byte(f.v))
	}
	return append(dst, "}}\n"...)
}
