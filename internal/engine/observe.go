package engine

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/sluice-log/sluice/internal/metrics"
	"github.com/sluice-log/sluice/internal/output"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Live implements plugin.Health.
func (e *Engine) Live() error {
	if e.state.Load() == stateStopped {
		return errors.New("stopped")
	}
	return nil
}

// Ready implements plugin.Health.
func (e *Engine) Ready(highWater float64) error {
	switch e.state.Load() {
	case stateStarting:
		return errors.New("starting")
	case stateStopping, stateStopped:
		return errors.New("shutting down")
	}
	if why := e.degrade.Load(); why != nil {
		return errors.New(*why)
	}
	for _, n := range e.g.Load().outputs {
		if n.runtime == nil {
			continue
		}
		st := n.runtime.Status()
		if st.WriteError != "" {
			return fmt.Errorf("output %s: the buffer cannot take events: %s", n.id, st.WriteError)
		}
		if fill := 1 - st.AvailableSpaceRatio/100; fill > highWater {
			return fmt.Errorf("output %s: buffer %.0f%% full (high-water mark %.0f%%)", n.id, 100*fill, 100*highWater)
		}
	}
	return nil
}

// Flush queues every staged chunk of every buffered output for writing
// now (SIGUSR1).
func (e *Engine) Flush() {
	for _, rt := range e.g.Load().runtimes() {
		rt.Flush()
	}
}

// runtimes returns the buffer runtimes of the graph's outputs and
// secondaries.
func (g *graph) runtimes() []*output.Runtime {
	var out []*output.Runtime
	for _, n := range append(append([]*node(nil), g.outputs...), g.secondaries...) {
		if n.runtime != nil {
			out = append(out, n.runtime)
		}
	}
	return out
}

// Pending returns the chunks and bytes the buffered outputs hold, staged,
// queued or in flight.
func (e *Engine) Pending() (chunks int, bytes int64) {
	for _, rt := range e.g.Load().runtimes() {
		c, b := rt.Pending()
		chunks, bytes = chunks+c, bytes+b
	}
	return chunks, bytes
}

// LostAtShutdown returns the records memory buffers still held when the
// last shutdown's deadline passed: counted as dropped, gone with the
// process.
func (e *Engine) LostAtShutdown() int64 {
	var n int64
	for _, rt := range e.g.Load().runtimes() {
		n += rt.Stats.Dropped[output.DropShutdown].Load()
	}
	return n
}

// MetricOutputs implements metrics.Source: the buffered outputs.
func (e *Engine) MetricOutputs() []metrics.Output {
	var out []metrics.Output
	for _, n := range e.g.Load().outputs {
		if n.runtime != nil {
			out = append(out, metrics.Output{ID: n.id, Type: n.typ, Stats: &n.runtime.Stats, Status: n.runtime.Status})
		}
	}
	return out
}

// MetricPlugins implements metrics.Source: the plugins with counters of
// their own.
func (e *Engine) MetricPlugins() []metrics.Plugin {
	var out []metrics.Plugin
	g := e.g.Load()
	for kind, nodes := range map[string][]*node{"input": g.inputs, "output": g.outputs} {
		for _, n := range nodes {
			if m, ok := n.p.(plugin.Measured); ok {
				mp := metrics.Plugin{Kind: kind, ID: n.id, Type: n.typ, Measure: m.Measure}
				mp.Files, _ = n.p.(plugin.FileFollower)
				out = append(out, mp)
			}
		}
	}
	return out
}

// MonitorPlugins implements metrics.Source: every input, filter and
// output, in configuration order, for monitor_agent.
func (e *Engine) MonitorPlugins() []metrics.PluginInfo {
	var out []metrics.PluginInfo
	g := e.g.Load()
	for _, group := range []struct {
		category string
		nodes    []*node
	}{{"input", g.inputs}, {"filter", g.filters}, {"output", g.outputs}} {
		for _, n := range group.nodes {
			pi := metrics.PluginInfo{ID: n.id, Category: group.category, Type: n.typ, Config: map[string]string{}}
			if n.el != nil {
				for _, p := range n.el.Params {
					pi.Config[p.Key] = p.Value
				}
			}
			if n.runtime != nil {
				pi.Output = &metrics.Output{ID: n.id, Type: n.typ, Stats: &n.runtime.Stats, Status: n.runtime.Status}
			}
			out = append(out, pi)
		}
	}
	return out
}

// MetricMonitors implements metrics.Source: the sources that ask for
// fluent-plugin-prometheus's monitor series.
func (e *Engine) MetricMonitors() []metrics.Monitor {
	var out []metrics.Monitor
	for _, n := range e.g.Load().inputs {
		if m, ok := n.p.(plugin.SeriesMonitor); ok {
			family, labels := m.Series()
			out = append(out, metrics.Monitor{Family: family, Labels: labels})
		}
	}
	return out
}

// MetricCounters implements metrics.Source.
func (e *Engine) MetricCounters() []metrics.Counter {
	return []metrics.Counter{
		{Name: "sluice_unmatched_events_total", Help: "Events whose tag no <match> takes (dropped, as in Fluentd).",
			Value: func() float64 { return float64(e.Unmatched.Load()) }},
		{Name: "sluice_error_events_dropped_total", Help: "Events sent to @ERROR with no <label @ERROR> to take them.",
			Value: func() float64 { return float64(e.ErrorEvents.Load()) }},
		{Name: "sluice_config_reloads_total", Help: "Configuration reloads applied (SIGHUP, SIGUSR2).",
			Value: func() float64 { return float64(e.Reloads.Load()) }},
		{Name: "sluice_config_reload_failures_total", Help: "Configuration reloads rejected; the running configuration stayed.",
			Value: func() float64 { return float64(e.ReloadFailures.Load()) }},
		{Name: "sluice_log_events_dropped_total", Help: "Sluice's own log records that did not reach <label @FLUENT_LOG> or <match fluent.**> (queue full, or shutdown).",
			Value: func() float64 {
				if e.flog == nil {
					return 0
				}
				return float64(e.flog.Dropped())
			}},
	}
}

// MetricsHandler serves the engine's metrics in Prometheus's text format,
// for the prometheus source (prometheus.MetricsHost).
func (e *Engine) MetricsHandler() http.Handler { return e.metrics }

// PluginsHandler serves monitor_agent's /api/plugins.json and
// /api/plugins (prometheus.PluginsHost).
func (e *Engine) PluginsHandler() http.Handler { return e.pluginsAPI }
