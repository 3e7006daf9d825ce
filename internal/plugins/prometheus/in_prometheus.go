// Package prometheus holds the sources that show Sluice's state over HTTP:
// fluent-plugin-prometheus's `prometheus` (metrics and Sluice's health
// probes), with `prometheus_monitor` and `prometheus_output_monitor`
// choosing the families of series served and the labels added to them
// (Sluice always keeps the counters those two would collect), and
// Fluentd's `monitor_agent`.
package prometheus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/metrics"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/transport"
)

// Server is the `prometheus` source.
type Server struct {
	Bind        string `conf:"bind" desc:"The address to listen on."`
	Port        int    `conf:"port" desc:"The TCP port to listen on."`
	MetricsPath string `conf:"metrics_path" desc:"The path Prometheus scrapes."`
	// AggregatedMetricsPath serves the same metrics: Sluice has one process,
	// not Fluentd's workers to aggregate.
	AggregatedMetricsPath string          `conf:"aggregated_metrics_path" desc:"The same metrics again: Sluice is one process, with no workers to aggregate."`
	Labels                *config.Element `section:"labels" desc:"Labels added to the series this source asks for (prometheus_output_monitor and prometheus_monitor only; ignored, with a warning, in prometheus)."`
	// Sluice's probes, on the same listener.
	HealthPath string `conf:"health_path" desc:"The liveness probe: 200 while the process runs."`
	ReadyPath  string `conf:"ready_path" desc:"The readiness probe: 503 while starting, shutting down, or while a buffer is fuller than ready_buffer_high_water, so that a load balancer sends new connections elsewhere."`
	// ReadyHighWater is the buffer fill (0 to 1) above which /readyz fails.
	ReadyHighWater  float64         `conf:"ready_buffer_high_water" desc:"The buffer fill (above 0, at most 1) past which the readiness probe fails."`
	ContentEncoding string          `conf:"content_encoding" enum:"identity,gzip" desc:"gzip compresses every metrics response, as fluent-plugin-prometheus does; identity compresses only for a scraper that asks (Accept-Encoding)."`
	SSL             *SSLSection     `section:"ssl" desc:"fluent-plugin-prometheus's old TLS section; <transport tls> is the current one."`
	Transport       *config.Element `section:"transport" desc:"tcp, or tls with the server's certificate, as in Fluentd's HTTP server helper."`

	tls       transport.Transport
	tlsConfig *tls.Config
	health    plugin.Health
	handler   http.Handler
	log       *slog.Logger
	ln        net.Listener
	server    transport.HTTPServer
}

// SSLSection is fluent-plugin-prometheus's deprecated <ssl>.
type SSLSection struct {
	Enable          bool              `conf:"enable" desc:"Serve over TLS."`
	CertificatePath string            `conf:"certificate_path" desc:"The PEM certificate (cert_path of <transport tls>)."`
	PrivateKeyPath  string            `conf:"private_key_path" desc:"The PEM private key."`
	CAPath          string            `conf:"ca_path" desc:"PEM CA certificates for client certificates."`
	ExtraConf       map[string]string `conf:"extra_conf" desc:"Accepted for compatibility (WEBrick's options)." ignored:"WEBrick's options have no meaning for Go's TLS server"`
}

// MetricsHost is the instance whose metrics a prometheus source serves
// (plugin.Context.Host): its metrics in Prometheus's text format.
type MetricsHost interface {
	plugin.Health
	MetricsHandler() http.Handler
}

// PluginsHost is the instance whose plugins monitor_agent lists: its
// /api/plugins.json and /api/plugins.
type PluginsHost interface {
	PluginsHandler() http.Handler
}

