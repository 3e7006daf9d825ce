package plugin

import (
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/event"
)

// Chunk is what a BufferedOutput's Write sees of one buffered chunk: its
// identity, its key and its bytes. It is valid for the length of the call;
// the runtime keeps the chunk itself (its store state, its retry state).
type Chunk struct {
	// ID is the chunk's identity for its whole life, across retries and
	// restarts: a destination that deduplicates can key on it.
	ID buffer.ID
	// Key is what the chunk's entries share: the tag, the timekey window,
	// the values of the <buffer> chunk keys.
	Key buffer.Key
	// Data holds msgpack entries, or, when Formatted, what the output's
	// FormatEntry produced for each of them, one after the other.
	Data      []byte
	Formatted bool
	// Records is how many entries Data holds.
	Records int
	// Created is when the chunk's first entry arrived.
	Created time.Time
	// Retries counts the chunk's failed writes so far.
	Retries int

	meta map[string]string
	save func(key, value string) error
}

// NewChunk returns the view of a chunk for one write. meta is what
// earlier writes saved; save, which may be nil, makes a SaveMeta durable
// (the runtime passes its store's).
func NewChunk(view Chunk, meta map[string]string, save func(key, value string) error) *Chunk {
	view.meta, view.save = meta, save
	return &view
}

// Meta returns what a write of this chunk saved under key with SaveMeta,
// in this run or before a restart.
func (c *Chunk) Meta(key string) (string, bool) {
	v, ok := c.meta[key]
	return v, ok
}

// SaveMeta keeps value under key with the chunk, durably when the buffer
// is a file buffer, so that a retry of the chunk (now or after a restart)
// finds it with Meta: an output that decides something once per chunk (the
// S3 object key) or delivers it in parts (which records are done) saves
// that here.
func (c *Chunk) SaveMeta(key, value string) error {
	if c.save != nil {
		if err := c.save(key, value); err != nil {
			return err
		}
	}
	if c.meta == nil {
		c.meta = map[string]string{}
	}
	c.meta[key] = value
	return nil
}

// Entries returns a Reader over the chunk's entries; only for chunks that
// are not Formatted.
func (c *Chunk) Entries() event.Reader { return event.NewReader(c.Data) }
