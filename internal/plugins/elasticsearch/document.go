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
// tag_key, <hash>'s hash_id_key (id) and @timestamp added.
func (o *Output) appendDocument(dst []byte, tag string, e *event.Entry, ts time.Time, id string, skip map[string]bool, stamps *stampCache) ([]byte, error) {
	dst = append(dst, '{')
	n := 0
	var err error
	each := e.Record.Each(func(k []byte, v event.Value) bool {
		if skip[string(k)] {
			return true
		}
		if o.FlattenHashes && len(v) > 0 && msgp.NextType(v) == msgp.MapType {
			dst, err = o.appendFlat(dst, &n, string(k), v)
			return err == nil
		}
		dst = appendKey(dst, &n, k)
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
		dst = event.AppendJSONString(appendKey(dst, &n, []byte(o.TagKey)), []byte(tag))
	}
	if o.Hash != nil {
		dst = event.AppendJSONString(appendKey(dst, &n, []byte(o.Hash.HashIDKey)), []byte(id))
	}
	if o.addTimestamp && !ts.IsZero() {
		dst = append(appendKey(dst, &n, []byte("@timestamp")), '"')
		dst = append(o.appendTimestamp(dst, ts, stamps), '"')
	}
	return append(dst, '}'), nil
}

// appendKey writes a field's key, after a comma unless it is the first
// (*n counts the fields written).
func appendKey(dst []byte, n *int, key []byte) []byte {
	if *n > 0 {
		dst = append(dst, ',')
	}
	*n++
	return append(event.AppendJSONString(dst, key), ':')
}

// appendFlat writes a map's fields as prefix_key pairs (flatten_hashes).
func (o *Output) appendFlat(dst []byte, n *int, prefix string, m event.Value) ([]byte, error) {
	var err error
	each := event.Record(m).Each(func(k []byte, v event.Value) bool {
		key := prefix + o.FlattenHashesSeparator + string(k)
		if len(v) > 0 && msgp.NextType(v) == msgp.MapType {
			dst, err = o.appendFlat(dst, n, key, v)
			return err == nil
		}
		dst = appendKey(dst, n, []byte(key))
		dst, err = v.AppendJSON(dst)
		return err == nil
	})
	if each != nil {
		return dst, each
	}
	return dst, err
}

// appendTimestamp writes t as ISO 8601 with time_precision fraction
// digits and the zone's offset, as the plugin's iso8601(time_precision).
// By hand: time.Format costs more than the rest of a small document.
func (o *Output) appendTimestamp(dst []byte, t time.Time, c *stampCache) []byte {
	// The events of a chunk mostly share their seconds: the date, time of
	// day and offset are made once per second.
	if c == nil || t.Unix() != c.sec || t.Location() != c.loc || len(c.head) == 0 {
		var head [32]byte
		h := head[:0]
		year, month, day := t.Date()
		hour, minute, sec := t.Clock()
		h = appendInt(h, year, 4)
		h = appendInt(append(h, '-'), int(month), 2)
		h = appendInt(append(h, '-'), day, 2)
		h = appendInt(append(h, 'T'), hour, 2)
		h = appendInt(append(h, ':'), minute, 2)
		h = appendInt(append(h, ':'), sec, 2)
		_, off := t.Zone()
		sign := byte('+')
		if off < 0 {
			sign, off = '-', -off
		}
		z := appendInt(append(make([]byte, 0, 6), sign), off/3600, 2)
		z = appendInt(append(z, ':'), off%3600/60, 2)
		if c == nil {
			c = &stampCache{}
		}
		c.sec, c.loc, c.head, c.zone = t.Unix(), t.Location(), append(c.head[:0], h...), z
	}
	dst = append(dst, c.head...)
	if p := o.TimePrecision; p > 0 {
		frac := t.Nanosecond()
		for i := p; i < 9; i++ {
			frac /= 10
		}
		dst = appendInt(append(dst, '.'), frac, p)
	}
	return append(dst, c.zone...)
}

// stampCache is appendTimestamp's last second.
type stampCache struct {
	sec        int64
	loc        *time.Location
	head, zone []byte
}

// appendInt writes v, zero-padded to width digits.
func appendInt(dst []byte, v, width int) []byte {
	var b [20]byte
	i := len(b)
	for v >= 10 || width > 1 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		width--
	}
	i--
	b[i] = byte('0' + v)
	return append(dst, b[i:]...)
}

// eventTime is the time the document is dated by: an @timestamp already
// in the record, or time_key's value, when given; else the event's. has
// reports that the record has its own @timestamp.
func (o *Output) eventTime(e *event.Entry, scratch []byte) (t time.Time, has bool, err error) {
	t = e.Time.Std().In(time.Local)
	if o.addTimestamp {
		if s, ok := lookupText(e.Record, o.timestampPath, scratch); ok {
			parsed, err := o.parseTime(s)
			if err != nil {
				return t, true, err
			}
			return parsed, true, nil
		}
	}
	if s, ok := lookupText(e.Record, o.fields.time, scratch); ok {
		parsed, err := o.parseTime(s)
		if err != nil {
			return t, false, err
		}
		return parsed, false, nil
	}
	return t, false, nil
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

// indexCache keeps the last daily index name a writer made, so that the
// events of one day share one string.
type indexCache struct {
	buf, tmp []byte
	name     string
	prefix   string // of name
	day      int64  // the UTC day of name, when the date format has nothing finer
}

// dayLevel reports whether a strftime layout varies by the day at most
// (%Y.%m.%d, %Y-%j ...), so that a UTC day names one index.
func dayLevel(layout string) bool {
	for i := 0; i+1 < len(layout); i++ {
		if layout[i] != '%' {
			continue
		}
		i++
		if !strings.ContainsRune("YmdyjbBhaAeCGgUVWuw%", rune(layout[i])) {
			return false
		}
	}
	return true
}

// indexFor is the event's index: target_index_key's value, the
// logstash_format daily index (base is its prefix), or base itself (the
// data stream or index_name, lowercased already).
func (o *Output) indexFor(base string, e *event.Entry, ts time.Time, scratch []byte, cache *indexCache) string {
	if v, ok := lookupText(e.Record, o.fields.targetIndex, scratch); ok && v != "" {
		return strings.ToLower(v)
	}
	if !o.LogstashFormat || o.dataStream {
		return base
	}
	d := ts
	if o.UTCIndex {
		d = d.UTC()
		if o.dailyIndex {
			day := d.Unix() / 86400
			if d.Unix() < 0 && d.Unix()%86400 != 0 {
				day--
			}
			if cache.name != "" && day == cache.day && cache.prefix == base {
				return cache.name
			}
			cache.day, cache.prefix = day, base
		}
	}
	if !o.dailyIndex || !o.UTCIndex {
		cache.prefix = "" // the day is not the key
	}
	b := append(append(cache.tmp[:0], base...), o.LogstashPrefixSeparator...)
	b = strftime.Append(b, o.LogstashDateformat, d)
	cache.tmp = b
	if cache.name != "" && string(b) == string(cache.buf) { // compared without allocating
		return cache.name
	}
	cache.buf = append(cache.buf[:0], b...)
	cache.name = strings.ToLower(string(b))
	return cache.name
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
