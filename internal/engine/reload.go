package engine

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Reload replaces the running configuration with root's without stopping
// what did not change. A plugin is kept, running, when its section is the
// same and sits in the same place (see nodeKey): an unchanged source keeps
// its listener and connections, an unchanged output keeps its buffer and
// flush workers. The order:
//
//  1. Build and validate the new graph, as `sluice check` does. Any error
//     rejects the reload and the running graph stays as it was.
//  2. Open the new outputs and filters (a failure rejects the reload). A
//     new output whose file buffer directory a removed output still uses
//     opens it only once that output has drained and closed it; until then
//     events for it wait, pushing back on their clients.
//  3. Stop the removed and changed sources; each finishes and acknowledges
//     the messages it is reading.
//  4. Put the new pipelines behind the entries, so every input, relabel
//     and @ERROR now routes by the new rules, and wait for the emits still
//     running through the old ones.
//  5. Open the new sources. One that cannot (its port was taken in the
//     meantime) is logged and makes /readyz fail until a reload succeeds.
//  6. In the background, drain the removed outputs as at shutdown (within
//     shutdown_timeout) and close them.
//
// Reload returns once step 5 is done.
func (e *Engine) Reload(root *config.Element) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.state.Load() != stateRunning {
		return errors.New("not running")
	}
	err := e.reload(root)
	if err != nil {
		e.ReloadFailures.Add(1)
		return err
	}
	e.Reloads.Add(1)
	return nil
}

func (e *Engine) reload(root *config.Element) error {
	old := e.g.Load()
	g, err := e.build(root, old)
	if err != nil {
		return err
	}
	removedInputs, removed := byInput(missing(old.nodes(), g.nodes()))
	freshInputs, fresh := byInput(missing(g.nodes(), old.nodes()))

	// 2. A directory is busy while an output removed now or by an earlier
	// reload still has it; its successor waits for the close.
	busy := map[string]chan struct{}{}
	e.removedMu.Lock()
	for dir, closed := range e.removed {
		busy[dir] = closed
	}
	e.removedMu.Unlock()
	closedDir := map[*node]chan struct{}{}
	for _, n := range removed {
		if n.runtime != nil && n.runtime.Dir() != "" {
			closedDir[n] = make(chan struct{})
			busy[n.runtime.Dir()] = closedDir[n]
		}
	}
	waitFor := map[*node]chan struct{}{}
	for _, n := range fresh {
		if n.runtime == nil {
			continue
		}
		if closed, ok := busy[n.runtime.Dir()]; ok {
			waitFor[n] = closed
			n.opened = make(chan struct{})
		}
	}
	if opened, err := e.open(fresh); err != nil {
		e.closeNodes(opened)
		return err
	}
	e.removedMu.Lock()
	for n, closed := range closedDir {
		e.removed[n.runtime.Dir()] = closed
	}
	e.removedMu.Unlock()

	// 3. Sources that go away (or change) stop before their successors
	// bind the same ports.
	timeout := g.system.ShutdownTimeout
	deadline, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	e.stopInputs(deadline, removedInputs)
	e.closeNodes(removedInputs)

	// 4. Switch, then wait for what still runs through the old pipelines.
	e.g.Store(g)
	e.point(g)
	for _, p := range old.pipelines {
		p.retire()
	}
	for _, p := range old.pipelines {
		select {
		case <-p.drained:
		case <-deadline.Done():
		}
	}

	// 5. New sources.
	e.degrade.Store(nil)
	for _, n := range freshInputs {
		if in, ok := n.p.(plugin.Initer); ok {
			if err := in.Init(context.Background()); err != nil {
				why := fmt.Sprintf("reload: input %q (%s, %s) did not start: %v", n.typ, n.id, n.pos, err)
				e.degrade.Store(&why)
				n.logger(e).Error("input did not start after the reload; /readyz fails until a reload succeeds", "err", err)
				continue
			}
		}
		e.runInput(n)
	}

	// 6. Drain what was removed; open what waited for it.
	e.retire.Add(1)
	go func() {
		defer e.retire.Done()
		e.retireOutputs(removed, closedDir, timeout)
	}()
	for n, closed := range waitFor {
		e.retire.Add(1)
		go func() {
			defer e.retire.Done()
			e.openAfter(n, closed)
		}()
	}
	e.log.Info("configuration reloaded", "kept", len(g.nodes())-len(fresh)-len(freshInputs),
		"started", len(fresh)+len(freshInputs), "removed", len(removed)+len(removedInputs))
	return nil
}

// missing returns the nodes of a that b lacks, in a's order.
func missing(a, b []*node) []*node {
	inB := map[*node]bool{}
	for _, n := range b {
		inB[n] = true
	}
	var out []*node
	for _, n := range a {
		if !inB[n] {
			out = append(out, n)
		}
	}
	return out
}

// byInput splits nodes into inputs and the rest, keeping their order.
func byInput(nodes []*node) (inputs, others []*node) {
	for _, n := range nodes {
		if n.kind == plugin.KindInput {
			inputs = append(inputs, n)
		} else {
			others = append(others, n)
		}
	}
	return inputs, others
}

// retireOutputs drains the outputs a reload removed, closes them, and then
// frees their buffer directories for successors.
func (e *Engine) retireOutputs(removed []*node, closedDir map[*node]chan struct{}, timeout time.Duration) {
	if len(removed) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(e.retireCtx, timeout)
	defer cancel()
	if left := e.drain(ctx, removed); left > 0 {
		e.log.Warn("outputs removed by the reload did not drain in time", "records", left)
	}
	e.closeNodes(removed)
	e.removedMu.Lock()
	defer e.removedMu.Unlock()
	for n, closed := range closedDir {
		close(closed)
		if e.removed[n.runtime.Dir()] == closed {
			delete(e.removed, n.runtime.Dir())
		}
	}
}

// openAfter starts n's buffer once its directory's previous owner has
// closed it. At shutdown it gives up, and n stays unopened.
func (e *Engine) openAfter(n *node, closed <-chan struct{}) {
	defer close(n.opened)
	select {
	case <-closed:
	case <-e.retireCtx.Done():
		n.openErr = errors.New("shutting down before the buffer opened")
		return
	}
	if err := n.runtime.Start(); err != nil {
		n.openErr = err
		n.logger(e).Error("buffer did not open after the reload", "err", err)
	}
}
