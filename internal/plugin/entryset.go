package plugin

import (
	"encoding/base64"
	"math/bits"
)

// EntrySet is a set of a chunk's entries by index (a bitmap): the entries
// an output has already delivered, kept with the chunk (Chunk.SaveMeta) so
// that a retry of the chunk, now or after a restart, sends only the rest.
// Outputs whose destinations answer per record (Kinesis, Elasticsearch's
// _bulk) use it so that a partial success is never sent twice.
type EntrySet []byte

// LoadEntrySet reads the set saved with c under key; empty if none.
func LoadEntrySet(c *Chunk, key string) EntrySet {
	if s, _ := c.Meta(key); s != "" {
		if b, err := base64.StdEncoding.DecodeString(s); err == nil {
			return b
		}
	}
	return nil
}

// Count is how many entries the set holds.
func (d EntrySet) Count() int {
	n := 0
	for _, b := range d {
		n += bits.OnesCount8(b)
	}
	return n
}

// Has reports whether entry i is in the set.
func (d EntrySet) Has(i int) bool { return i/8 < len(d) && d[i/8]&(1<<(i%8)) != 0 }

// Add puts entry i in the set.
func (d *EntrySet) Add(i int) {
	for len(*d) <= i/8 {
		*d = append(*d, 0)
	}
	(*d)[i/8] |= 1 << (i % 8)
}

// Save keeps the set with c under key.
func (d EntrySet) Save(c *Chunk, key string) error {
	return c.SaveMeta(key, base64.StdEncoding.EncodeToString(d))
}
