package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// sink records written chunks; failures makes the next writes fail.
type sink struct {
	mu       sync.Mutex
	chunks   []*plugin.Chunk
	failures int
	err      error
	got      chan struct{}
}

func newSink() *sink { return &sink{got: make(chan struct{}, 1000)} }

func (s *sink) Write(ctx context.Context, c *plugin.Chunk) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failures > 0 {
		s.failures--
		if s.err != nil {
			return s.err
		}
		return errors.New("destination down")
	}
	cp := *c
	cp.Data = append([]byte(nil), c.Data...)
	s.chunks = append(s.chunks, &cp)
	s.got <- struct{}{}
	return nil
}

func (s *sink) records() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.chunks {
		n += c.Records
	}
	return n
}

func stream(tb testing.TB, tag string, times ...int64) event.Stream {
	tb.Helper()
	var b event.Builder
	for i, t := range times {
		rec, err := event.EncodeRecord(map[string]any{"n": i, "path": []string{"a", "b"}[i%2]})
		if err != nil {
			tb.Fatal(err)
		}
		b.Append(event.Time(t*1e9), rec)
	}
	return b.Stream(tag)
}

func fastConfig(keys string) BufferConfig {
	c := DefaultBufferConfig("memory")
	c.ChunkKeys = keys
	c.FlushInterval = 10 * time.Millisecond
	c.FlushThreadInterval = 5 * time.Millisecond
	c.RetryWait = 5 * time.Millisecond
	c.RetryRandomize = false
	c.TimekeyUseUTC = true
	return c
}

// doneWithData is a test output that declares
// plugin.Info.DoneWithDataOnReturn.
type doneWithData interface{ doneWithData() }

func startRuntime(t *testing.T, out plugin.BufferedOutput, cfg BufferConfig) *Runtime {
	t.Helper()
	// A root of the test's own keeps backups out of the shared default.
	_, done := out.(doneWithData)
	r, err := New("test", out, cfg, Options{Logger: quiet, RootDir: t.TempDir(), DoneWithData: done})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

func stop(t *testing.T, r *Runtime) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return r.Stop(ctx)
}

func waitRecords(t *testing.T, s *sink, want int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for s.records() < want {
		select {
		case <-s.got:
		case <-deadline:
			t.Fatalf("got %d records, want %d", s.records(), want)
		}
	}
}

func TestFlushIntervalAndTagKeys(t *testing.T) {
	s := newSink()
	r := startRuntime(t, s, fastConfig("tag"))
	ctx := context.Background()
	for _, tag := range []string{"a", "b", "a"} {
		if err := r.Emit(ctx, stream(t, tag, 1, 2)); err != nil {
			t.Fatal(err)
		}
	}
	waitRecords(t, s, 6)
	if left := stop(t, r); left != 0 {
		t.Fatalf("%d left", left)
	}
	byTag := map[string]int{}
	for _, c := range s.chunks {
		byTag[c.Key.Tag] += c.Records
		if n, err := event.Validate(c.Data); err != nil || n != c.Records {
			t.Errorf("chunk has %d valid entries (%v), records %d", n, err, c.Records)
		}
	}
	if byTag["a"] != 4 || byTag["b"] != 2 {
		t.Errorf("records by tag %v", byTag)
	}
}

func TestChunkLimitSplits(t *testing.T) {
	s := newSink()
	cfg := fastConfig("")
	cfg.ChunkLimitRecords = 3
	cfg.FlushInterval = time.Hour
	r := startRuntime(t, s, cfg)
	if err := r.Emit(context.Background(), stream(t, "x", 1, 2, 3, 4, 5, 6, 7)); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, s, 6) // two full chunks flush without waiting for the interval
	stop(t, r)           // the last record flushes at shutdown
	var sizes []int
	for _, c := range s.chunks {
		sizes = append(sizes, c.Records)
	}
	if len(sizes) != 3 || sizes[0] != 3 || sizes[1] != 3 || sizes[2] != 1 {
		t.Errorf("chunk sizes %v, want [3 3 1]", sizes)
	}
}

