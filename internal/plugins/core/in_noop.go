package core

import (
	"context"
	"log/slog"

	"github.com/sluice-log/sluice/internal/plugin"
)

// Unavailable stands for a Fluentd core source that has no meaning in
// Sluice (debug_agent opens a dRuby console into Fluentd's Ruby process;
// exec runs a command for events, which Sluice does not do). The
// configuration loads, the source emits nothing, and the start says so.
type Unavailable struct {
	why string
	log *slog.Logger
}

func init() {
	for typ, why := range map[string]string{
		"debug_agent": "it opens a dRuby console into Fluentd's Ruby process, and Sluice has none",
		"exec":        "Sluice runs no commands for events; run the command elsewhere and send its output to a forward or http source",
	} {
		plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: typ, Summary: "accepted from Fluentd configurations; emits nothing (" + typ + ")",
			New: func() any { return &Unavailable{why: why} }})
	}
}

// Configure implements plugin.Configurer: every parameter is accepted, as
// none acts.
func (u *Unavailable) Configure(c *plugin.Context) error {
	u.log = c.Logger
	if c.Element != nil {
		c.Element.MarkAllUsed()
		c.Element.AddNotice(c.Element.Pos, "source @type "+c.Type+" is accepted and emits nothing: "+u.why)
	}
	return nil
}

// Run implements plugin.Input.
func (u *Unavailable) Run(ctx context.Context, _ plugin.Emitter) error {
	<-ctx.Done()
	return nil
}
