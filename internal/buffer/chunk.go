// Package buffer holds the unit the output runtime buffers and flushes: a
// Chunk of entries (or of formatted bytes) that share a Key.
package buffer

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"

	"github.com/sluice-log/sluice/internal/event"
)

// Key groups entries into chunks: by tag, by timekey window and by the
// values of record keys named in <buffer CHUNK_KEYS>. Key is comparable.
type Key struct {
	Tag string
	// Timekey is the start of the entry's time window in Unix seconds; 0
	// when time is not a chunk key.
	Timekey int64
	// vars holds the record-key values in chunk-key order, each after its
	// length (a uvarint): values come from records and may hold any byte,
	// so no separator could keep two sets of them apart.
	vars string
}

// NewKey builds a Key; values are the record-key values in chunk-key order.
func NewKey(tag string, timekey int64, values []string) Key {
	if len(values) == 0 {
		return Key{Tag: tag, Timekey: timekey}
	}
	n := 0
	for _, v := range values {
		n += binary.MaxVarintLen64 + len(v)
	}
	var b strings.Builder // one allocation, as strings.Join made
	b.Grow(n)
	var size [binary.MaxVarintLen64]byte
	for _, v := range values {
		b.Write(binary.AppendUvarint(size[:0], uint64(len(v))))
		b.WriteString(v)
	}
	return Key{Tag: tag, Timekey: timekey, vars: b.String()}
}

// Values returns the record-key values in chunk-key order.
func (k Key) Values() []string {
	if k.vars == "" {
		return nil
	}
	var out []string
	for rest := k.vars; len(rest) > 0; {
		n, w := binary.Uvarint([]byte(rest[:min(len(rest), binary.MaxVarintLen64)]))
		if w <= 0 || uint64(len(rest)-w) < n {
			break // not from NewKey
		}
		out = append(out, rest[w:w+int(n)])
		rest = rest[w+int(n):]
	}
	return out
}

// ID identifies a chunk for its whole life, across retries and restarts.
type ID [16]byte

// NewID returns a random chunk ID.
func NewID() ID {
	var id ID
	_, _ = rand.Read(id[:])
	return id
}

func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Chunk is a run of entries with one Key. When Formatted is false Data holds
// msgpack entries; otherwise it holds what the output's formatter produced.
// The output runtime owns a chunk; Write borrows it for the call, with Data
// loaded from the store.
type Chunk struct {
	ID        ID
	Key       Key
	Data      []byte
	Records   int
	Size      int64 // bytes the store holds for the chunk
	Formatted bool
	Created   time.Time
	// Retries counts failed writes so far.
	Retries int
	// Meta is what an output decided about the chunk and must keep across
	// retries and restarts (the S3 object key). Set it with SaveMeta.
	Meta map[string]string
	// SaveMeta records Meta[key] = value durably; the runtime provides it
	// to Write. Nil outside Write.
	SaveMeta func(key, value string) error

	file *fileChunk // the file store's state
}

// Entries returns a Reader over the chunk's entries; only for chunks that
// are not Formatted.
func (c *Chunk) Entries() event.Reader { return event.NewReader(c.Data) }