func TestTimekeyAndRecordKeys(t *testing.T) {
	s := newSink()
	cfg := fastConfig("path,time")
	cfg.Timekey = time.Hour
	cfg.TimekeyWait = 0
	r := startRuntime(t, s, cfg)
	// Two hours of events, two path values each: four chunks, all in the
	// past, so lazy mode flushes them at the next tick.
	if err := r.Emit(context.Background(), stream(t, "x", 3600, 3601, 7200, 7300)); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, s, 4)
	stop(t, r)
	var keys []string
	for _, c := range s.chunks {
		keys = append(keys, strings.Join(c.Key.Values(), ",")+"@"+time.Unix(c.Key.Timekey, 0).UTC().Format("15"))
	}
	sort.Strings(keys)
	if strings.Join(keys, " ") != "a@01 a@02 b@01 b@02" {
		t.Errorf("chunk keys %v", keys)
	}
}

// TestTimekeyWindowsInOneStream: one stream whose events cross timekey
// windows and come back is split by window, with tag and time keys only
// (the keys prepare takes from the run before when the window holds).
func TestTimekeyWindowsInOneStream(t *testing.T) {
	s := newSink()
	cfg := fastConfig("tag,time")
	cfg.Timekey = time.Hour
	cfg.TimekeyWait = 0
	r := startRuntime(t, s, cfg)
	if err := r.Emit(context.Background(), stream(t, "x", 3600, 3601, 7200, 7300, 3700)); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, s, 5)
	stop(t, r)
	perHour := map[string]int{}
	for _, c := range s.chunks {
		perHour[c.Key.Tag+"@"+time.Unix(c.Key.Timekey, 0).UTC().Format("15")] += c.Records
	}
	if fmt.Sprint(perHour) != "map[x@01:3 x@02:2]" {
		t.Errorf("records per chunk key: %v", perHour)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	s := newSink()
	s.failures = 3
	r := startRuntime(t, s, fastConfig(""))
	if err := r.Emit(context.Background(), stream(t, "x", 1, 2)); err != nil {
		t.Fatal(err)
	}
	waitRecords(t, s, 2)
	stop(t, r)
	if got := r.Stats.RetryCount.Load(); got != 3 {
		t.Errorf("retries %d, want 3", got)
	}
	if len(s.chunks) != 1 {
		t.Errorf("delivered %d chunks, want exactly 1", len(s.chunks))
	}
}

