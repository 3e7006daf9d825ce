package output

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/plugin"
)

func fileConfig(t *testing.T, dir string) BufferConfig {
	c := DefaultBufferConfig("file")
	c.Path = dir
	c.FlushInterval = 10 * time.Millisecond
	c.FlushThreadInterval = 5 * time.Millisecond
	c.RetryWait = 5 * time.Millisecond
	c.RetryRandomize = false
	c.Fsync = "every_write"
	return c
}

// TestFileBufferSurvivesRestart: the destination is down, the process
// stops; a new runtime on the same directory delivers everything.
func TestFileBufferSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	down := newSink()
	down.failures = 1 << 30
	cfg := fileConfig(t, dir)
	cfg.RetryForever = true
	r := startRuntime(t, down, cfg)
	for i := 0; i < 3; i++ {
		if err := r.Emit(context.Background(), stream(t, "x", 1, 2, 3)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if left := r.Stop(ctx); left != 9 {
		t.Fatalf("left %d, want 9 kept on disk", left)
	}
	if r.Stats.DroppedRecords.Load() != 0 {
		t.Errorf("a file buffer counted %d records as dropped at shutdown", r.Stats.DroppedRecords.Load())
	}
	files, _ := filepath.Glob(filepath.Join(dir, "sluice.[bq]*.chunk"))
	if len(files) == 0 {
		t.Fatal("no chunk files on disk")
	}

	up := newSink()
	r2 := startRuntime(t, up, fileConfig(t, dir))
	waitRecords(t, up, 9)
	stop(t, r2)
	if left, _ := filepath.Glob(filepath.Join(dir, "sluice.*.chunk")); len(left) != 0 {
		t.Errorf("delivered chunks still on disk: %v", left)
	}
}

func TestPermanentErrorGoesToBackup(t *testing.T) {
	root := t.TempDir()
	s := newSink()
	s.failures = 1
	s.err = &plugin.Permanent{Err: errors.New("400 bad request")}
	cfg := fastConfig("")
	r, err := New("out.perm", s, cfg, Options{Logger: quiet, RootDir: root})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.Emit(context.Background(), stream(t, "x", 1, 2)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return r.Stats.BackupRecords.Load() == 2 })
	stop(t, r)
	backups, _ := filepath.Glob(filepath.Join(root, "backup", "out.perm", "*.permanent_error.log"))
	if len(backups) != 1 || r.Stats.RetryCount.Load() != 0 || r.Stats.DroppedRecords.Load() != 0 {
		t.Errorf("backups %v, retries %d, dropped %d", backups, r.Stats.RetryCount.Load(), r.Stats.DroppedRecords.Load())
	}
}

func TestDisableChunkBackupDropsAndCounts(t *testing.T) {
	s := newSink()
	s.failures = 1
	s.err = &plugin.Permanent{Err: errors.New("no")}
	cfg := fastConfig("")
	cfg.DisableChunkBackup = true
	r := startRuntime(t, s, cfg)
	r.Emit(context.Background(), stream(t, "x", 1))
	waitFor(t, func() bool { return r.Stats.DroppedRecords.Load() == 1 })
	stop(t, r)
	if r.Stats.Dropped[DropUndeliverable].Load() != 1 {
		t.Errorf("the drop is not counted as undeliverable")
	}
}

func TestSecondaryAfterThreshold(t *testing.T) {
	primary, second := newSink(), newSink()
	primary.failures = 1 << 30
	cfg := fastConfig("")
	cfg.RetryMaxTimes = 4
	cfg.RetrySecondaryThreshold = 0.5 // after 2 failed retries
	r, err := New("out.sec", primary, cfg, Options{Logger: quiet, Secondary: second})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	r.Emit(context.Background(), stream(t, "x", 1, 2, 3))
	waitRecords(t, second, 3)
	stop(t, r)
	if r.Stats.SecondaryWrites.Load() != 1 || r.Stats.RetryCount.Load() < 2 {
		t.Errorf("secondary writes %d after %d retries", r.Stats.SecondaryWrites.Load(), r.Stats.RetryCount.Load())
	}
}

