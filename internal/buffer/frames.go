package buffer

import "encoding/binary"

// The one reader of a chunk file's frames, for Load and for recovery.
//
//	header | frame | frame | ~~damaged~~ | frame | frame | tail…
//	                         ^ resync: the next offset where a whole frame
//	                           with a valid CRC starts
//
// A frame is [length u32][records u32][CRC-32C u32][payload]. Its CRC
// covers the record count and payload and starts from the chunk id, so
// that a run of bytes passing for a frame by chance, or a frame of another
// chunk's file (a reused spare), is as unlikely as a CRC collision.

// frameAt reports whether a whole frame with a valid CRC starts at
// raw[pos:], and where it ends. When a checksum was computed and failed,
// end is still where the would-be frame ends (0 when none was computed).
func frameAt(raw []byte, pos int, seed uint32) (end int, records uint32, ok bool) {
	if len(raw)-pos < frameHeaderLen {
		return 0, 0, false
	}
	size := int(binary.BigEndian.Uint32(raw[pos : pos+4]))
	records = binary.BigEndian.Uint32(raw[pos+4 : pos+8])
	start := pos + frameHeaderLen
	// Every record takes at least a byte: a header that says otherwise is
	// not a frame, and is rejected before its CRC is computed.
	if size > len(raw)-start || records == 0 || int(records) > size {
		return 0, 0, false
	}
	if frameCRC(seed, raw[pos+4:pos+8], raw[start:start+size]) != binary.BigEndian.Uint32(raw[pos+8:pos+12]) {
		return start + size, 0, false // end: how far the failed check read
	}
	return start + size, records, true
}

// span is a run of a file's bytes, [start, end).
type span struct{ start, end int }

// walkFrames calls frame for each valid frame of raw from offset from, in
// order. Bytes that are not a valid frame but are followed by one are
// damage (a flipped bit, a bad sector): they are returned, and the walk
// goes on at the next valid frame. tail is where the bytes after the last
// valid frame start (len(raw) when there are none).
func walkFrames(raw []byte, from int, seed uint32, frame func(start, end int, records uint32)) (damaged []span, tail int) {
	pos := from
	for pos < len(raw) {
		if end, records, ok := frameAt(raw, pos, seed); ok {
			frame(pos, end, records)
			pos = end
			continue
		}
		// Checksums computed while searching are bounded by a few times
		// the file's size: a payload full of bytes that pass for frame
		// headers could otherwise make the search quadratic.
		next, budget := -1, 4*len(raw)
		for q := pos + 1; q+frameHeaderLen <= len(raw) && budget > 0; q++ {
			end, _, ok := frameAt(raw, q, seed)
			if ok {
				next = q
				break
			}
			budget -= max(end-q, 1)
		}
		if next < 0 {
			break
		}
		damaged = append(damaged, span{pos, next})
		pos = next
	}
	return damaged, pos
}
