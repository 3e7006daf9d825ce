package output

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/backoff"
	"github.com/sluice-log/sluice/internal/plugin"
)

func TestRetryDecision(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	base := retryPolicy{maxTimes: -1, timeout: time.Hour, secondaryThreshold: 0.8,
		backoff: backoff.Exponential{Initial: time.Second, Factor: 2}}
	with := func(mutate func(*retryPolicy)) retryPolicy {
		p := base
		mutate(&p)
		return p
	}
	failed := func(steps int, start time.Time) chunkRetry { return chunkRetry{steps: steps, start: start} }
	cases := []struct {
		name     string
		policy   retryPolicy
		st       chunkRetry
		f        failure
		now      time.Time
		jitter   float64
		verdict  verdict
		steps    int
		wait     time.Duration // next - now, when retried
		toSecond bool
	}{
		{"first failure waits retry_wait", base, chunkRetry{}, failure{}, t0, 0, retryLater, 1, time.Second, false},
		{"backoff doubles", base, failed(3, t0), failure{}, t0.Add(time.Minute), 0, retryLater, 4, 8 * time.Second, false},
		{"retry_max_interval caps", with(func(p *retryPolicy) { p.backoff.Max = 5 * time.Second }),
			failed(9, t0), failure{}, t0, 0, retryLater, 10, 5 * time.Second, false},
		{"periodic", with(func(p *retryPolicy) { p.backoff.Factor = 1 }),
			failed(9, t0), failure{}, t0, 0, retryLater, 10, time.Second, false},
		{"randomize spreads low", with(func(p *retryPolicy) { p.backoff.Low, p.backoff.High = 0.875, 1.125 }),
			chunkRetry{}, failure{}, t0, 0, retryLater, 1, 875 * time.Millisecond, false},
		{"randomize spreads high", with(func(p *retryPolicy) { p.backoff.Low, p.backoff.High = 0.875, 1.125 }),
			chunkRetry{}, failure{}, t0, 0.5, retryLater, 1, time.Second, false},
		{"retry-after longer than backoff", base, chunkRetry{}, failure{retryAfter: 30 * time.Second}, t0, 0,
			retryLater, 1, 30 * time.Second, false},
		{"retry_timeout passed", base, failed(5, t0), failure{}, t0.Add(time.Hour), 0, giveUp, 6, 0, false},
		{"retry_timeout not yet", base, failed(5, t0), failure{}, t0.Add(time.Hour - time.Second), 0,
			retryLater, 6, 32 * time.Second, false},
		{"retry_forever ignores the timeout", with(func(p *retryPolicy) { p.forever = true }),
			failed(5, t0), failure{}, t0.Add(100 * time.Hour), 0, retryLater, 6, 32 * time.Second, false},
		{"retry_max_times reached", with(func(p *retryPolicy) { p.maxTimes = 3 }),
			failed(3, t0), failure{}, t0, 0, giveUp, 4, 0, false},
		{"retry_max_times not yet", with(func(p *retryPolicy) { p.maxTimes = 3 }),
			failed(2, t0), failure{}, t0, 0, retryLater, 3, 4 * time.Second, false},
		{"permanent without secondary", base, chunkRetry{}, failure{permanent: true}, t0, 0, giveUp, 1, 0, false},
		{"permanent with secondary: at once", with(func(p *retryPolicy) { p.hasSecondary = true }),
			chunkRetry{}, failure{permanent: true}, t0, 0, retryLater, 1, 0, true},
		{"permanent from the secondary", with(func(p *retryPolicy) { p.hasSecondary = true }),
			chunkRetry{steps: 1, start: t0, secondary: true}, failure{permanent: true, onSecondary: true}, t0, 0,
			giveUp, 2, 0, true},
		{"secondary after threshold of max_times", with(func(p *retryPolicy) { p.hasSecondary = true; p.maxTimes = 5 }),
			failed(3, t0), failure{}, t0, 0, retryLater, 4, 8 * time.Second, true},
		{"not yet at the threshold of max_times", with(func(p *retryPolicy) { p.hasSecondary = true; p.maxTimes = 5 }),
			failed(2, t0), failure{}, t0, 0, retryLater, 3, 4 * time.Second, false},
		{"secondary after threshold of the timeout", with(func(p *retryPolicy) { p.hasSecondary = true }),
			failed(2, t0), failure{}, t0.Add(48 * time.Minute), 0, retryLater, 3, 4 * time.Second, true},
		{"no secondary, no switch", base, failed(2, t0), failure{}, t0.Add(50 * time.Minute), 0,
			retryLater, 3, 4 * time.Second, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, v := tc.policy.decide(tc.st, tc.f, tc.now, tc.jitter)
			if v != tc.verdict || st.steps != tc.steps || st.secondary != tc.toSecond {
				t.Fatalf("verdict %v steps %d secondary %v, want %v %d %v", v, st.steps, st.secondary,
					tc.verdict, tc.steps, tc.toSecond)
			}
			if v == retryLater {
				if got := st.next.Sub(tc.now); got != tc.wait {
					t.Errorf("next retry in %v, want %v", got, tc.wait)
				}
			}
			if wantStart := tc.st.start; tc.st.steps > 0 && !st.start.Equal(wantStart) {
				t.Errorf("first failure moved from %v to %v", wantStart, st.start)
			}
		})
	}
}