// Monitor is `prometheus_monitor` and `prometheus_output_monitor`. Sluice
// keeps the counters anyway; the source decides which family of series
// is served and which labels its <labels> adds to them.
type Monitor struct {
	Interval time.Duration   `conf:"interval" desc:"Accepted for fluent-plugin-prometheus compatibility: the values are read at each scrape." ignored:"the values are read at each scrape"`
	GaugeAll bool            `conf:"gauge_all" desc:"Accepted for fluent-plugin-prometheus compatibility." ignored:"the series keep fluent-plugin-prometheus's types"`
	Labels   *config.Element `section:"labels" desc:"Labels added to the series this source asks for (prometheus_output_monitor and prometheus_monitor only; ignored, with a warning, in prometheus)."`

	family string
	labels map[string]string
}

func init() {
	plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: "prometheus", Summary: "serve metrics for Prometheus",
		Sections: map[string]plugin.Section{"transport": {New: func() any { t := transport.Default(); return &t }}},
		// It serves until the drain at shutdown is over.
		Admin: true, New: func() any {
			return &Server{Bind: "0.0.0.0", Port: 24231, MetricsPath: "/metrics", AggregatedMetricsPath: "/aggregated_metrics",
				HealthPath: "/healthz", ReadyPath: "/readyz", ReadyHighWater: 0.8, ContentEncoding: "identity"}
		}})
	for _, typ := range []string{"prometheus_monitor", "prometheus_output_monitor", "prometheus_tail_monitor"} {
		plugin.Register(plugin.Info{Kind: plugin.KindInput, Type: typ,
			Summary: "accepted for fluent-plugin-prometheus configurations; the metrics are always kept",
			New:     func() any { return &Monitor{Interval: 5 * time.Second, GaugeAll: true} }})
	}
}

// Configure implements plugin.Configurer.
func (s *Server) Configure(c *plugin.Context) error {
	h, ok := c.Host.(MetricsHost)
	if !ok {
		return errors.New("no metrics to serve")
	}
	if s.ReadyHighWater <= 0 || s.ReadyHighWater > 1 {
		return fmt.Errorf("ready_buffer_high_water must be above 0 and at most 1")
	}
	s.handler, s.log, s.health = h.MetricsHandler(), c.Logger, c.Host
	tr := transport.Default()
	if s.Transport != nil {
		if err := config.Decode(s.Transport, &tr); err != nil {
			return err
		}
	}
	if s.SSL != nil && s.SSL.Enable {
		if (s.SSL.CertificatePath == "") != (s.SSL.PrivateKeyPath == "") {
			return fmt.Errorf("<ssl>: both certificate_path and private_key_path must be given")
		}
		tr.Protocol, tr.CertPath, tr.PrivateKeyPath, tr.CAPath = "tls", s.SSL.CertificatePath, s.SSL.PrivateKeyPath, s.SSL.CAPath
		if tr.CertPath == "" {
			tr.Insecure = true // fluent-plugin-prometheus makes a self-signed certificate
		}
	}
	tr.Hostname = c.Hostname
	if err := tr.Validate(true); err != nil {
		return err
	}
	s.tls = tr
	if s.Labels != nil {
		// fluent-plugin-prometheus's prometheus source has no <labels>;
		// Fluentd warns and goes on, and so does Sluice.
		s.Labels.MarkAllUsed()
		s.log.Warn("<labels> in a prometheus source is ignored, as in Fluentd; put it in prometheus_output_monitor")
	}
	return nil
}

// Configure implements plugin.Configurer.
func (m *Monitor) Configure(c *plugin.Context) error {
	switch c.Type {
	case "prometheus_monitor":
		m.family = "status"
	case "prometheus_tail_monitor":
		m.family = "tail"
	default:
		m.family = "output_status"
	}
	labels, err := parseLabels(m.Labels, c.Hostname)
	if err != nil {
		return err
	}
	m.labels = labels
	return nil
}

// Series implements plugin.SeriesMonitor.
func (m *Monitor) Series() (string, map[string]string) { return m.family, m.labels }

