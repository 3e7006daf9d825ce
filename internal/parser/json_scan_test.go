package parser

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

// referenceJSONToMsgpack is the transcoder JSONToMsgpack replaced, on
// encoding/json's tokens: the tests hold the scanner to it, byte for byte.
func referenceJSONToMsgpack(dst, text []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	out, err := transcode(dst, dec, 0)
	if err != nil {
		return dst, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return dst, errors.New("data after the value")
	}
	return out, nil
}

func transcode(dst []byte, dec *json.Decoder, depth int) ([]byte, error) {
	if depth > maxJSONDepth {
		return dst, errors.New("nested too deeply")
	}
	tok, err := dec.Token()
	if err != nil {
		return dst, err
	}
	switch x := tok.(type) {
	case json.Delim:
		var body []byte
		n := uint32(0)
		switch x {
		case '{':
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return dst, err
				}
				key, ok := kt.(string)
				if !ok {
					return dst, errors.New("object key is not a string")
				}
				body = msgp.AppendString(body, key)
				if body, err = transcode(body, dec, depth+1); err != nil {
					return dst, err
				}
				n++
			}
			if _, err := dec.Token(); err != nil { // '}'
				return dst, err
			}
			dst = msgp.AppendMapHeader(dst, n)
		case '[':
			for dec.More() {
				if body, err = transcode(body, dec, depth+1); err != nil {
					return dst, err
				}
				n++
			}
			if _, err := dec.Token(); err != nil { // ']'
				return dst, err
			}
			dst = msgp.AppendArrayHeader(dst, n)
		default:
			return dst, fmt.Errorf("unexpected %q", x)
		}
		return append(dst, body...), nil
	case string:
		return msgp.AppendString(dst, x), nil
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return msgp.AppendInt64(dst, i), nil
		}
		f, err := x.Float64()
		if err != nil {
			return dst, err
		}
		return msgp.AppendFloat64(dst, f), nil
	case bool:
		return msgp.AppendBool(dst, x), nil
	case nil:
		return msgp.AppendNil(dst), nil
	}
	return dst, fmt.Errorf("unexpected token %v", tok)
}

var jsonSamples = []string{
	`{"a":1,"b":"x","c":[1,2.5,-3,true,false,null],"d":{"e":{}},"f":[]}`,
	`{"log":"GET /item/1 HTTP/1.1\n","esc":"\"\\\/\b\f\n\r\t","u":"\u00e9\u4e2d\ud83d\ude00","lone":"\ud800x","lone2":"\udc00\ud800"}`,
	`[{"a":1},{"b":2}]`, `"just a string"`, `12345678901234567890`, `-0`, `1e2`, `-1.5E-3`, `0.1`,
	` { "spaced" : [ 1 , 2 ] } `, `{"k":"\xff\xfe invalid utf-8 \xc3"}`,
	`{"many":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6,"g":7,"h":8,"i":9,"j":10,"k":11,"l":12,"m":13,"n":14,"o":15,"p":16,"q":17}}`,
	`{"dup":1,"dup":2}`, `{}`, `[]`, `""`, `true`, `null`,
	// invalid
	``, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `[1,]`, `01`, `1.`, `1e`, `-`, `tru`, `nul`, `"abc`, `"\x"`, `"\u12"`,
	`{"a":1} {"b":2}`, `{"a":1}x`, "\"ctl\x01\"", `{"a":1e400}`, `[1 2]`, `{1:2}`,
}

func TestJSONToMsgpackMatchesEncodingJSON(t *testing.T) {
	for _, in := range jsonSamples {
		checkJSONAgainstReference(t, []byte(in))
	}
	deep := bytes.Repeat([]byte("["), maxJSONDepth+5)
	checkJSONAgainstReference(t, deep)
	// More than 65,535 elements: the 5-byte header.
	var b bytes.Buffer
	b.WriteString("[")
	for i := 0; i < 70000; i++ {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(strconv.Itoa(i))
	}
	b.WriteString("]")
	checkJSONAgainstReference(t, b.Bytes())
}

func checkJSONAgainstReference(t *testing.T, in []byte) {
	t.Helper()
	prefix := []byte{0xc0} // something already in dst stays
	got, gerr := JSONToMsgpack(append([]byte(nil), prefix...), in)
	want, werr := referenceJSONToMsgpack(append([]byte(nil), prefix...), in)
	switch {
	case (gerr == nil) != (werr == nil):
		t.Fatalf("%q: error %v, encoding/json's %v", in, gerr, werr)
	case gerr == nil && !bytes.Equal(got, want):
		t.Fatalf("%q: msgpack\n%s\nwant\n%s", in, dump(got), dump(want))
	case gerr != nil && !errors.Is(gerr, ErrNoMatch):
		t.Fatalf("%q: error %v does not wrap ErrNoMatch", in, gerr)
	case gerr != nil && !bytes.Equal(got, prefix):
		t.Fatalf("%q: failed but changed dst", in)
	}
}

func dump(b []byte) string {
	var out bytes.Buffer
	if _, err := msgp.CopyToJSON(&out, bytes.NewReader(b)); err != nil {
		return fmt.Sprintf("% x (%v)", b, err)
	}
	return out.String()
}

func FuzzJSONToMsgpack(f *testing.F) {
	for _, s := range jsonSamples {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) { checkJSONAgainstReference(t, in) })
}

func BenchmarkJSONToMsgpack(b *testing.B) {
	in := []byte(`{"container_id":"6d33ade920a96179205e01c3a17d6e7f3eb98f0d5bb2b494383250220e7f443c","container_name":"/ecs-service-2-apache-d492a08f9480c2fcca01","source":"stdout","log":"122.116.50.70 - Corwin8644 264 [2018-10-31T21:31:59Z] \"POST /activate\" 200 19886","n":42}`)
	for _, impl := range []struct {
		name string
		fn   func([]byte, []byte) ([]byte, error)
	}{{"scanner", JSONToMsgpack}, {"encoding_json", referenceJSONToMsgpack}} {
		b.Run(impl.name, func(b *testing.B) {
			var dst []byte
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for i := 0; i < b.N; i++ {
				var err error
				if dst, err = impl.fn(dst[:0], in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
