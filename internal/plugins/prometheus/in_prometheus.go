// Package prometheus holds the sources that show Sluice's state over HTTP:
// fluent-plugin-prometheus's `prometheus` (metrics and Sluice's health
// probes), with `prometheus_monitor` and `prometheus_output_monitor`
// accepted so that configurations written for Fluentd load unchanged
// (Sluice always keeps the counters those two would collect), and
// Fluentd's `monitor_agent`.
package prometheus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Server is the `prometheus` source.
type Server struct {
	Bind        string `conf:"bind"`
	Port        int    `conf:"port"`
	MetricsPath string `conf:"metrics_path"`
	// AggregatedMetricsPath serves the same metrics: Sluice has one process,
	// not Fluentd's workers to aggregate.
	AggregatedMetricsPath string          `conf:"aggregated_metrics_path"`
	Labels                *config.Element `section:"labels"`
	// Sluice's probes, on the same listener.
	HealthPath string `conf:"health_path"`
	ReadyPath  string `conf:"ready_path"`
	// ReadyHighWater is the buffer fill (0 to 1) above which /readyz fails.
	ReadyHighWater float64 `conf:"ready_buffer_high_water"`

	health  plugin.Health
	handler http.Handler
	log     *slog.Logger
	ln      net.Listener
}

// Monitor is `prometheus_monitor` and `prometheus_output_monitor`.
type Monitor struct {
	Interval time.Duration   `conf:"interval"`
	GaugeAll bool            `conf:"gauge_all"`
	Labels   *config.Element `section:"labels"`
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "prometheus", Summary: "serve metrics for Prometheus",
		New: func() any {
			return &Server{Bind: "0.0.0.0", Port: 24231, MetricsPath: "/metrics", AggregatedMetricsPath: "/aggregated_metrics",
				HealthPath: "/healthz", ReadyPath: "/readyz", ReadyHighWater: 0.8}
		}})
	for _, typ := range []string{"prometheus_monitor", "prometheus_output_monitor"} {
		plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: typ,
			Summary: "accepted for fluent-plugin-prometheus configurations; the metrics are always kept",
			New:     func() any { return &Monitor{Interval: 5 * time.Second, GaugeAll: true} }})
	}
}

// Configure implements plugin.Configurer.
func (s *Server) Configure(c *plugin.Context) error {
	if c.Metrics == nil {
		return errors.New("no metrics to serve")
	}
	if s.ReadyHighWater <= 0 || s.ReadyHighWater > 1 {
		return fmt.Errorf("ready_buffer_high_water must be above 0 and at most 1")
	}
	s.handler, s.log, s.health = c.Metrics, c.Logger, c.Health
	markLabels(s.Labels)
	return nil
}

// Configure implements plugin.Configurer.
func (m *Monitor) Configure(*plugin.Context) error {
	markLabels(m.Labels)
	return nil
}

// markLabels accepts a <labels> section. Its extra labels are not added to
// the series yet: a dashboard that filters on one must drop that filter.
func markLabels(l *config.Element) {
	if l != nil {
		l.MarkAllUsed()
	}
}

// Init binds the listener, so that a busy port fails the start.
func (s *Server) Init(context.Context) error {
	ln, err := listen(s.Bind, s.Port)
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// Admin marks the source as plugin.AdminInput: it serves until the drain
// at shutdown is over.
func (*Server) Admin() {}

// Addr is the bound address (for tests that ask for port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run implements plugin.Input: it serves until ctx ends.
func (s *Server) Run(ctx context.Context, _ plugin.Emitter) error {
	mux := http.NewServeMux()
	mux.Handle(s.MetricsPath, s.handler)
	if s.AggregatedMetricsPath != "" && s.AggregatedMetricsPath != s.MetricsPath {
		mux.Handle(s.AggregatedMetricsPath, s.handler)
	}
	if s.health != nil {
		mux.Handle(s.HealthPath, probe(s.health.Live))
		mux.Handle(s.ReadyPath, probe(func() error { return s.health.Ready(s.ReadyHighWater) }))
	}
	s.log.Info("serving metrics", "addr", s.ln.Addr().String(), "path", s.MetricsPath)
	return serve(ctx, s.ln, mux)
}

// serve serves h on ln until ctx ends, then shuts down within 5 seconds.
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shutdown)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// listen binds bind:port.
func listen(bind string, port int) (net.Listener, error) {
	if port < 0 || port > 65535 {
		return nil, fmt.Errorf("port %d out of range", port)
	}
	return net.Listen("tcp", net.JoinHostPort(bind, strconv.Itoa(port)))
}

// Run implements plugin.Input: nothing to collect, so it waits.
func (*Monitor) Run(ctx context.Context, _ plugin.Emitter) error {
	<-ctx.Done()
	return nil
}

// probe answers 200 "ok" when check passes, else 503 with the reason.
func probe(check func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := check(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}
