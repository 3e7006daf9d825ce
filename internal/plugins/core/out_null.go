// Package core holds the plugins every configuration needs: null, stdout,
// copy and relabel.
package core

import (
	"context"
	"errors"

	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Null discards events. With a <buffer> it flushes chunks to nowhere, and
// never_flush makes every flush fail (for testing retries).
type Null struct {
	NeverFlush bool `conf:"never_flush" desc:"Make every flush fail, to test retries and <secondary>."`
}

var (
	_ plugin.SyncOutput     = (*Null)(nil)
	_ plugin.BufferedOutput = (*Null)(nil)
)

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "null", Summary: "discard events",
		DoneWithDataOnReturn: true, New: func() any { return &Null{} }})
}

// Process implements plugin.SyncOutput.
func (n *Null) Process(context.Context, event.Stream) error { return nil }

// Write implements plugin.BufferedOutput.
func (n *Null) Write(context.Context, *plugin.Chunk) error {
	if n.NeverFlush {
		return errors.New("never_flush is set")
	}
	return nil
}
