package core

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// RoundRobin is Fluentd's roundrobin output: each stream goes to one of the
// <store>s in turn, a store with weight N taking N turns in a row of the
// cycle.
type RoundRobin struct {
	Stores []*config.Element `section:"store" desc:"An output that takes its share of the streams; weight N (default 1) gives it N turns in each cycle."`

	mu    sync.Mutex
	cycle []plugin.Emitter // each store once per unit of weight
	next  int              // guarded by mu
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "roundrobin", Summary: "send each stream to one <store>, in turn by weight",
		New: func() any { return &RoundRobin{} }})
}

// Configure implements plugin.Configurer.
func (r *RoundRobin) Configure(ctx *plugin.Context) error {
	if len(r.Stores) == 0 {
		return fmt.Errorf("roundrobin needs at least one <store>")
	}
	var errs []error
	for _, sec := range r.Stores {
		if sec.Arg != "" {
			errs = append(errs, config.Errorf(sec.Pos, "<store %s>: roundrobin's <store> takes no argument (weight is a parameter inside it)", sec.Arg))
		}
		weight := 1
		if p := sec.Param("weight"); p != nil {
			w, err := strconv.Atoi(p.Value)
			if err != nil || w < 1 {
				errs = append(errs, config.Errorf(p.Pos, "weight: want a whole number of at least 1, got %q", p.Value))
				continue
			}
			weight = w
		}
		out, err := ctx.Build.Output(sec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for i := 0; i < weight; i++ {
			r.cycle = append(r.cycle, out)
		}
	}
	return errors.Join(errs...)
}

// Process implements plugin.SyncOutput.
func (r *RoundRobin) Process(ctx context.Context, s event.Stream) error {
	r.mu.Lock()
	out := r.cycle[r.next]
	r.next = (r.next + 1) % len(r.cycle)
	r.mu.Unlock()
	return out.Emit(ctx, s)
}
