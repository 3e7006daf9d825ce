package netin

import (
	"bytes"
	"errors"
	"fmt"
)

// framer splits a TCP byte stream into messages, by a delimiter (in_tcp,
// and syslog's traditional framing, RFC 6587 3.4.2) or by octet counting
// ("LEN SP MSG", RFC 6587 3.4.1). A message longer than limit is dropped
// and counted, and the stream goes on after it: one runaway sender line
// costs that line only, and a connection never holds more than limit
// bytes of one message.
type framer struct {
	octetCount bool
	delim      []byte
	limit      int

	skip     int  // octet counting: bytes of an oversized message still to drop
	skipping bool // delimited: dropping an oversized message up to its delimiter
}

// maxCountDigits bounds an octet count's length; 9 digits is up to a
// gigabyte, far past any limit.
const maxCountDigits = 9

// errBadCount is a frame that does not start with an octet count.
var errBadCount = errors.New("octet-counted frame does not start with a length")

// split calls fn for each whole message at the start of data and returns
// how many bytes it consumed; the rest (less than a message) is kept by
// the caller for the next read. oversized is how many messages it dropped
// for their length. An error means the stream cannot be framed any
// further (octet counting lost its place).
func (f *framer) split(data []byte, fn func(msg []byte)) (used, oversized int, err error) {
	if f.octetCount {
		return f.splitCounted(data, fn)
	}
	pos := 0
	for pos < len(data) {
		i := bytes.Index(data[pos:], f.delim)
		if i < 0 {
			rest := len(data) - pos
			// A message of limit bytes may be followed by part of its
			// delimiter.
			if f.skipping || rest > f.limit+len(f.delim)-1 {
				if !f.skipping {
					oversized++
					f.skipping = true
				}
				// Keep what could be the start of a delimiter.
				keep := min(rest, len(f.delim)-1)
				return len(data) - keep, oversized, nil
			}
			return pos, oversized, nil
		}
		msg := data[pos : pos+i]
		pos += i + len(f.delim)
		switch {
		case f.skipping:
			f.skipping = false
		case len(msg) > f.limit:
			oversized++
		default:
			fn(msg)
		}
	}
	return pos, oversized, nil
}

func (f *framer) splitCounted(data []byte, fn func(msg []byte)) (used, oversized int, err error) {
	pos := 0
	for pos < len(data) {
		if f.skip > 0 {
			n := min(f.skip, len(data)-pos)
			f.skip -= n
			pos += n
			continue
		}
		// Senders that end each frame with a newline as well (and
		// Fluentd's reader) are taken: whitespace between frames is
		// skipped.
		if c := data[pos]; c == '\n' || c == '\r' || c == ' ' {
			pos++
			continue
		}
		sp := bytes.IndexByte(data[pos:min(len(data), pos+maxCountDigits+1)], ' ')
		if sp < 0 {
			if len(data)-pos > maxCountDigits || !allDigits(data[pos:]) {
				return pos, oversized, fmt.Errorf("%w: %q", errBadCount, head(data[pos:]))
			}
			return pos, oversized, nil // the count is still arriving
		}
		if sp == 0 || !allDigits(data[pos:pos+sp]) {
			return pos, oversized, fmt.Errorf("%w: %q", errBadCount, head(data[pos:]))
		}
		n := 0
		for _, c := range data[pos : pos+sp] {
			n = n*10 + int(c-'0')
		}
		body := pos + sp + 1
		if n > f.limit {
			oversized++
			f.skip = n
			pos = body
			continue
		}
		if len(data)-body < n {
			return pos, oversized, nil
		}
		fn(bytes.TrimSuffix(data[body:body+n], []byte("\n")))
		pos = body + n
	}
	return pos, oversized, nil
}

// pending bounds what a connection holds between reads: one message up
// to limit, and its octet count or delimiter.
func (f *framer) pending() int { return f.limit + maxCountDigits + 1 + len(f.delim) }

func allDigits(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// head is the start of bad input, for a log line.
func head(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
