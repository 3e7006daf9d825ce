package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/plugin"
)

// Fluentd's in_forward also takes JSON: a connection whose first byte is
// '[' or '{' sends JSON arrays of the Message or Forward shape, such as
//
//	["app.access", 1441588984, {"message": "hi"}, {"chunk": "abc"}]
//
// and gets its acks as JSON. Sluice converts each value to msgpack and
// handles it like any other message. JSON is not accepted with <security>.

func isJSONStart(b byte) bool { return b == '[' || b == '{' }

// limitedReader fails once a single JSON value grows past limit bytes, so a
// client cannot make the decoder buffer without bound.
type limitedReader struct {
	r     io.Reader
	read  int64
	base  func() int64 // decoder offset at the current value's start
	limit int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.read-l.base() > l.limit {
		return 0, protoErr("JSON message larger than chunk_size_limit (%d bytes)", l.limit)
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	return n, err
}

func (c *conn) jsonLoop(ctx context.Context, out plugin.Emitter, first []byte) {
	c.jsonMode = true
	var dec *json.Decoder
	lr := &limitedReader{r: io.MultiReader(bytes.NewReader(first), c.nc), limit: int64(c.in.ChunkSizeLimit)}
	dec = json.NewDecoder(lr)
	lr.base = dec.InputOffset
	dec.UseNumber()
	for {
		if c.in.IdleTimeout > 0 {
			c.setReadDeadline(ctx, time.Now().Add(c.in.IdleTimeout))
		}
		var v any
		if err := dec.Decode(&v); err != nil {
			var se *json.SyntaxError
			var ute *json.UnmarshalTypeError
			if errors.Is(err, ErrProtocol) || errors.As(err, &se) || errors.As(err, &ute) {
				c.protocolError(fmt.Errorf("%w: JSON: %v", ErrProtocol, err))
			}
			return
		}
		msg, err := msgp.AppendIntf(nil, jsonToMsgpack(v))
		if err != nil {
			c.protocolError(fmt.Errorf("%w: JSON value: %v", ErrProtocol, err))
			return
		}
		ok := c.handle(ctx, msg, out)
		// The JSON decoder reads ahead by itself, so there is no end of a
		// read to gather Message-mode events up to: emit each at once.
		c.flushBatch(ctx, out)
		if !ok {
			return
		}
	}
}

// jsonToMsgpack turns json.Number into integers or floats, recursively.
func jsonToMsgpack(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return i
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i := range x {
			x[i] = jsonToMsgpack(x[i])
		}
	case map[string]any:
		for k, e := range x {
			x[k] = jsonToMsgpack(e)
		}
	}
	return v
}
