// Package sample holds the sample input (Fluentd's sample, formerly dummy),
// which generates events for examples and tests.
package sample

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Sample emits rate streams per second, each of size records cycled from
// the sample list.
type Sample struct {
	Tag              string `conf:"tag,required" desc:"The tag of the events."`
	Rate             int    `conf:"rate" desc:"How many batches are emitted each second."`
	Size             int    `conf:"size" desc:"How many events each batch holds."`
	AutoIncrementKey string `conf:"auto_increment_key" desc:"Add a counter that grows by one per event under this key."`
	Suspend          bool   `conf:"suspend" desc:"Emit nothing: the source runs but stays silent."`
	Sample           string `conf:"sample" alias:"dummy" desc:"The records to emit, as a JSON object or an array of objects used in turn."`

	records [][]byte // each an encoded map
	log     *slog.Logger
	next    int
	counter int64
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "sample", Aliases: []string{"dummy"},
		Summary: "generate sample events",
		New:     func() any { return &Sample{Rate: 1, Size: 1, Sample: `[{"message":"sample"}]`} }})
}

// Configure implements plugin.Configurer.
func (s *Sample) Configure(c *plugin.Context) error {
	s.log = c.Logger
	if s.Rate < 1 || s.Size < 1 {
		return fmt.Errorf("rate and size must be at least 1")
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(s.Sample), &list); err != nil {
		var one map[string]any
		if err2 := json.Unmarshal([]byte(s.Sample), &one); err2 != nil {
			return fmt.Errorf("sample: want a JSON object or an array of objects: %w", err)
		}
		list = []map[string]any{one}
	}
	if len(list) == 0 {
		return fmt.Errorf("sample: the list is empty")
	}
	for _, m := range list {
		if s.AutoIncrementKey != "" {
			delete(m, s.AutoIncrementKey)
		}
		rec, err := event.EncodeRecord(m)
		if err != nil {
			return fmt.Errorf("sample: %w", err)
		}
		s.records = append(s.records, rec)
	}
	return nil
}

// bins spreads each second's emits over ten ticks, as Fluentd does.
const bins = 10

// Run implements plugin.Input.
func (s *Sample) Run(ctx context.Context, out plugin.Emitter) error {
	t := time.NewTicker(time.Second / bins)
	defer t.Stop()
	var b event.Builder
	for bin := 0; ; bin = (bin + 1) % bins {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if s.Suspend {
			continue
		}
		n := s.Rate / bins
		if bin < s.Rate%bins {
			n++
		}
		for i := 0; i < n; i++ {
			b.Reset()
			now := event.Now()
			for j := 0; j < s.Size; j++ {
				b.Append(now, s.nextRecord())
			}
			if err := out.Emit(ctx, b.Stream(s.Tag)); err != nil && ctx.Err() == nil {
				s.log.Warn("sample events not accepted", "records", s.Size, "err", err)
			}
		}
	}
}

func (s *Sample) nextRecord() []byte {
	rec := s.records[s.next]
	s.next = (s.next + 1) % len(s.records)
	if s.AutoIncrementKey == "" {
		return rec
	}
	n, body, err := msgp.ReadMapHeaderBytes(rec)
	if err != nil {
		return rec
	}
	out := msgp.AppendMapHeader(nil, n+1)
	out = append(out, body...)
	out = msgp.AppendString(out, s.AutoIncrementKey)
	out = msgp.AppendInt64(out, s.counter)
	s.counter++
	return out
}
