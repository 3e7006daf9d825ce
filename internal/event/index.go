package event

import (
	"fmt"
	"math"
	"unsafe"
)

// Index remembers where each entry of one byte slice ends, so that a second
// pass over entries an input has validated steps from entry to entry
// without walking every record again. It describes only the bytes it was
// built over: a Stream whose Data was replaced (a filter's new records)
// keeps a stale Index that its Reader ignores.
type Index struct {
	ends []uint32
	base *byte
	size int
}

// maxIndexed bounds an Index: a message of more entries (tiny ones, in a
// hostile client's many megabytes) is validated without one.
const maxIndexed = 1 << 16

// keptIndexed is the most entries an Index keeps room for between uses, so
// that one large message does not leave 256 KB behind on a connection that
// then sends small ones.
const keptIndexed = 4096

// covers reports whether ix was built over data.
func (ix *Index) covers(data []byte) bool {
	return ix != nil && ix.base != nil && len(data) == ix.size && unsafe.SliceData(data) == ix.base &&
		len(ix.ends) > 0
}

// Release lets go of the bytes ix was built over (it points into them),
// keeping its own memory for the next use.
func (ix *Index) Release() { ix.base, ix.size = nil, 0 }

// ValidateIndexed is Validate that also records in ix where each entry
// ends. ix is reused: its memory is kept between calls.
func ValidateIndexed(data []byte, ix *Index) (int, error) {
	if cap(ix.ends) > keptIndexed {
		ix.ends = nil
	}
	ix.ends, ix.base, ix.size = ix.ends[:0], nil, 0
	r := NewReader(data)
	for r.Next() {
		if len(ix.ends) < maxIndexed {
			ix.ends = append(ix.ends, uint32(len(data)-len(r.data)))
		}
	}
	if r.err != nil || r.n != len(ix.ends) || uint64(len(data)) > math.MaxUint32 {
		ix.ends = ix.ends[:0]
		return r.n, r.err
	}
	ix.base, ix.size = unsafe.SliceData(data), len(data)
	return r.n, nil
}

// Reader returns a Reader over the stream's entries. With an Index built
// over Data it finds each entry's end there instead of stepping over the
// record; the entry's head (array, time) is still checked.
func (s Stream) Reader() Reader {
	if s.Index.covers(s.Data) {
		return Reader{data: s.Data, ends: s.Index.ends}
	}
	return NewReader(s.Data)
}

// nextIndexed is Next for a Reader with ends.
func (r *Reader) nextIndexed() bool {
	size := int(r.ends[0]) - r.off
	if size <= 0 || size > len(r.data) {
		r.err = fmt.Errorf("entry %d: %w: index does not match the data", r.n, ErrEntry)
		return false
	}
	if err := decodeEntryOf(&r.entry, r.data[:size]); err != nil {
		r.err = fmt.Errorf("entry %d: %w", r.n, err)
		return false
	}
	r.data, r.ends, r.off = r.data[size:], r.ends[1:], r.off+size
	r.n++
	return true
}