// outFunc is an output made of one function.
type outFunc func(ctx context.Context, c *plugin.Chunk) error

func (f outFunc) Write(ctx context.Context, c *plugin.Chunk) error { return f(ctx, c) }

// A chunk refused for good must not change the retry clock of another
// chunk: with the clock shared, the innocent chunk's one transient
// failure, coming while the refused chunk was on its way to <secondary>,
// was measured from a back-dated start and sent to the backup directory.
func TestPermanentErrorLeavesOtherChunksRetries(t *testing.T) {
	var r *Runtime
	var goodCalls atomic.Int32
	secondaryStarted := make(chan struct{})
	delivered, second := newSink(), newSink()
	primary := outFunc(func(ctx context.Context, c *plugin.Chunk) error {
		switch {
		case c.Key.Tag == "poison":
			return &plugin.Permanent{Err: errors.New("invalid argument")}
		case goodCalls.Add(1) == 1:
			<-secondaryStarted
			return errors.New("throttled")
		}
		return delivered.Write(ctx, c)
	})
	var once sync.Once
	secondary := outFunc(func(ctx context.Context, c *plugin.Chunk) error {
		once.Do(func() { close(secondaryStarted) })
		// Hold the poison chunk here until the good chunk's failure has
		// been decided (errors are counted under the lock the decision
		// holds; Pending takes it).
		for r.Stats.NumErrors.Load() < 2 {
			time.Sleep(time.Millisecond)
		}
		r.Pending()
		return second.Write(ctx, c)
	})
	cfg := fastConfig("tag")
	cfg.FlushThreadCount = 2
	var err error
	r, err = New("out.poison", primary, cfg, Options{Logger: quiet, Secondary: secondary, RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	r.Emit(context.Background(), stream(t, "poison", 1))
	r.Emit(context.Background(), stream(t, "good", 1, 2))
	waitRecords(t, second, 1)
	waitRecords(t, delivered, 2)
	stop(t, r)
	if b := r.Stats.BackupRecords.Load(); b != 0 {
		t.Errorf("%d records went to the backup directory", b)
	}
}

// A chunk waiting out a long backoff does not hold up the chunks behind
// it.
func TestRetryingChunkDoesNotBlockOthers(t *testing.T) {
	delivered := newSink()
	var poisonTries atomic.Int32
	out := outFunc(func(ctx context.Context, c *plugin.Chunk) error {
		if c.Key.Tag == "stuck" {
			poisonTries.Add(1)
			return errors.New("name too long")
		}
		return delivered.Write(ctx, c)
	})
	cfg := fastConfig("tag")
	cfg.RetryWait = time.Hour
	r := startRuntime(t, out, cfg)
	r.Emit(context.Background(), stream(t, "stuck", 1))
	waitFor(t, func() bool { return poisonTries.Load() == 1 })
	r.Emit(context.Background(), stream(t, "other", 1, 2, 3))
	waitRecords(t, delivered, 3)
	if st := r.Status(); st.Retrying != 1 || st.RetryWait < 3000 {
		t.Errorf("status %+v: want one chunk retrying in about an hour", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if left := r.Stop(ctx); left != 1 {
		t.Errorf("left %d, want the retrying record", left)
	}
}

// A write that outlives write_timeout is cancelled and retried, and shows
// in Status while it runs.
func TestWriteTimeoutCancelsAndRetries(t *testing.T) {
	var calls atomic.Int32
	delivered := newSink()
	sawAge := make(chan float64, 1)
	var r *Runtime
	out := outFunc(func(ctx context.Context, c *plugin.Chunk) error {
		if calls.Add(1) == 1 {
			time.Sleep(20 * time.Millisecond)
			sawAge <- r.Status().OldestWrite
			<-ctx.Done() // a destination that never answers
			return ctx.Err()
		}
		return delivered.Write(ctx, c)
	})
	cfg := fastConfig("")
	cfg.WriteTimeout = 100 * time.Millisecond
	var err error
	if r, err = New("out.slow", out, cfg, Options{Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	r.Emit(context.Background(), stream(t, "x", 1, 2))
	waitRecords(t, delivered, 2)
	stop(t, r)
	if age := <-sawAge; age <= 0 {
		t.Errorf("a write in flight for 20ms showed an oldest write age of %v s", age)
	}
	if r.Stats.RetryCount.Load() != 1 || calls.Load() != 2 {
		t.Errorf("retries %d, calls %d: want the timed-out write retried once", r.Stats.RetryCount.Load(), calls.Load())
	}
}

// A write that ignores its cancelled context cannot hold Stop past the
// deadline and the grace; its chunk counts as left over.
func TestStopAbandonsStuckWrite(t *testing.T) {
	release := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	started := make(chan struct{})
	out := outFunc(func(ctx context.Context, c *plugin.Chunk) error {
		defer wg.Done()
		close(started)
		<-release // ignores ctx
		return nil
	})
	cfg := fastConfig("")
	r := startRuntime(t, out, cfg)
	r.Emit(context.Background(), stream(t, "x", 1, 2, 3))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	left := make(chan int, 1)
	go func() { left <- r.Stop(ctx) }()
	select {
	case n := <-left:
		if n != 3 || r.Stats.Dropped[DropShutdown].Load() != 3 {
			t.Errorf("left %d, dropped at shutdown %d; want the 3 records of the stuck write", n,
				r.Stats.Dropped[DropShutdown].Load())
		}
	case <-time.After(StuckWriteGrace + 10*time.Second):
		t.Error("Stop waited for a write that ignores its context")
	}
	close(release)
	wg.Wait()
	if got := r.Stats.WriteCount.Load(); got != 0 {
		t.Errorf("an abandoned write was counted as written (%d)", got)
	}
}

// While the shutdown drains, Status says how many records are still to
// deliver, so that the loss a deadline would bring shows before it does.
func TestUndeliveredVisibleDuringTheDrain(t *testing.T) {
	s := newSink()
	s.failures = 1 << 30
	cfg := fastConfig("")
	cfg.RetryForever = true
	r := startRuntime(t, s, cfg)
	r.Emit(context.Background(), stream(t, "x", 1, 2, 3, 4))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- r.Stop(ctx) }()
	waitFor(t, func() bool { return r.Status().Undelivered == 4 })
	if left := <-done; left != 4 || r.Status().Undelivered != 4 {
		t.Errorf("left %d, Undelivered after the stop %d; want 4", left, r.Status().Undelivered)
	}
}

// A write the shutdown deadline cuts off after the destination took part
// of its chunk leaves only the rest: the leftover count is exact (it once
// reported 180,800 records left, 1,935 of them delivered).
func TestLeftoverExcludesPartsDelivered(t *testing.T) {
	started := make(chan struct{}, 1)
	out := outFunc(func(ctx context.Context, c *plugin.Chunk) error {
		plugin.Delivered(ctx, 3) // three of the chunk's five records are in
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	})
	cfg := fastConfig("")
	r := startRuntime(t, out, cfg)
	r.Emit(context.Background(), stream(t, "x", 1, 2, 3, 4, 5))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if left := r.Stop(ctx); left != 2 || r.Stats.Dropped[DropShutdown].Load() != 2 {
		t.Errorf("left %d, dropped at shutdown %d; want the 2 records the destination had not taken",
			left, r.Stats.Dropped[DropShutdown].Load())
	}
}

// TestFluentdBackoffFromBuffer: <buffer>'s retry parameters map onto the
// one backoff: retry_wait, the base, the cap, periodic and the spread.
func TestFluentdBackoffFromBuffer(t *testing.T) {
	c := DefaultBufferConfig("memory")
	c.RetryWait, c.RetryExponentialBackoffBase, c.RetryMaxInterval = 2*time.Second, 3, time.Minute
	b := fluentdBackoff(c)
	if got := b.Delay(3, 0.5); got != 18*time.Second {
		t.Errorf("exponential, randomized, middle draw: %v, want 2s*3^2", got)
	}
	if got := b.Delay(9, 0); got != time.Minute*875/1000 {
		t.Errorf("capped, low draw: %v", got)
	}
	c.RetryType, c.RetryRandomize = "periodic", false
	if got := fluentdBackoff(c).Delay(5, 0.9); got != 2*time.Second {
		t.Errorf("periodic: %v, want retry_wait", got)
	}
}
