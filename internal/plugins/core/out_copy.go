package core

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

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
	Stores   []*config.Element `section:"store" desc:"An output that gets every event. <store ignore_error> keeps this store's failure from failing the copy; <store ignore_if_prev_success> skips this store when the one before it took the events (a fallback chain); both may be given."`

	stores []copyStore
	log    *slog.Logger
}

type copyStore struct {
	out          plugin.Emitter
	ignoreError  bool
	ifPrevFailed bool // ignore_if_prev_success
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
		st := copyStore{out: out}
		bad := false
		for _, word := range strings.Fields(sec.Arg) {
			switch word {
			case "ignore_error":
				st.ignoreError = true
			case "ignore_if_prev_success":
				st.ifPrevFailed = true
			default:
				bad = true
			}
		}
		switch {
		case bad:
			errs = append(errs, config.Errorf(sec.Pos, "<store %s>: the arguments are ignore_error and ignore_if_prev_success", sec.Arg))
			continue
		case st.ifPrevFailed && len(c.stores) == 0:
			errs = append(errs, config.Errorf(sec.Pos, "<store %s>: ignore_if_prev_success needs a <store> before it", sec.Arg))
			continue
		}
		c.stores = append(c.stores, st)
	}
	return errors.Join(errs...)
}

// Process implements plugin.SyncOutput. A store's error stops the copy and
// is returned (the input then does not acknowledge), unless the store is
// marked ignore_error. Stores before it keep what they accepted, so a
// client's resend can duplicate there, as in Fluentd. A store marked
// ignore_if_prev_success is skipped when the store before it succeeded.
func (c *Copy) Process(ctx context.Context, s event.Stream) error {
	prevOK := false
	for i, st := range c.stores {
		if st.ifPrevFailed && prevOK {
			// The store before took them. As in Fluentd, a skipped store
			// does not count as a success for the store after it.
			prevOK = false
			continue
		}
		if err := st.out.Emit(ctx, s); err != nil {
			prevOK = false
			if st.ignoreError {
				c.log.Warn("store failed; ignored", "store", i, "err", err)
				continue
			}
			return fmt.Errorf("store %d: %w", i, err)
		}
		prevOK = true
	}
	return nil
}