func TestPermanentErrorGoesToSecondaryAtOnce(t *testing.T) {
	primary, second := newSink(), newSink()
	primary.failures = 1 << 30
	primary.err = &plugin.Permanent{Err: errors.New("access denied")}
	r, err := New("out.sec2", primary, fastConfig(""), Options{Logger: quiet, Secondary: second})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	r.Emit(context.Background(), stream(t, "x", 1))
	waitRecords(t, second, 1)
	stop(t, r)
	if r.Stats.RetryCount.Load() != 0 {
		t.Errorf("a permanent error was retried %d times before the secondary", r.Stats.RetryCount.Load())
	}
}

func TestFileBufferNeedsPath(t *testing.T) {
	cfg := DefaultBufferConfig("file")
	if _, err := New("x", newSink(), cfg, Options{Logger: quiet}); err == nil {
		t.Error("a file buffer without path or root_dir was accepted")
	}
	root := t.TempDir()
	r, err := New("my.out", newSink(), cfg, Options{Logger: quiet, RootDir: root})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer stop(t, r)
	if _, err := os.Stat(filepath.Join(root, "my.out", "buffer")); err != nil {
		t.Errorf("root_dir buffer directory: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// keeper holds on to each chunk's Data as given, as an output whose HTTP
// transport may still read a body after Write returns would, and a copy
// taken during Write.
type keeper struct {
	mu     sync.Mutex
	kept   [][]byte
	copies [][]byte
	got    chan struct{}
}

func (k *keeper) Write(_ context.Context, c *plugin.Chunk) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kept = append(k.kept, c.Data)
	k.copies = append(k.copies, append([]byte(nil), c.Data...))
	k.got <- struct{}{}
	return nil
}

type borrower struct{ *keeper }

func (borrower) doneWithData() {}

// TestLoadMemoryReusedOnlyForBorrowers: chunks read back from a file
// buffer for an output that declares it is done with the bytes when Write
// returns share one piece of memory; for any other output each chunk,
// read back or held in memory, keeps its own, intact after later chunks.
func TestLoadMemoryReusedOnlyForBorrowers(t *testing.T) {
	for _, c := range []struct {
		borrows bool
		cache   config.Size
	}{{false, 0}, {true, 0}, {false, 1 << 20}, {true, 1 << 20}} {
		borrows := c.borrows
		k := &keeper{got: make(chan struct{}, 10)}
		var out plugin.BufferedOutput = k
		if borrows {
			out = borrower{k}
		}
		cfg := fileConfig(t, t.TempDir())
		cfg.FlushThreadCount = 1
		cfg.MemoryCacheSize = c.cache // read back, or handed over from memory
		r := startRuntime(t, out, cfg)
		for i := int64(0); i < 3; i++ {
			// One chunk at a time: each written before the next exists.
			if err := r.Emit(context.Background(), stream(t, "x", i, i, i)); err != nil {
				t.Fatal(err)
			}
			<-k.got
		}
		stop(t, r)
		shared := 0
		for i := range k.kept {
			if string(k.kept[i]) != string(k.copies[i]) && !borrows {
				t.Errorf("chunk %d's bytes changed after its Write returned", i)
			}
			if i > 0 && unsafe.SliceData(k.kept[i]) == unsafe.SliceData(k.kept[0]) {
				shared++
			}
		}
		if borrows && c.cache > 0 {
			// Held copies: whether the next chunk gets this one's memory
			// depends on whether it was created before this one was
			// committed. TestFlushFromHeldCopy checks the hand-over.
			continue
		}
		if want := map[bool]int{false: 0, true: 2}[borrows]; shared != want {
			t.Errorf("borrows=%v cache=%d: %d later chunks in the first one's memory, want %d", borrows, c.cache, shared, want)
		}
	}
}

// TestKeptLoadMemoryBounded: a runtime keeps at most one piece of read
// memory per flush thread, and none larger than maxKeptLoadBuf.
func TestKeptLoadMemoryBounded(t *testing.T) {
	r := &Runtime{cfg: BufferConfig{FlushThreadCount: 2}}
	for _, size := range []int{1 << 20, maxKeptLoadBuf + 1, 1 << 20, 1 << 20} {
		b := make([]byte, 0, size)
		r.giveLoadBuf(&b)
	}
	if len(r.loadBufs) != 2 {
		t.Fatalf("kept %d pieces, want 2 (one per flush thread)", len(r.loadBufs))
	}
	for _, b := range r.loadBufs {
		if cap(b) > maxKeptLoadBuf {
			t.Errorf("kept a piece of %d bytes", cap(b))
		}
	}
	if b := r.takeLoadBuf(); cap(*b) != 1<<20 || len(r.loadBufs) != 1 {
		t.Errorf("took %d bytes, %d left", cap(*b), len(r.loadBufs))
	}
}

// TestFlushFromHeldCopy: with memory_cache_size, a chunk is written from
// the memory copy made as it was appended, not read back: a bit flipped in
// its file after the append does not reach the output. Without the cache
// the read back catches the flip and moves the chunk aside.
func TestFlushFromHeldCopy(t *testing.T) {
	for _, cache := range []config.Size{0, 1 << 20} {
		dir := t.TempDir()
		s := newSink()
		s.failures = 1 << 30 // down until the file is damaged
		cfg := fileConfig(t, dir)
		cfg.MemoryCacheSize = cache
		cfg.RetryForever = true
		out := &borrowingSink{sink: s}
		r := startRuntime(t, out, cfg)
		out.rt = r
		if err := r.Emit(context.Background(), stream(t, "x", 1, 2, 3)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, func() bool { return r.Stats.RetryCount.Load() > 0 })
		files, _ := filepath.Glob(filepath.Join(dir, "sluice.q*.chunk"))
		if len(files) != 1 {
			t.Fatalf("queued chunk files: %v", files)
		}
		raw, _ := os.ReadFile(files[0])
		raw[len(raw)-2] ^= 0x01
		if err := os.WriteFile(files[0], raw, 0o644); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		s.failures = 0
		s.mu.Unlock()
		if cache > 0 {
			waitRecords(t, s, 3)
			if got := string(s.chunks[0].Data); got != string(stream(t, "x", 1, 2, 3).Data) {
				t.Errorf("cache=%d: the output got other bytes than were appended", cache)
			}
			if n, held := out.writes.Load(), out.handedOver.Load(); held != n {
				t.Errorf("cache=%d: %d of %d writes got the held memory, not a copy", cache, held, n)
			}
		} else {
			waitFor(t, func() bool { return r.Stats.CorruptChunks.Load() == 1 })
		}
		stop(t, r)
	}
}

// borrowingSink is a sink that borrows chunk data and counts the writes
// given the store's held memory itself.
type borrowingSink struct {
	*sink
	rt         *Runtime
	writes     atomic.Int32
	handedOver atomic.Int32
}

func (*borrowingSink) doneWithData() {}

func (b *borrowingSink) Write(ctx context.Context, c *plugin.Chunk) error {
	b.writes.Add(1)
	b.rt.mu.Lock()
	var held []byte
	for sc := range b.rt.inflight {
		if sc.ID == c.ID {
			held = b.rt.store.(buffer.Holder).Held(sc)
		}
	}
	b.rt.mu.Unlock()
	if len(held) > 0 && unsafe.SliceData(held) == unsafe.SliceData(c.Data) {
		b.handedOver.Add(1)
	}
	return b.sink.Write(ctx, c)
}
