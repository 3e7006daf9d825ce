package tier

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fluent/fluent-logger-golang/fluent"
)

// Tags of the two kinds of events.
const (
	TracerTag     = "tracer"
	BackgroundTag = "app.background"
)

// traffic is the clients: background senders and tracer senders, each a
// fluent-logger-golang logger with RequestAck on its own connection, as
// Docker's log driver with fluentd-request-ack runs one per container.
type traffic struct {
	phase atomic.Pointer[string]
	stop  chan struct{}
	wg    sync.WaitGroup

	mu      sync.Mutex
	tracers map[string]string // acknowledged tracer id -> phase it was sent in
	bgAcked map[string]string // acknowledged background id -> phase
	failed  int               // posts the logger gave up on (not acknowledged)
}

// newLogger is a client as Docker's driver configures one with
// fluentd-request-ack and unlimited retries: a post returns once a
// Sluice instance has acknowledged it.
func newLogger(host string, port int) (*fluent.Fluent, error) {
	return fluent.New(fluent.Config{FluentHost: host, FluentPort: port, RequestAck: true,
		MaxRetry: 1000, RetryWait: 100, MaxRetryWait: 1000, Timeout: 3 * time.Second,
		// Longer than any drain: a read timeout before a late ack would make
		// the client resend what was delivered.
		ReadTimeout: 60 * time.Second})
}

func startTraffic(cfg Config, host string, port int) (*traffic, error) {
	tr := &traffic{stop: make(chan struct{}), tracers: map[string]string{}, bgAcked: map[string]string{}}
	tr.setPhase("steady")
	bgRate := 0.0
	if cfg.Clients > 0 && cfg.RecordSize > 0 {
		bgRate = float64(cfg.BytesPerSec) / float64(cfg.RecordSize) / float64(cfg.Clients)
	}
	pad := strings.Repeat("x", max(cfg.RecordSize, 1))
	err := tr.clients(host, port, cfg.Clients, bgRate, BackgroundTag, tr.bgAcked, func(c, seq int, _ string) (string, map[string]string) {
		id := fmt.Sprintf("b%d-%d", c, seq)
		return id, map[string]string{"id": id, "log": pad, "source": "stdout", "container_name": fmt.Sprintf("/app-%d", c)}
	})
	if err == nil && cfg.TracerClients > 0 {
		err = tr.clients(host, port, cfg.TracerClients, cfg.TracerRate/float64(cfg.TracerClients), TracerTag, tr.tracers,
			func(c, seq int, phase string) (string, map[string]string) {
				id := fmt.Sprintf("t%d-%d", c, seq)
				return id, map[string]string{"tracer": id, "phase": phase, "log": "tracer " + id}
			})
	}
	if err != nil {
		tr.halt()
		return nil, err
	}
	return tr, nil
}

// clients starts n clients, each posting records made by record at rate
// per second under tag, and noting each acknowledged id in acked with the
// phase it was sent in.
func (tr *traffic) clients(host string, port, n int, rate float64, tag string, acked map[string]string,
	record func(client, seq int, phase string) (string, map[string]string)) error {
	for c := 0; c < n; c++ {
		l, err := newLogger(host, port)
		if err != nil {
			return err
		}
		var phase string
		tr.run(l, rate, func(seq int) (string, map[string]string) {
			phase = *tr.phase.Load()
			return record(c, seq, phase)
		}, func(id string) { acked[id] = phase }, tag)
	}
	return nil
}

func (tr *traffic) setPhase(p string) { tr.phase.Store(&p) }

// run posts records from next at rate per second until stop, calling
// acked (under tr.mu) for each acknowledged one.
func (tr *traffic) run(l *fluent.Fluent, rate float64, next func(seq int) (string, map[string]string), acked func(string), tag string) {
	if rate <= 0 {
		_ = l.Close()
		return
	}
	tr.wg.Add(1)
	go func() {
		defer tr.wg.Done()
		defer func() { _ = l.Close() }()
		interval := time.Duration(float64(time.Second) / rate)
		due := time.Now()
		for seq := 0; ; seq++ {
			select {
			case <-tr.stop:
				return
			default:
			}
			if wait := time.Until(due); wait > 0 {
				select {
				case <-tr.stop:
					return
				case <-time.After(wait):
				}
			}
			due = due.Add(interval)
			id, rec := next(seq)
			err := l.Post(tag, rec)
			tr.mu.Lock()
			if err != nil {
				tr.failed++
			} else {
				acked(id)
			}
			tr.mu.Unlock()
		}
	}()
}

// halt stops every client after its current post and waits.
func (tr *traffic) halt() {
	close(tr.stop)
	tr.wg.Wait()
}