var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// parseLabels reads a <labels> section: one label per parameter, with
// fluent-plugin-prometheus's placeholders ${hostname} and ${worker_id}
// (always 0: Sluice is one process).
func parseLabels(sec *config.Element, hostname string) (map[string]string, error) {
	labels := map[string]string{}
	if sec == nil {
		return labels, nil
	}
	sec.MarkAllUsed()
	expand := strings.NewReplacer("${hostname}", hostname, "${worker_id}", "0")
	for _, p := range sec.Params {
		if !labelName.MatchString(p.Key) || strings.HasPrefix(p.Key, "__") {
			return nil, config.Errorf(p.Pos, "<labels>: %q is not a Prometheus label name", p.Key)
		}
		if slices.Contains(metrics.ReservedLabels, p.Key) {
			return nil, config.Errorf(p.Pos, "<labels>: %s is set by Sluice itself", p.Key)
		}
		labels[p.Key] = expand.Replace(p.Value)
	}
	return labels, nil
}

// Init binds the listener, so that a busy port fails the start.
func (s *Server) Init(context.Context) error {
	cfg, err := s.tls.ServerConfig()
	if err != nil {
		return err
	}
	s.tlsConfig = cfg
	ln, err := listen(s.Bind, s.Port)
	if err != nil {
		return err
	}
	s.ln = ln
	return nil
}

// Addr is the bound address (for tests that ask for port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Run implements plugin.Input: it serves until ctx ends.
func (s *Server) Run(ctx context.Context, _ plugin.Emitter) error {
	mux := http.NewServeMux()
	metricsHandler := s.handler
	if s.ContentEncoding == "gzip" {
		metricsHandler = gzipAlways(metricsHandler)
	}
	mux.Handle(s.MetricsPath, metricsHandler)
	if s.AggregatedMetricsPath != "" && s.AggregatedMetricsPath != s.MetricsPath {
		mux.Handle(s.AggregatedMetricsPath, metricsHandler)
	}
	if s.health != nil {
		mux.Handle(s.HealthPath, probe(s.health.Live))
		mux.Handle(s.ReadyPath, probe(func() error { return s.health.Ready(s.ReadyHighWater) }))
	}
	s.log.Info("serving metrics", "addr", s.ln.Addr().String(), "path", s.MetricsPath)
	return serve(ctx, &s.server, s.ln, mux, s.tlsConfig, s.log)
}

// Close implements plugin.Closer.
func (s *Server) Close(context.Context) error { return closeServer(&s.server, s.ln) }

// serve serves h on ln until ctx ends, then drains (transport.ServeHTTP).
// The server's own complaints (a failed TLS handshake) go to log, in
// Sluice's format, not to the standard logger.
func serve(ctx context.Context, srv *transport.HTTPServer, ln net.Listener, h http.Handler, tlsConfig *tls.Config, log *slog.Logger) error {
	return srv.Serve(ctx, &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, TLSConfig: tlsConfig,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}, ln)
}

// gzipAlways compresses every response of h (content_encoding gzip), as
// fluent-plugin-prometheus does whatever the scraper asked for.
func gzipAlways(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.Clone(r.Context())
		r.Header.Del("Accept-Encoding") // h writes plain text; this wraps it once
		w.Header().Set("Content-Encoding", "gzip")
		zw := gzip.NewWriter(w)
		defer func() { _ = zw.Close() }() // the client has gone if this fails
		h.ServeHTTP(gzipResponse{ResponseWriter: w, w: zw}, r)
	})
}

type gzipResponse struct {
	http.ResponseWriter
	w io.Writer
}

func (g gzipResponse) Write(b []byte) (int, error) { return g.w.Write(b) }

// closeServer ends what the server still serves and frees its listener,
// which Run may never have taken (a start that failed later).
func closeServer(srv *transport.HTTPServer, ln net.Listener) error {
	srv.Close()
	if ln != nil {
		ln.Close()
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

// Listens implements plugin.Listener.
func (s *Server) Listens() []string { return []string{net.JoinHostPort(s.Bind, strconv.Itoa(s.Port))} }
