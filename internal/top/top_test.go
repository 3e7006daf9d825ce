package top

import (
	"strings"
	"testing"
	"time"
)

const scrape1 = `# TYPE sluice_input_events_total counter
sluice_input_events_total{plugin_id="input1",type="forward"} 1000
# TYPE sluice_input_bytes_total counter
sluice_input_bytes_total{plugin_id="input1",type="forward"} 2e+06
# TYPE sluice_input_connections gauge
sluice_input_connections{plugin_id="input1",type="forward"} 4
# TYPE fluentd_output_status_emit_records gauge
fluentd_output_status_emit_records{plugin_id="out_firehose",type="kinesis_firehose"} 900
# TYPE sluice_output_written_records_total counter
sluice_output_written_records_total{plugin_id="out_firehose",type="kinesis_firehose"} 800
# TYPE fluentd_output_status_buffer_available_space_ratio gauge
fluentd_output_status_buffer_available_space_ratio{plugin_id="out_firehose",type="kinesis_firehose"} 75
# TYPE fluentd_output_status_buffer_total_bytes gauge
fluentd_output_status_buffer_total_bytes{plugin_id="out_firehose",type="kinesis_firehose"} 3.145728e+06
# TYPE sluice_output_oldest_write_age_seconds gauge
sluice_output_oldest_write_age_seconds{plugin_id="out_firehose",type="kinesis_firehose"} 42.4
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 2.5165824e+07
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 10
`

func TestRenderRates(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 15, 0, 0, 0, time.UTC)
	prev, err := Parse(strings.NewReader(scrape1), t0)
	if err != nil {
		t.Fatal(err)
	}
	later := strings.NewReplacer(
		`type="forward"} 1000`, `type="forward"} 3000`,
		`type="forward"} 2e+06`, `type="forward"} 6e+06`,
		`type="kinesis_firehose"} 900`, `type="kinesis_firehose"} 2900`,
		`type="kinesis_firehose"} 800`, `type="kinesis_firehose"} 1800`,
		"process_cpu_seconds_total 10", "process_cpu_seconds_total 11").Replace(scrape1)
	cur, err := Parse(strings.NewReader(later), t0.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	Render(&b, "test", prev, cur)
	out := b.String()
	for _, want := range []string{
		"RSS 24.0 MiB  CPU 0.50 cores",
		// 2000 events and 4 MB over 2 s, 4 connections
		"input1                   forward                  1000       2.00       4",
		// in 1000/s, out 500/s, 3 MiB buffered, 25% full
		"out_firehose             kinesis_firehose       1000        500    3.0 MiB  25.0%",
		// a write in flight for 42 s
		"       42s\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("frame lacks %q:\n%s", want, out)
		}
	}
	// After a restart the counters are lower: the rates show 0, not a
	// negative number.
	before, _ := Parse(strings.NewReader(later), t0)
	after, _ := Parse(strings.NewReader(scrape1), t0.Add(time.Second))
	b.Reset()
	Render(&b, "test", before, after)
	if !strings.Contains(b.String(), "input1                   forward                     0       0.00") {
		t.Errorf("rates after a restart:\n%s", b.String())
	}
}

// Series split by a label top does not show (the reason of a drop) add up
// per plugin.
func TestParseSumsSplitSeries(t *testing.T) {
	s, err := Parse(strings.NewReader(`# TYPE sluice_output_dropped_records_total counter
sluice_output_dropped_records_total{plugin_id="o",reason="overflow",type="file"} 3
sluice_output_dropped_records_total{plugin_id="o",reason="shutdown",type="file"} 4
`), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Values["sluice_output_dropped_records_total"]["o"]; got != 7 {
		t.Errorf("dropped = %v, want 7", got)
	}
}

// FuzzParseAndRender: whatever an endpoint answers, top draws a frame or
// returns an error; it never panics.
func FuzzParseAndRender(f *testing.F) {
	f.Add(scrape1)
	f.Add("sluice_input_events_total{plugin_id=\"a\"} NaN\n")
	f.Add("# TYPE x counter\nx{plugin_id=\"\\\"\"} -1e308\n")
	f.Fuzz(func(t *testing.T, text string) {
		s, err := Parse(strings.NewReader(text), time.Unix(0, 0))
		if err != nil {
			return
		}
		var b strings.Builder
		Render(&b, "fuzz", s, s)
	})
}
