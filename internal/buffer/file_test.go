package buffer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
)

func newFileStore(t testing.TB, policy string) *File {
	t.Helper()
	dir := t.TempDir()
	s := &File{Path: filepath.Join(dir, "buf"), BackupDir: filepath.Join(dir, "backup"), Policy: policy, Interval: 10 * time.Millisecond}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reopen simulates a restart: a new store on the same directories.
func reopen(t testing.TB, s *File) *File {
	t.Helper()
	n := &File{Path: s.Path, BackupDir: s.BackupDir, Policy: s.Policy, Interval: s.Interval, Gzip: s.Gzip, Formatted: s.Formatted, Keys: s.Keys,
		MemoryLimit: s.MemoryLimit, ChunkLimit: s.ChunkLimit}
	if err := n.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func entries(t testing.TB, n int, tag string) []byte {
	var b event.Builder
	for i := 0; i < n; i++ {
		rec, _ := event.EncodeRecord(map[string]any{"tag": tag, "i": i})
		b.Append(event.Time(int64(i)*1e9), rec)
	}
	return b.Bytes()
}

func newChunk(tag string, values ...string) *Chunk {
	return &Chunk{ID: NewID(), Key: NewKey(tag, 3600, values), Created: time.Unix(1700000000, 5)}
}

func TestFileStoreRoundTripAndRecovery(t *testing.T) {
	for _, gz := range []bool{false, true} {
		t.Run(fmt.Sprintf("gzip=%v", gz), func(t *testing.T) {
			s := newFileStore(t, SyncEveryWrite)
			s.Gzip = gz
			staged, queued := newChunk("app.a", "p1"), newChunk("app.b")
			for _, c := range []*Chunk{staged, queued} {
				if err := s.Create(c); err != nil {
					t.Fatal(err)
				}
				for i := 0; i < 3; i++ {
					if err := s.Append(c, entries(t, 2, c.Key.Tag), 2); err != nil {
						t.Fatal(err)
					}
				}
			}
			if err := s.Durable(context.Background()); err != nil {
				t.Fatal(err)
			}
			if err := s.Enqueue(queued); err != nil {
				t.Fatal(err)
			}
			want := bytes.Repeat(entries(t, 2, "app.b"), 3)
			got, err := s.Load(queued)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("Load: %v, %d bytes, want %d", err, len(got), len(want))
			}

			// Restart without closing: what a crash leaves.
			r := reopen(t, s)
			st, qu, problems := r.Recover()
			if len(problems) != 0 || len(st) != 1 || len(qu) != 1 {
				t.Fatalf("recovered %d staged, %d queued, problems %v", len(st), len(qu), problems)
			}
			if st[0].ID != staged.ID || st[0].Records != 6 || st[0].Key != staged.Key || !st[0].Created.Equal(staged.Created) {
				t.Errorf("staged chunk came back as %+v", st[0])
			}
			// A recovered staged chunk takes appends again.
			if err := r.Append(st[0], entries(t, 1, "app.a"), 1); err != nil {
				t.Fatal(err)
			}
			if err := r.Enqueue(st[0]); err != nil {
				t.Fatal(err)
			}
			data, err := r.Load(st[0])
			if n, verr := event.Validate(data); err != nil || verr != nil || n != 7 {
				t.Errorf("reloaded staged chunk: %d entries, %v %v", n, err, verr)
			}
			if err := r.Commit(qu[0]); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(ChunkFile(qu[0])); !os.IsNotExist(err) {
				t.Errorf("committed chunk file still there: %v", err)
			}
		})
	}
}

func TestFileStoreTornTailAndCorruptChunks(t *testing.T) {
	s := newFileStore(t, SyncNever)
	good := newChunk("t")
	s.Create(good)
	s.Append(good, entries(t, 3, "t"), 3)
	s.Append(good, entries(t, 2, "t"), 2)
	path := ChunkFile(good)
	// A torn write: a frame header promising more bytes than follow.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	var hdr [frameHeaderLen]byte
	binary.BigEndian.PutUint32(hdr[0:4], 1000)
	binary.BigEndian.PutUint32(hdr[4:8], 5)
	f.Write(hdr[:])
	f.Write([]byte("partial"))
	f.Close()
	sizeBefore, _ := os.Stat(path)

	bad := newChunk("t")
	s.Create(bad)
	s.Append(bad, entries(t, 1, "t"), 1)
	raw, _ := os.ReadFile(ChunkFile(bad))
	raw[14] ^= 0xff // inside the metadata: the header checksum fails
	os.WriteFile(ChunkFile(bad), raw, 0o644)

	empty := newChunk("t")
	s.Create(empty)

	os.WriteFile(filepath.Join(s.Path, "sluice.q"+NewID().String()+".chunk"), []byte("garbage"), 0o644)

	r := reopen(t, s)
	st, qu, problems := r.Recover()
	if len(st) != 1 || st[0].Records != 5 || len(qu) != 0 {
		t.Fatalf("recovered staged %d (records %d), queued %d", len(st), st[0].Records, len(qu))
	}
	if after, _ := os.Stat(path); after.Size() >= sizeBefore.Size() {
		t.Errorf("torn tail not cut: %d → %d bytes", sizeBefore.Size(), after.Size())
	}
	if len(problems) != 2 {
		t.Errorf("problems %v, want the corrupt header and the garbage file", problems)
	}
	backups, _ := filepath.Glob(filepath.Join(s.BackupDir, "*.corrupt"))
	if len(backups) != 2 {
		t.Errorf("quarantined %v", backups)
	}
	if _, err := os.Stat(ChunkFile(empty)); !os.IsNotExist(err) {
		t.Error("an empty chunk was kept")
	}
}

func TestFileStoreLoadDetectsBitRot(t *testing.T) {
	s := newFileStore(t, SyncNever)
	c := newChunk("t")
	s.Create(c)
	s.Append(c, entries(t, 4, "t"), 4)
	s.Enqueue(c)
	raw, _ := os.ReadFile(ChunkFile(c))
	raw[len(raw)-3] ^= 0x01
	os.WriteFile(ChunkFile(c), raw, 0o644)
	if _, err := s.Load(c); err == nil {
		t.Fatal("a flipped bit went unnoticed")
	}
	if err := s.Backup(c, s.BackupDir, "corrupt"); err != nil {
		t.Fatal(err)
	}
}

func TestFileStoreGroupFsync(t *testing.T) {
	s := newFileStore(t, SyncEveryWrite)
	c := newChunk("t")
	s.Create(c)
	s.Append(c, entries(t, 1, "t"), 1)
	if err := s.Durable(context.Background()); err != nil {
		t.Fatal(err)
	}
	if s.synced != s.gen {
		t.Errorf("synced %d of %d appends", s.synced, s.gen)
	}
	// Nothing new: no second round.
	before := s.synced
	s.Durable(context.Background())
	if s.synced != before {
		t.Error("an fsync round ran with nothing to sync")
	}
}

// fluentdMetaBytes encodes a buf_file .meta, in the old or new layout.
func fluentdMetaBytes(id ID, records int, tag string, timekey int64, vars map[string]string, newLayout bool) []byte {
	m := msgp.AppendMapHeader(nil, 7)
	m = msgp.AppendBytes(msgp.AppendString(m, "id"), id[:])
	m = msgp.AppendInt(msgp.AppendString(m, "s"), records)
	m = msgp.AppendInt64(msgp.AppendString(m, "c"), 1700000000)
	m = msgp.AppendInt64(msgp.AppendString(m, "m"), 1700000001)
	m = msgp.AppendInt64(msgp.AppendString(m, "timekey"), timekey)
	m = msgp.AppendString(msgp.AppendString(m, "tag"), tag)
	m = msgp.AppendMapHeader(msgp.AppendString(m, "variables"), uint32(len(vars)))
	for k, v := range vars {
		m = msgp.AppendString(msgp.AppendString(m, k), v)
	}
	if !newLayout {
		return m
	}
	out := []byte{0xc1, 0x00}
	out = binary.BigEndian.AppendUint32(out, uint32(len(m)))
	return append(out, m...)
}

func TestImportFluentdChunks(t *testing.T) {
	s := newFileStore(t, SyncEveryWrite)
	keys, _ := ParseChunkKeys("tag,time,path")
	s.Keys = keys
	ids := []ID{NewID(), NewID()}
	for i, state := range []byte{'b', 'q'} {
		name := filepath.Join(s.Path, FluentdChunkName(state, ids[i]))
		os.WriteFile(name, entries(t, 3+i, "fluentd"), 0o644)
		os.WriteFile(name+".meta", fluentdMetaBytes(ids[i], 3+i, "app.old", 1700000000, map[string]string{"path": "cust-" + fmt.Sprint(i)}, i == 1), 0o644)
	}
	r := reopen(t, s)
	_, queued, problems := r.Recover()
	if len(problems) != 0 || len(queued) != 2 {
		t.Fatalf("imported %d, problems %v", len(queued), problems)
	}
	sort.Slice(queued, func(a, b int) bool { return queued[a].Records < queued[b].Records })
	for i, c := range queued {
		if c.ID != ids[i] || c.Records != 3+i || c.Key.Tag != "app.old" || c.Key.Timekey != 1700000000 || c.Key.Values()[0] != "cust-"+fmt.Sprint(i) {
			t.Errorf("chunk %d imported as %+v (values %v)", i, c, c.Key.Values())
		}
		data, err := r.Load(c)
		if n, verr := event.Validate(data); err != nil || verr != nil || n != 3+i {
			t.Errorf("chunk %d: %d entries, %v %v", i, n, err, verr)
		}
	}
	left, _ := filepath.Glob(filepath.Join(s.Path, "buffer.*"))
	if len(left) != 0 {
		t.Errorf("Fluentd files left behind (would be delivered twice): %v", left)
	}
	// A second start finds only Sluice's own chunks: nothing imported twice.
	again := reopen(t, r)
	_, q2, _ := again.Recover()
	if len(q2) != 2 {
		t.Errorf("second start recovered %d chunks", len(q2))
	}
}

// TestFileStoreModel drives the file store with random operations and
// crashes, against a model of what it must hold. An append that returned
// nil is acknowledged: it must be delivered exactly once, or still be in
// the store, after any number of crashes. A crash may tear an append that
// had not returned; that one was never acknowledged and may vanish.
// Under interval the queued chunks' files stay open for the syncer, which
// runs every 10 ms here, in the middle of the operations.
func TestFileStoreModel(t *testing.T) {
	for _, policy := range []string{SyncNever, SyncInterval} {
		for seed := uint64(1); seed <= 20; seed++ {
			t.Run(fmt.Sprint(policy, "/", seed), func(t *testing.T) { runModel(t, policy, seed) })
		}
	}
}

func runModel(t *testing.T, policy string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, seed*7))
	s := newFileStore(t, policy)
	// Memory copies: none, some chunks (the limit is hit), or all.
	s.MemoryLimit = []int64{0, 100 << 10, 1 << 30}[seed%3]
	type mchunk struct {
		c       *Chunk
		records []int   // record ids, in order
		appends [][]int // the ids of each append: one frame each
		queued  bool
	}
	var live []*mchunk
	acked := map[int]bool{}
	delivered := map[int]int{}
	next := 0
	payload := func(ids []int) []byte {
		var b event.Builder
		for _, id := range ids {
			rec, _ := event.EncodeRecord(map[string]any{"id": id})
			b.Append(1, rec)
		}
		return b.Bytes()
	}
	idsOf := func(data []byte) []int {
		var out []int
		r := event.NewReader(data)
		for r.Next() {
			v, _ := r.Entry().Record.Get("id")
			i, _, _ := msgp.ReadIntBytes(v)
			out = append(out, i)
		}
		if r.Err() != nil {
			t.Fatalf("seed %d: loaded data does not decode: %v", seed, r.Err())
		}
		return out
	}
	for step := 0; step < 300; step++ {
		switch op := rng.IntN(10); {
		case op < 4: // append to a staged chunk, or a new one
			var m *mchunk
			for _, x := range live {
				if !x.queued && rng.IntN(2) == 0 {
					m = x
					break
				}
			}
			if m == nil {
				m = &mchunk{c: newChunk(fmt.Sprint("k", rng.IntN(3)))}
				if err := s.Create(m.c); err != nil {
					t.Fatal(err)
				}
				live = append(live, m)
			}
			ids := make([]int, 1+rng.IntN(4))
			for i := range ids {
				ids[i] = next
				next++
			}
			if err := s.Append(m.c, payload(ids), len(ids)); err != nil {
				t.Fatal(err)
			}
			for _, id := range ids {
				acked[id] = true
			}
			m.records = append(m.records, ids...)
			m.appends = append(m.appends, ids)
		case op < 6: // enqueue
			for _, x := range live {
				if !x.queued {
					if err := s.Enqueue(x.c); err != nil {
						t.Fatal(err)
					}
					x.queued = true
					break
				}
			}
		case op < 8: // flush the oldest queued chunk; it may fail
			for i, x := range live {
				if !x.queued {
					continue
				}
				data, err := s.Load(x.c)
				if err != nil {
					t.Fatalf("seed %d: load: %v", seed, err)
				}
				got := idsOf(data)
				if fmt.Sprint(got) != fmt.Sprint(x.records) {
					t.Fatalf("seed %d: chunk holds %v, model %v", seed, got, x.records)
				}
				if held := s.Held(x.c); held != nil && !bytes.Equal(held, data) {
					t.Fatalf("seed %d: the held copy differs from what Load returned", seed)
				}
				if rng.IntN(4) == 0 {
					break // the destination failed; the chunk stays queued
				}
				for _, id := range got {
					delivered[id]++
				}
				if err := s.Commit(x.c); err != nil {
					t.Fatal(err)
				}
				live = append(live[:i], live[i+1:]...)
				break
			}
		default: // crash, sometimes in the middle of an unacknowledged append
			// Sometimes a byte of an acknowledged frame (not the last)
			// flips on disk first: that frame's records are quarantined,
			// counted, and every other one still comes back.
			var flipped *mchunk
			var flippedFrame, flippedAt int
			if rng.IntN(3) == 0 {
				for _, x := range live {
					if len(x.appends) < 2 {
						continue
					}
					raw, err := os.ReadFile(ChunkFile(x.c))
					if err != nil {
						t.Fatal(err)
					}
					_, _, off, _ := parseHeader(raw)
					var starts []int
					walkFrames(raw, off, frameSeed(raw[4], x.c.ID), func(start, _ int, _ uint32) { starts = append(starts, start) })
					if len(starts) != len(x.appends) {
						t.Fatalf("seed %d: %d frames on disk for %d appends", seed, len(starts), len(x.appends))
					}
					flippedFrame = rng.IntN(len(starts) - 1)
					flippedAt = starts[flippedFrame]
					at := starts[flippedFrame] + frameHeaderLen + 1
					f, _ := os.OpenFile(ChunkFile(x.c), os.O_WRONLY, 0)
					f.WriteAt([]byte{raw[at] ^ 0x20}, int64(at))
					f.Close()
					flipped = x
					break
				}
			}
			// Sometimes the crash comes between the steps of a salvage: its
			// temporary copy is written (here, half of it) but not renamed
			// over the chunk. The chunk is still whole; the copy must go.
			var strayCopy string
			if len(live) > 0 && rng.IntN(4) == 0 {
				x := live[rng.IntN(len(live))]
				raw, _ := os.ReadFile(ChunkFile(x.c))
				strayCopy = ChunkFile(x.c) + ".salvage"
				os.WriteFile(strayCopy, raw[:len(raw)/2], 0o644)
			}
			// Or between the steps of a spare's reuse: the new chunk's
			// header is written over the spare, which is not yet renamed.
			// Such a file holds nothing acknowledged, and must not come
			// back as a second copy of a chunk.
			var straySpare string
			if len(live) > 0 && rng.IntN(4) == 0 {
				x := live[rng.IntN(len(live))]
				raw, _ := os.ReadFile(ChunkFile(x.c))
				straySpare = filepath.Join(s.Path, "sluice.s"+NewID().String()+".chunk")
				os.WriteFile(straySpare, raw, 0o644)
			}
			if rng.IntN(2) == 0 {
				for _, x := range live {
					if !x.queued {
						f, _ := os.OpenFile(ChunkFile(x.c), os.O_WRONLY|os.O_APPEND, 0)
						half := payload([]int{-1})
						var hdr [frameHeaderLen]byte
						binary.BigEndian.PutUint32(hdr[0:4], uint32(len(half)))
						f.Write(hdr[:])
						f.Write(half[:len(half)/2])
						f.Close()
						break
					}
				}
			}
			s = reopen(t, s)
			staged, queued, problems := s.Recover()
			if straySpare != "" {
				if _, err := os.Stat(straySpare); err == nil {
					t.Fatalf("seed %d: a spare survived recovery", seed)
				}
			}
			if strayCopy != "" {
				if _, err := os.Stat(strayCopy); err == nil {
					t.Fatalf("seed %d: a salvage's leftover copy survived recovery", seed)
				}
			}
			if flipped != nil {
				if len(problems) != 1 {
					t.Fatalf("seed %d: a flipped byte gave recovery problems %v, want one", seed, problems)
				}
				lost := flipped.appends[flippedFrame]
				for _, id := range lost {
					delete(acked, id) // quarantined and counted, not lost silently
				}
				flipped.appends = append(flipped.appends[:flippedFrame], flipped.appends[flippedFrame+1:]...)
				flipped.records = nil
				for _, ids := range flipped.appends {
					flipped.records = append(flipped.records, ids...)
				}
				if _, err := os.Stat(filepath.Join(s.BackupDir, fmt.Sprintf("%s.damaged-%d.bin", flipped.c.ID, flippedAt))); err != nil {
					t.Fatalf("seed %d: the damaged frame is not in the backup directory: %v", seed, err)
				}
				problems = nil
			}
			if len(problems) > 0 {
				t.Fatalf("seed %d: recovery problems %v", seed, problems)
			}
			byID := map[ID]*mchunk{}
			for _, x := range live {
				byID[x.c.ID] = x
			}
			live = live[:0]
			for _, c := range append(staged, queued...) {
				x := byID[c.ID]
				if x == nil {
					t.Fatalf("seed %d: recovered a chunk the model does not know", seed)
				}
				if c.Records != len(x.records) {
					t.Fatalf("seed %d: recovered %d records, model %d", seed, c.Records, len(x.records))
				}
				x.c = c
				x.queued = !contains(staged, c)
				live = append(live, x)
				delete(byID, c.ID)
			}
			for _, x := range byID {
				if len(x.records) > 0 {
					t.Fatalf("seed %d: a chunk with %d acknowledged records vanished", seed, len(x.records))
				}
			}
		}
	}
	// Deliver what is left and check the books.
	for _, x := range live {
		if !x.queued {
			s.Enqueue(x.c)
		}
		data, err := s.Load(x.c)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range idsOf(data) {
			delivered[id]++
		}
	}
	for id := range acked {
		if delivered[id] != 1 {
			t.Fatalf("seed %d: record %d delivered %d times", seed, id, delivered[id])
		}
	}
}

