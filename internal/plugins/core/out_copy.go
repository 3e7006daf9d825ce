package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/event"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Copy sends every stream to each <store>. Streams are immutable bytes, so
// all of Fluentd's copy_mode values behave alike: no store can change what
// another sees.
type Copy struct {
	CopyMode string            `conf:"copy_mode" enum:"no_copy,shallow,deep,marshal" desc:"Accepted for Fluentd compatibility: streams are immutable, so no store can change what another sees, whatever the mode." ignored:"streams are immutable, so no store can change what another sees"`
	DeepCopy bool              `conf:"deep_copy" desc:"Accepted for Fluentd compatibility (see copy_mode)." ignored:"streams are immutable, so no store can change what another sees"`
	Stores   []*config.Element `section:"store" desc:"An output that gets every event; ignore_error in <store ignore_error> keeps one store's failure from failing the others."`

	stores []copyStore
	log    *slog.Logger
}

type copyStore struct {
	out         plugin.Emitter
	ignoreError bool
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindOutput, Type: "copy", Summary: "send events to several <store>s",
		New: func() any { return &Copy{CopyMode: "no_copy"} }})
}

// Configure implements plugin.Configurer.
func (c *Copy) Configure(ctx *plugin.Context) error {
	if len(c.Stores) == 0 {
		return fmt.Errorf("copy needs at least one <store>")
	}
	c.log = ctx.Logger
	var errs []error // every store's problems, in one check
	for _, sec := range c.Stores {
		out, err := ctx.Build.Output(sec)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		switch sec.Arg {
		case "", "ignore_error":
		default:
			errs = append(errs, config.Errorf(sec.Pos, "<store %s>: the only argument is ignore_error", sec.Arg))
			continue
		}
		c.stores = append(c.stores, copyStore{out: out, ignoreError: sec.Arg == "ignore_error"})
	}
	return errors.Join(errs...)
}

// Process implements plugin.SyncOutput. A store's error stops the copy and
// is returned (the input then does not acknowledge), unless the store is
// marked ignore_error. Stores before it keep what they accepted, so a
// client's resend can duplicate there, as in Fluentd.
func (c *Copy) Process(ctx context.Context, s event.Stream) error {
	for i, st := range c.stores {
		if err := st.out.Emit(ctx, s); err != nil {
			if st.ignoreError {
				c.log.Warn("store failed; ignored", "store", i, "err", err)
				continue
			}
			return fmt.Errorf("store %d: %w", i, err)
		}
	}
	return nil
}
