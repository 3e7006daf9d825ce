// Package plugintest drives an engine from configuration text in tests,
// like Fluentd's Test::Driver. It registers three plugins that exist only
// in test binaries:
//
//	output capture  name NAME   keeps every event; Captured(NAME) returns them
//	                fail N      fails the first N writes (buffered mode)
//	input  counter  tag T, count N   emits N events once, then waits
//	filter fail                 returns an error for every stream
package plugintest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
	_ "github.com/sluice-log/sluice/internal/plugins/all" // the real plugins
)

// Event is a decoded event for assertions.
type Event struct {
	Tag    string
	Time   event.Time
	Record map[string]any
}

// Decode turns a stream into Events.
func Decode(tb testing.TB, tag string, data []byte) []Event {
	tb.Helper()
	var out []Event
	r := event.NewReader(data)
	for r.Next() {
		e := r.Entry()
		v, _, err := msgp.ReadIntfBytes(e.Record)
		if err != nil {
			tb.Fatalf("decode record: %v", err)
		}
		out = append(out, Event{Tag: tag, Time: e.Time, Record: v.(map[string]any)})
	}
	if r.Err() != nil {
		tb.Fatalf("decode stream: %v", r.Err())
	}
	return out
}

var (
	capMu    sync.Mutex
	captured = map[string][]Event{} // guarded by capMu
	writeLog []string               // guarded by capMu: "write:NAME" and "stop:TAG" in order
)

// Captured returns the events the capture output NAME received.
func Captured(name string) []Event {
	capMu.Lock()
	defer capMu.Unlock()
	return append([]Event(nil), captured[name]...)
}

// Journal returns the order in which captures wrote and counters stopped.
func Journal() []string {
	capMu.Lock()
	defer capMu.Unlock()
	return append([]string(nil), writeLog...)
}

// Reset forgets all captured events.
func Reset() {
	capMu.Lock()
	defer capMu.Unlock()
	captured = map[string][]Event{}
	writeLog = nil
}

// Capture is the test output.
type Capture struct {
	Name string `conf:"name,required" desc:"The capture's name, for the test to find it."`
	Fail int    `conf:"fail" desc:"Fail this many writes (or synchronous emits) first."`

	mu sync.Mutex
}

func (c *Capture) keep(tag string, data []byte) {
	r := event.NewReader(data)
	capMu.Lock()
	defer capMu.Unlock()
	for r.Next() {
		e := r.Entry()
		v, _, _ := msgp.ReadIntfBytes(e.Record)
		m, _ := v.(map[string]any)
		captured[c.Name] = append(captured[c.Name], Event{Tag: tag, Time: e.Time, Record: m})
	}
	writeLog = append(writeLog, "write:"+c.Name)
}

// Process implements plugin.SyncOutput.
func (c *Capture) Process(_ context.Context, s event.Stream) error {
	c.mu.Lock()
	if c.Fail > 0 {
		c.Fail--
		c.mu.Unlock()
		return errors.New("capture: injected failure")
	}
	c.mu.Unlock()
	c.keep(s.Tag, s.Data)
	return nil
}

// Write implements plugin.BufferedOutput.
func (c *Capture) Write(_ context.Context, ch *plugin.Chunk) error {
	c.mu.Lock()
	if c.Fail > 0 {
		c.Fail--
		c.mu.Unlock()
		return errors.New("capture: injected failure")
	}
	c.mu.Unlock()
	c.keep(ch.Key.Tag, ch.Data)
	return nil
}

// Counter emits Count events once, then waits for cancellation.
type Counter struct {
	Tag   string `conf:"tag,required" desc:"The tag of the events."`
	Count int    `conf:"count" desc:"How many events to emit."`
}

// Run implements plugin.Input.
func (c *Counter) Run(ctx context.Context, out plugin.Emitter) error {
	var b event.Builder
	for i := 0; i < c.Count; i++ {
		rec, _ := event.EncodeRecord(map[string]any{"n": i})
		b.Append(event.Now(), rec)
	}
	if err := out.Emit(ctx, b.Stream(c.Tag)); err != nil {
		return err
	}
	<-ctx.Done()
	capMu.Lock()
	writeLog = append(writeLog, "stop:"+c.Tag)
	capMu.Unlock()
	return nil
}

// FailFilter fails every stream.
type FailFilter struct{}

// Filter implements plugin.Filter.
func (*FailFilter) Filter(context.Context, event.Stream, *event.Builder) (event.Stream, error) {
	return event.Stream{}, errors.New("fail filter")
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "capture", New: func() any { return &Capture{} }})
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "counter", New: func() any { return &Counter{Count: 1} }})
	plugin.Register(plugin.Info{Kind: plugin.KindFilter, Type: "fail", New: func() any { return &FailFilter{} }})
}

// Quiet is a logger that discards everything.
var Quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// Build parses and builds conf, failing the test on error.
func Build(tb testing.TB, conf string) *engine.Engine {
	tb.Helper()
	e, err := BuildErr(conf)
	if err != nil {
		tb.Fatalf("build: %v", err)
	}
	return e
}

// BuildErr parses and builds conf.
func BuildErr(conf string) (*engine.Engine, error) {
	root, err := config.Parse("test.conf", []byte(conf), nil)
	if err != nil {
		return nil, err
	}
	return engine.Build(root, engine.Options{Logger: Quiet, Hostname: "test-host"})
}

// Start runs e in the background, waits until it has started (outputs
// open, inputs running: emitting earlier would race with the buffers'
// opening, which the engine's own start order never does), and returns a
// function that stops it and waits for the shutdown to finish.
func Start(tb testing.TB, e *engine.Engine) (stop func()) {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	for deadline := time.Now().Add(10 * time.Second); e.Ready(1) != nil; {
		select {
		case err := <-done:
			cancel()
			tb.Fatalf("engine stopped while starting: %v", err)
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("engine not started after 10s: %v", e.Ready(1))
		}
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					tb.Errorf("run: %v", err)
				}
			case <-time.After(30 * time.Second):
				tb.Errorf("engine did not stop")
			}
		})
	}
	tb.Cleanup(stop)
	return stop
}

// Stream builds a stream of records for tag.
func Stream(tb testing.TB, tag string, records ...map[string]any) event.Stream {
	tb.Helper()
	var b event.Builder
	for _, r := range records {
		rec, err := event.EncodeRecord(r)
		if err != nil {
			tb.Fatal(err)
		}
		b.Append(event.Time(1362020400*1e9), rec)
	}
	return b.Stream(tag)
}

// WaitFor polls cond until it holds or 10 seconds pass.
func WaitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Must fails the test when err is not nil.
func Must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(fmt.Errorf("unexpected error: %w", err))
	}
}

// BlackHole listens on a loopback port for the test, accepts connections
// and reads them without ever answering: a destination that hangs. It
// returns the address.
func BlackHole(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// BoundAddr returns the address of the first input of e that listens
// (one with a BoundAddr method) once it does, "" before. Tests use it with
// port 0.
func BoundAddr(e *engine.Engine) string {
	for _, p := range e.Inputs() {
		if in, ok := p.(interface{ BoundAddr() string }); ok {
			if a := in.BoundAddr(); a != "" {
				return a
			}
		}
	}
	return ""
}
