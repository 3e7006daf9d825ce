package forward

import (
	"encoding/binary"
	"hash/maphash"
	"sync"
	"time"
)

// ackCache remembers chunks acknowledged recently, so that a chunk a
// client resends (it missed the ack: a timeout, a closed connection) is
// acknowledged again without being emitted twice. It is bounded in count
// (oldest forgotten first) and in age. A chunk is known by its resendKey.
type ackCache struct {
	max  int
	ttl  time.Duration
	seed maphash.Seed

	mu    sync.Mutex
	state map[string]ackState // guarded by mu
	ring  []string            // guarded by mu; insertion order for eviction
	next  int                 // guarded by mu; ring slot to reuse
}

type ackState struct {
	at      time.Time
	pending bool // being emitted now, on some connection
}

// Results of ackCache.begin.
const (
	chunkNew       = iota // not seen: emit it, then call finish
	chunkDuplicate        // acknowledged already: ack again, do not emit
	chunkInFlight         // being emitted on another connection: neither
)

func newAckCache(max int, ttl time.Duration) *ackCache {
	if max <= 0 {
		return nil
	}
	return &ackCache{max: max, ttl: ttl, seed: maphash.MakeSeed(), state: make(map[string]ackState, max), ring: make([]string, 0, max)}
}

// resendKey appends to dst the key of a message: the client's chunk id and
// a fingerprint of its tag, event count and entries. The id alone is not
// enough: ids are the client's choice, and two clients that count them
// alike would have one's chunk acknowledged as the other's resend and
// dropped. A resend is the same bytes under the same id, so it matches.
func (c *ackCache) resendKey(dst []byte, m *Message) []byte {
	var h maphash.Hash
	h.SetSeed(c.seed)
	_, _ = h.Write(m.Tag) // maphash.Hash writes never fail
	_ = h.WriteByte(0)
	_, _ = h.Write(m.Entries)
	dst = append(dst, m.Chunk...)
	dst = binary.LittleEndian.AppendUint64(dst, h.Sum64())
	return binary.AppendUvarint(dst, uint64(m.Count))
}

func (c *ackCache) begin(id []byte, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.state[string(id)]
	switch {
	case ok && st.pending:
		return chunkInFlight
	case ok && now.Sub(st.at) < c.ttl:
		return chunkDuplicate
	case ok:
		c.state[string(id)] = ackState{at: now, pending: true}
		return chunkNew
	}
	key := string(id)
	if len(c.ring) < c.max {
		c.ring = append(c.ring, key)
	} else {
		delete(c.state, c.ring[c.next])
		c.ring[c.next] = key
		c.next = (c.next + 1) % c.max
	}
	c.state[key] = ackState{at: now, pending: true}
	return chunkNew
}

// finish records the outcome of an emit begun with chunkNew. A refused
// chunk is forgotten, so that the client's resend is emitted.
func (c *ackCache) finish(id []byte, accepted bool, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if accepted {
		c.state[string(id)] = ackState{at: now}
		return
	}
	// Leave the ring slot; a later begin reuses the key or evicts it.
	delete(c.state, string(id))
}
