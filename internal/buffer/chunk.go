// Package buffer holds the unit the output runtime buffers and flushes: a
// Chunk of entries (or of formatted bytes) that share a Key.
package buffer

import (
	"crypto/rand"
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
	// vars holds the record-key values in chunk-key order, joined by \x00.
	vars string
}

// NewKey builds a Key; values are the record-key values in chunk-key order.
func NewKey(tag string, timekey int64, values []string) Key {
	return Key{Tag: tag, Timekey: timekey, vars: strings.Join(values, "\x00")}
}

// Values returns the record-key values in chunk-key order.
func (k Key) Values() []string {
	if k.vars == "" {
		return nil
	}
	return strings.Split(k.vars, "\x00")
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
