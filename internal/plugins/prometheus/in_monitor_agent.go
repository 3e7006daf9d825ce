package prometheus

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// MonitorAgent is Fluentd's `monitor_agent` source: the plugins and their
// buffer counters as JSON at /api/plugins.json.
type MonitorAgent struct {
	Bind          string `conf:"bind" desc:"The address to listen on."`
	Port          int    `conf:"port" desc:"The TCP port to listen on."`
	IncludeConfig bool   `conf:"include_config" desc:"Include each plugin's configuration in /api/plugins.json."`
	IncludeRetry  bool   `conf:"include_retry" desc:"Include each output's retry state in /api/plugins.json."`
	// Tag and EmitInterval make Fluentd emit the same data as events;
	// Sluice does not, and says so at start when tag is set.
	Tag          string        `conf:"tag" desc:"Accepted for Fluentd compatibility; Sluice does not emit the data as events (poll /api/plugins.json)."`
	EmitInterval time.Duration `conf:"emit_interval" desc:"Accepted for Fluentd compatibility (see tag)."`

	api http.Handler
	log *slog.Logger
	ln  net.Listener
	srv transport.HTTPServer
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "monitor_agent", Summary: "serve the plugins and their buffers as JSON",
		Admin: true, New: func() any {
			return &MonitorAgent{Bind: "0.0.0.0", Port: 24220, IncludeConfig: true, IncludeRetry: true, EmitInterval: 60 * time.Second}
		}})
}

// Configure implements plugin.Configurer.
func (m *MonitorAgent) Configure(c *plugin.Context) error {
	h, ok := c.Host.(PluginsHost)
	if !ok {
		return errors.New("no plugin API to serve")
	}
	m.api, m.log = h.PluginsHandler(), c.Logger
	if m.Tag != "" {
		m.log.Warn("monitor_agent: tag is accepted, but the data is not emitted as events; poll /api/plugins.json", "tag", m.Tag)
	}
	return nil
}

// Init binds the listener.
func (m *MonitorAgent) Init(context.Context) error {
	ln, err := listen(m.Bind, m.Port)
	m.ln = ln
	return err
}

// Run implements plugin.Input.
func (m *MonitorAgent) Run(ctx context.Context, _ plugin.Emitter) error {
	h := m.api
	if !m.IncludeConfig {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			if q.Get("with_config") == "" {
				q.Set("with_config", "false")
				r.URL.RawQuery = q.Encode()
			}
			m.api.ServeHTTP(w, r)
		})
	}
	m.log.Info("serving monitor_agent", "addr", m.ln.Addr().String())
	return serve(ctx, &m.srv, m.ln, h, nil, m.log)
}

// Close implements plugin.Closer.
func (m *MonitorAgent) Close(context.Context) error { return closeServer(&m.srv, m.ln) }

// Listens implements plugin.Listener.
func (m *MonitorAgent) Listens() []string {
	return []string{net.JoinHostPort(m.Bind, strconv.Itoa(m.Port))}
}