func contains(list []*Chunk, c *Chunk) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

func FuzzRecoverFile(f *testing.F) {
	dir := f.TempDir()
	s := &File{Path: dir, BackupDir: filepath.Join(dir, "backup"), Policy: SyncNever}
	s.Open()
	c := newChunk("t", "v")
	s.Create(c)
	s.Append(c, entries(f, 2, "t"), 2)
	good, _ := os.ReadFile(ChunkFile(c))
	s.Commit(c)
	f.Add(good)
	f.Add(good[:len(good)-5])
	f.Add([]byte("SLCK\x01\x00\x00\x00\x00\x00\x00\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d := t.TempDir()
		st := &File{Path: d, BackupDir: filepath.Join(d, "backup"), Policy: SyncNever}
		if err := st.Open(); err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		name := filepath.Join(d, "sluice.q"+NewID().String()+".chunk")
		os.WriteFile(name, data, 0o644)
		_, queued, _ := st.Recover()
		for _, c := range queued {
			// Whatever recovery accepts (salvaged or not) loads; only a
			// gzip payload, which recovery does not inflate, may still
			// fail to, cleanly.
			if _, err := st.Load(c); err != nil && (len(data) < 6 || data[5]&flagGzip == 0) {
				t.Fatalf("recovered a chunk that does not load: %v", err)
			}
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	data := entries(b, 500, "bench") // one PackedForward message
	stores := map[string]func() Store{
		"memory": func() Store { return &Memory{ChunkLimit: 8 << 20} },
	}
	for _, policy := range []string{SyncNever, SyncInterval, SyncEveryWrite} {
		stores["file/"+policy] = func() Store {
			s := &File{Path: filepath.Join(b.TempDir(), "buf"), BackupDir: b.TempDir(), Policy: policy, Interval: time.Second}
			if err := s.Open(); err != nil {
				b.Fatal(err)
			}
			return s
		}
	}
	for _, name := range []string{"memory", "file/never", "file/interval", "file/every_write"} {
		b.Run(name, func(b *testing.B) {
			s := stores[name]()
			defer s.Close()
			var c *Chunk
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if c == nil || c.Size > 8<<20 {
					if c != nil {
						s.Enqueue(c)
						s.Commit(c)
					}
					c = newChunk("bench")
					if err := s.Create(c); err != nil {
						b.Fatal(err)
					}
				}
				if err := s.Append(c, data, 500); err != nil {
					b.Fatal(err)
				}
				if err := s.Durable(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkLoad(b *testing.B) {
	data := entries(b, 500, "bench")
	s := &File{Path: filepath.Join(b.TempDir(), "buf"), Policy: SyncNever}
	s.Open()
	defer s.Close()
	c := newChunk("bench")
	s.Create(c)
	for i := 0; i < 80; i++ { // about 8 MB, a default chunk
		s.Append(c, data, 500)
	}
	s.Enqueue(c)
	b.SetBytes(c.Size)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Load(c); err != nil {
			b.Fatal(err)
		}
	}
}

func TestChunkMetaSurvivesRestartAndEnqueue(t *testing.T) {
	s := newFileStore(t, SyncEveryWrite)
	c := newChunk("t")
	s.Create(c)
	s.Append(c, entries(t, 1, "t"), 1)
	c.Meta = map[string]string{"s3_key": "logs/host_2026112113_0.gz"}
	if err := s.SaveMeta(c); err != nil {
		t.Fatal(err)
	}
	s.Enqueue(c) // renames the chunk; the meta is keyed by id
	r := reopen(t, s)
	_, queued, _ := r.Recover()
	if len(queued) != 1 || queued[0].Meta["s3_key"] != "logs/host_2026112113_0.gz" {
		t.Fatalf("recovered %+v", queued)
	}
	r.Commit(queued[0])
	if m, _ := filepath.Glob(filepath.Join(s.Path, "*.meta")); len(m) != 0 {
		t.Errorf("meta left after commit: %v", m)
	}
}

// Close leaves staged chunks on disk but no descriptor open, whether the
// chunk was created or recovered.
func TestFileStoreCloseReleasesChunkFiles(t *testing.T) {
	s := newFileStore(t, SyncInterval)
	c := newChunk("a")
	if err := s.Create(c); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(c, entries(t, 3, "a"), 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.file.f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("a created chunk's file is still open after Close (%v)", err)
	}
	n := reopen(t, s)
	staged, _, problems := n.Recover()
	if len(staged) != 1 || len(problems) > 0 || staged[0].Records != 3 {
		t.Fatalf("recovered %v, problems %v", staged, problems)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := staged[0].file.f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("a recovered chunk's file is still open after Close (%v)", err)
	}
}

// TestFileStoreQueuedChunkLeftToSyncer: under interval a queued chunk is
// not fsynced as it is queued. Its file stays open until a sync round has
// covered it (then it is closed, and survives a restart) or until the
// chunk is committed first (then it is closed and gone).
// intervalStore is a file store whose syncer never runs on its own: a test
// calls syncRound.
func intervalStore(t *testing.T) *File {
	dir := t.TempDir()
	s := &File{Path: filepath.Join(dir, "buf"), BackupDir: filepath.Join(dir, "backup"), Policy: SyncInterval, Interval: time.Hour}
	if err := s.Open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// queueChunk creates a chunk of n records in s and queues it.
func queueChunk(t *testing.T, s *File, n int) *Chunk {
	c := newChunk("a")
	if err := s.Create(c); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(c, entries(t, n, "a"), n); err != nil {
		t.Fatal(err)
	}
	if err := s.Enqueue(c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestFileStoreQueuedChunkLeftToSyncer(t *testing.T) {
	s := intervalStore(t)
	synced, committed := queueChunk(t, s, 3), queueChunk(t, s, 3)
	for _, c := range []*Chunk{synced, committed} {
		if c.file.unsynced == nil {
			t.Fatal("a queued chunk was fsynced and closed at once")
		}
		if err := s.Append(c, entries(t, 1, "a"), 1); err == nil {
			t.Fatal("a queued chunk took an append")
		}
	}
	held := committed.file.unsynced
	if err := s.Commit(committed); err != nil {
		t.Fatal(err)
	}
	if _, err := held.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("a committed chunk's file is still open (%v)", err)
	}
	if err := s.syncRound(); err != nil {
		t.Fatal(err)
	}
	f := synced.file.unsynced
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("a queued chunk's file is still open after the sync round (%v)", err)
	}
	if n := len(s.open) + len(s.queued); n != 0 {
		t.Errorf("%d files still held open", n)
	}
	if _, err := os.Stat(ChunkFile(committed)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("committed chunk still on disk (%v)", err)
	}
	data, err := s.Load(synced)
	if n, verr := event.Validate(data); err != nil || verr != nil || n != 3 {
		t.Fatalf("Load after the round: %d entries, %v, %v", n, err, verr)
	}
	_, queued, problems := reopen(t, s).Recover()
	if len(queued) != 1 || queued[0].ID != synced.ID || len(problems) > 0 {
		t.Fatalf("recovered %v, problems %v", queued, problems)
	}
}

// TestFileStoreQueuedOpenBounded: past maxQueuedOpen waiting chunks, a
// queued chunk is fsynced and closed as it is queued, so descriptors stay
// bounded whatever the output's pace.
func TestFileStoreQueuedOpenBounded(t *testing.T) {
	s := intervalStore(t)
	for i := 0; i <= maxQueuedOpen; i++ {
		c := queueChunk(t, s, 1)
		if kept := c.file.unsynced != nil; kept != (i < maxQueuedOpen) {
			t.Fatalf("chunk %d: kept open %v", i, kept)
		}
	}
	if len(s.open) != maxQueuedOpen {
		t.Errorf("%d files open, want %d", len(s.open), maxQueuedOpen)
	}
}

// The store never takes a chunk it would refuse at the next start: a key
// too large for the header is refused by Create, before any append (and
// so before any acknowledgement); any key it takes comes back.
func TestFileStoreRefusesKeysItCannotReadBack(t *testing.T) {
	for _, size := range []int{100, maxMetaLen - 200, maxMetaLen - 60, maxMetaLen, 1 << 20, 2 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			s := newFileStore(t, SyncEveryWrite)
			c := newChunk(strings.Repeat("t", size))
			if err := s.Create(c); err != nil {
				if files, _ := filepath.Glob(filepath.Join(s.Path, "*.chunk")); len(files) != 0 {
					t.Errorf("a refused chunk left %v", files)
				}
				return
			}
			if err := s.Append(c, entries(t, 1, "x"), 1); err != nil {
				t.Fatal(err)
			}
			if err := s.Durable(context.Background()); err != nil {
				t.Fatal(err)
			}
			st, _, problems := reopen(t, s).Recover()
			if len(problems) != 0 || len(st) != 1 || st[0].Key.Tag != c.Key.Tag {
				t.Errorf("a chunk the store took with a %d-byte tag came back as %d chunks, problems %v", size, len(st), problems)
			}
		})
	}
}

// Under every_write an acknowledged append survives a machine crash only
// if its file's name does: the first Durable after a chunk file is
// created fsyncs the directory too, and later ones do not again.
func TestDurableSyncsTheDirectoryOfNewChunks(t *testing.T) {
	var dirSyncs []string
	syncDirHook = func(dir string) error {
		dirSyncs = append(dirSyncs, dir)
		return syncDir(dir)
	}
	t.Cleanup(func() { syncDirHook = syncDir })
	s := newFileStore(t, SyncEveryWrite)
	c := newChunk("app")
	if err := s.Create(c); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := s.Append(c, entries(t, 1, "app"), 1); err != nil {
			t.Fatal(err)
		}
		if err := s.Durable(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if len(dirSyncs) != 1 || dirSyncs[0] != s.Path {
		t.Errorf("directory fsyncs %v, want one of %s", dirSyncs, s.Path)
	}
}

// A write failure other than a full disk is reported for writeErrorHold,
// then no more, so that a readiness probe lets appends try again.
func TestWriteErrorHoldsForAWhile(t *testing.T) {
	s := newFileStore(t, SyncNever)
	c := newChunk("app")
	if err := s.Create(c); err != nil {
		t.Fatal(err)
	}
	c.file.f.Close() // the next append fails, as on an I/O error
	if err := s.Append(c, entries(t, 1, "app"), 1); err == nil {
		t.Fatal("an append to a closed file succeeded")
	}
	if s.WriteError() == nil {
		t.Error("a failed append is not reported")
	}
	f := s.failed.Load()
	s.failed.Store(&writeFailure{err: f.err, at: f.at.Add(-writeErrorHold)})
	if err := s.WriteError(); err != nil {
		t.Errorf("still reported after writeErrorHold: %v", err)
	}
}
