package core

import (
	"context"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Relabel sends events into another <label>.
type Relabel struct {
	Label string `conf:"@label,required" desc:"The <label> the events are routed into."`

	to plugin.Emitter
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "relabel", Summary: "route events into another <label>",
		New: func() any { return &Relabel{} }})
}

// Configure implements plugin.Configurer.
func (r *Relabel) Configure(c *plugin.Context) error {
	to, err := c.Build.Label(r.Label)
	r.to = to
	return err
}

// Process implements plugin.SyncOutput.
func (r *Relabel) Process(ctx context.Context, s event.Stream) error { return r.to.Emit(ctx, s) }