// A chunk refused for good whose backup fails is dropped and counted.
func TestPermanentErrorDropsAndCounts(t *testing.T) {
	s := newSink()
	s.failures = 1
	s.err = &plugin.Permanent{Err: errors.New("bad request")}
	notDir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := New("test", s, fastConfig(""), Options{Logger: quiet, RootDir: notDir})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.Emit(context.Background(), stream(t, "x", 1, 2)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Stats.DroppedRecords.Load() != 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop(t, r)
	if r.Stats.DroppedRecords.Load() != 2 || r.Stats.RetryCount.Load() != 0 {
		t.Errorf("dropped %d retried %d", r.Stats.DroppedRecords.Load(), r.Stats.RetryCount.Load())
	}
}

func TestOverflowActions(t *testing.T) {
	one := stream(t, "x", 1)
	t.Run("throw_exception", func(t *testing.T) {
		s := newSink()
		s.failures = 1 << 30
		cfg := fastConfig("")
		cfg.TotalLimitSize = 3 * 1024
		cfg.ChunkLimitSize = 1024
		cfg.RetryForever = true
		r := startRuntime(t, s, cfg)
		var err error
		for i := 0; i < 1000 && err == nil; i++ {
			err = r.Emit(context.Background(), one)
		}
		if !errors.Is(err, plugin.ErrOverflow) {
			t.Fatalf("want ErrOverflow, got %v", err)
		}
		if _, size := r.Pending(); size > 3*1024 {
			t.Errorf("buffer holds %d bytes, limit 3072", size)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		r.Stop(ctx)
	})
	t.Run("block", func(t *testing.T) {
		s := newSink()
		s.failures = 1 << 30
		cfg := fastConfig("")
		cfg.TotalLimitSize = 2 * int64size(one)
		cfg.ChunkLimitSize = cfg.TotalLimitSize
		cfg.OverflowAction = "block"
		cfg.RetryForever = true
		r := startRuntime(t, s, cfg)
		for i := 0; i < 2; i++ {
			if err := r.Emit(context.Background(), one); err != nil {
				t.Fatal(err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if err := r.Emit(ctx, one); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("a full blocking buffer returned %v", err)
		}
		if got := r.Stats.OverflowCount.Load(); got != 1 {
			t.Errorf("a blocked emit counted %d overflows, want 1", got)
		}
		s.mu.Lock()
		s.failures = 0
		s.mu.Unlock()
		if err := r.Emit(context.Background(), one); err != nil {
			t.Fatalf("after the destination recovered: %v", err)
		}
		stop(t, r)
		if s.records() != 3 {
			t.Errorf("delivered %d, want 3", s.records())
		}
	})
	t.Run("drop_oldest_chunk", func(t *testing.T) {
		s := newSink()
		s.failures = 1 << 30
		cfg := fastConfig("")
		cfg.TotalLimitSize = 2 * int64size(one)
		cfg.ChunkLimitSize = int64size(one)
		cfg.OverflowAction = "drop_oldest_chunk"
		cfg.RetryForever = true
		cfg.FlushInterval = time.Hour
		r := startRuntime(t, s, cfg)
		for i := 0; i < 5; i++ {
			if err := r.Emit(context.Background(), one); err != nil {
				t.Fatal(err)
			}
		}
		if got := r.Stats.Dropped[DropOverflow].Load(); got < 2 || got != r.Stats.DroppedRecords.Load() {
			t.Errorf("dropped %d records for overflow (of %d), want at least 2, all for overflow", got, r.Stats.DroppedRecords.Load())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		r.Stop(ctx)
	})
}

func int64size(s event.Stream) config.Size { return config.Size(len(s.Data)) }

func TestStopDrainsAndCountsLeftovers(t *testing.T) {
	s := newSink()
	cfg := fastConfig("")
	cfg.FlushInterval = time.Hour
	r := startRuntime(t, s, cfg)
	if err := r.Emit(context.Background(), stream(t, "x", 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	if left := stop(t, r); left != 0 || s.records() != 3 {
		t.Fatalf("left %d delivered %d", left, s.records())
	}
	if err := r.Emit(context.Background(), stream(t, "x", 4)); err == nil {
		t.Error("a stopped runtime accepted events it would never flush")
	}

	down := newSink()
	down.failures = 1 << 30
	cfg.RetryForever = true
	r = startRuntime(t, down, cfg)
	if err := r.Emit(context.Background(), stream(t, "x", 1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if left := r.Stop(ctx); left != 3 {
		t.Fatalf("left %d, want 3 when the destination is down", left)
	}
	if r.Stats.DroppedRecords.Load() != 3 || r.Stats.Dropped[DropShutdown].Load() != 3 {
		t.Errorf("leftovers not counted as dropped at shutdown")
	}
}

func TestConfigErrors(t *testing.T) {
	cases := map[string]func(*BufferConfig){
		"time without timekey": func(c *BufferConfig) { c.ChunkKeys = "time" },
		"chunk over total":     func(c *BufferConfig) { c.ChunkLimitSize = c.TotalLimitSize + 1 },
		"zero threads":         func(c *BufferConfig) { c.FlushThreadCount = 0 },
		"duplicate chunk key":  func(c *BufferConfig) { c.ChunkKeys = "tag,tag" },
		"bad record accessor":  func(c *BufferConfig) { c.ChunkKeys = "$.a..b" },
		"bad zone":             func(c *BufferConfig) { c.TimekeyZone = "+9" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			c := DefaultBufferConfig("memory")
			mutate(&c)
			if _, err := New("x", newSink(), c, Options{Logger: quiet}); err == nil {
				t.Error("accepted")
			}
		})
	}
}

// Streams of runtimes with different timekeys, emitted one after the
// other from one goroutine, each get their own runtime's windows (the
// scratch that prepares a stream is pooled across runtimes).
func TestTimekeysOfDifferentRuntimes(t *testing.T) {
	const at = 1362020400 // 2013-02-28 03:00:00 UTC
	daily, hourly := fastConfig("time"), fastConfig("time")
	daily.Timekey, hourly.Timekey = 24*time.Hour, time.Hour
	daily.FlushInterval, hourly.FlushInterval = time.Hour, time.Hour
	d, h := newSink(), newSink()
	rd, rh := startRuntime(t, d, daily), startRuntime(t, h, hourly)
	for i := 0; i < 20; i++ {
		if err := rd.Emit(context.Background(), stream(t, "x", at)); err != nil {
			t.Fatal(err)
		}
		if err := rh.Emit(context.Background(), stream(t, "x", at)); err != nil {
			t.Fatal(err)
		}
	}
	stop(t, rd)
	stop(t, rh)
	for name, s := range map[string]struct {
		sink *sink
		want int64
	}{"daily": {d, at - 3*3600}, "hourly": {h, at}} {
		for _, c := range s.sink.chunks {
			if c.Key.Timekey != s.want {
				t.Errorf("%s chunk has timekey %d, want %d", name, c.Key.Timekey, s.want)
			}
		}
	}
}

// refusingFormatter formats a record as its n field and refuses n == 1.
type refusingFormatter struct{ *sink }

func (refusingFormatter) FormatEntry(dst []byte, _ string, _ event.Time, r event.Record) ([]byte, error) {
	v, _ := r.Get("n")
	if v.String() == "1" {
		return dst, errors.New("n is 1")
	}
	return append(append(dst, v.String()...), '\n'), nil
}

// TestUnformattedChunkLosesOnlyRefusedRecords: a chunk stored as entries
// (a Fluentd chunk imported) for an output that formats is formatted when
// it is written; a record the formatter refuses is dropped and counted,
// as it is at append, and the rest of the chunk is written.
func TestUnformattedChunkLosesOnlyRefusedRecords(t *testing.T) {
	r, err := New("test", refusingFormatter{newSink()}, DefaultBufferConfig("memory"), Options{Logger: quiet, RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := stream(t, "x", 1, 2, 3)
	c := &buffer.Chunk{ID: buffer.NewID(), Key: buffer.Key{Tag: "x"}, Data: s.Data, Records: 3}
	data, err := r.load(c, nil)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	if string(data) != "0\n2\n" {
		t.Errorf("formatted %q, want the records other than n=1", data)
	}
	if n := r.Stats.Dropped[DropFormat].Load(); n != 1 {
		t.Errorf("%d records counted as refused by the formatter, want 1", n)
	}
}

// slowSink takes a while over each write.
type slowSink struct {
	*sink
	delay time.Duration
}

func (s slowSink) Write(ctx context.Context, c *plugin.Chunk) error {
	time.Sleep(s.delay)
	return s.sink.Write(ctx, c)
}

// TestSlowFlushLogThreshold: a write longer than the output's
// slow_flush_log_threshold is counted; with a threshold above it, not.
func TestSlowFlushLogThreshold(t *testing.T) {
	for _, tc := range []struct {
		threshold time.Duration
		slow      bool
	}{{5 * time.Millisecond, true}, {time.Minute, false}} {
		s := slowSink{sink: newSink(), delay: 30 * time.Millisecond}
		r, err := New("slow", s, fastConfig("tag"), Options{Logger: quiet, RootDir: t.TempDir(), SlowFlushThreshold: tc.threshold})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		if err := r.Emit(context.Background(), stream(t, "a", 1, 2)); err != nil {
			t.Fatal(err)
		}
		waitRecords(t, s.sink, 2)
		stop(t, r)
		if got := r.Stats.SlowFlushes.Load(); (got > 0) != tc.slow {
			t.Errorf("threshold %v: %d slow flushes counted", tc.threshold, got)
		}
	}
}
