// Package top is `sluice top`: a terminal view of a running instance, read
// from its Prometheus endpoint once a second. Rates are the difference of
// two scrapes, so the view costs the instance one scrape per refresh.
package top

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Sample is one scrape: values by series name and plugin_id.
type Sample struct {
	At     time.Time
	Values map[string]map[string]float64 // name -> plugin_id -> value
	Types  map[string]string             // plugin_id -> type
	Kinds  map[string]string             // plugin_id -> "input" or "output"
	Global map[string]float64            // series without plugin_id
}

// Scrape reads url once.
func Scrape(ctx context.Context, client *http.Client, url string) (*Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
	}
	return Parse(resp.Body, time.Now())
}

// Parse reads the Prometheus text format.
func Parse(r io.Reader, at time.Time) (*Sample, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(r)
	if err != nil {
		return nil, err
	}
	s := &Sample{At: at, Values: map[string]map[string]float64{}, Types: map[string]string{},
		Kinds: map[string]string{}, Global: map[string]float64{}}
	for name, f := range fams {
		for _, m := range f.Metric {
			v := value(m)
			var id, typ string
			for _, l := range m.Label {
				switch l.GetName() {
				case "plugin_id":
					id = l.GetValue()
				case "type":
					typ = l.GetValue()
				}
			}
			if id == "" {
				s.Global[name] += v
				continue
			}
			if s.Values[name] == nil {
				s.Values[name] = map[string]float64{}
			}
			s.Values[name][id] += v // series split by another label (reason) add up
			s.Types[id] = typ
			switch {
			case strings.HasPrefix(name, "sluice_input_"):
				s.Kinds[id] = "input"
			case strings.HasPrefix(name, "fluentd_output_"), strings.HasPrefix(name, "sluice_output_"):
				s.Kinds[id] = "output"
			}
		}
	}
	return s, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}

func (s *Sample) get(name, id string) float64 { return s.Values[name][id] }

// rate is the per-second change of a counter between prev and cur; 0
// without a previous sample or after a restart (the counter went down).
func rate(prev, cur *Sample, name, id string) float64 {
	if prev == nil {
		return 0
	}
	dt := cur.At.Sub(prev.At).Seconds()
	d := cur.get(name, id) - prev.get(name, id)
	if dt <= 0 || d < 0 {
		return 0
	}
	return d / dt
}

// Render draws one frame.
func Render(w io.Writer, source string, prev, cur *Sample) {
	fmt.Fprintf(w, "sluice top  %s  %s  (Ctrl-C quits)\n", source, cur.At.Format("2006-01-02 15:04:05"))
	cpu := 0.0
	if prev != nil {
		if dt := cur.At.Sub(prev.At).Seconds(); dt > 0 {
			cpu = (cur.Global["process_cpu_seconds_total"] - prev.Global["process_cpu_seconds_total"]) / dt
		}
	}
	fmt.Fprintf(w, "process  RSS %s  CPU %.2f cores  goroutines %.0f  unmatched %.0f\n\n",
		bytes(cur.Global["process_resident_memory_bytes"]), cpu, cur.Global["go_goroutines"], cur.Global["sluice_unmatched_events_total"])

	fmt.Fprintf(w, "%-24s %-16s %12s %10s %7s %9s %10s\n", "INPUT", "TYPE", "EVENTS/S", "MB/S", "CONNS", "REFUSED/S", "DECODE_ERR")
	for _, id := range ids(cur, "input") {
		fmt.Fprintf(w, "%-24s %-16s %12.0f %10.2f %7.0f %9.0f %10.0f\n", clip(id, 24), clip(cur.Types[id], 16),
			rate(prev, cur, "sluice_input_events_total", id), rate(prev, cur, "sluice_input_bytes_total", id)/1e6,
			cur.get("sluice_input_connections", id), rate(prev, cur, "sluice_input_refused_total", id),
			cur.get("sluice_input_decode_errors_total", id))
	}
	fmt.Fprintf(w, "\n%-24s %-16s %10s %10s %10s %6s %6s %8s %8s %9s\n", "OUTPUT", "TYPE", "IN/S", "OUT/S", "BUFFER", "FILL", "QUEUE", "RETRIES", "DROPPED", "OLDEST_WR")
	for _, id := range ids(cur, "output") {
		fill := 100 - cur.get("fluentd_output_status_buffer_available_space_ratio", id)
		fmt.Fprintf(w, "%-24s %-16s %10.0f %10.0f %10s %5.1f%% %6.0f %8.0f %8.0f %8.0fs\n", clip(id, 24), clip(cur.Types[id], 16),
			rate(prev, cur, "fluentd_output_status_emit_records", id), rate(prev, cur, "sluice_output_written_records_total", id),
			bytes(cur.get("fluentd_output_status_buffer_total_bytes", id)), fill,
			cur.get("fluentd_output_status_buffer_queue_length", id), cur.get("fluentd_output_status_retry_count", id),
			cur.get("sluice_output_dropped_records_total", id), cur.get("sluice_output_oldest_write_age_seconds", id))
	}
}

func ids(s *Sample, kind string) []string {
	var out []string
	for id, k := range s.Kinds {
		if k == kind {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n-1] + "~"
	}
	return s
}

func bytes(b float64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", b/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", b/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", b/(1<<10))
	}
	return fmt.Sprintf("%.0f B", b)
}

// Run refreshes the view every interval until ctx ends. With frames > 0
// it stops after that many frames and draws without clearing the screen
// (for scripts and tests).
func Run(ctx context.Context, w io.Writer, url string, interval time.Duration, frames int) error {
	client := &http.Client{Timeout: 5 * time.Second}
	var prev *Sample
	for n := 0; ; n++ {
		cur, err := Scrape(ctx, client, url)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if frames == 0 {
			fmt.Fprint(w, "\x1b[H\x1b[2J") // home and clear
		}
		Render(w, url, prev, cur)
		prev = cur
		if frames > 0 && n+1 >= frames {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}
