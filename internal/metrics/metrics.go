// Package metrics exposes Sluice's counters to Prometheus. Buffered
// outputs report under fluent-plugin-prometheus's names and labels
// (fluentd_output_status_*, with plugin_id and type), so dashboards and
// alerts written for Fluentd keep working; Sluice's own series are
// sluice_*. Values are read from the counters the runtime keeps anyway,
// at scrape time: nothing is added to the hot path.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice-log/sluice/internal/output"
	"github.com/sluice-log/sluice/internal/plugin"
)

// Output is one buffered output as metrics see it.
type Output struct {
	ID, Type string
	Stats    *output.Stats
	Status   func() output.Status
}

// Counter is one of the engine's own counters.
type Counter struct {
	Name, Help string
	Value      func() float64
}

// Plugin is a plugin with counters of its own (plugin.Measured).
type Plugin struct {
	Kind, ID, Type string // Kind: "input" or "output"
	Measure        func(plugin.Report)
	// Files is set for an input that follows files (tail).
	Files plugin.FileFollower
}

// Monitor is a prometheus_monitor or prometheus_output_monitor source: its
// family of series and the labels it adds to them.
type Monitor struct {
	Family string // "output_status", "status" or "tail"
	Labels map[string]string
}

// Source lists what to report; it is called on every scrape, so a reload
// that changes the outputs is seen at once.
type Source interface {
	MonitorPlugins() []PluginInfo
	MetricOutputs() []Output
	MetricPlugins() []Plugin
	MetricCounters() []Counter
	MetricMonitors() []Monitor
}

// Handler returns the /metrics handler for src, with the Go runtime and
// process series.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		&collector{src: src})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

var outputLabels = []string{"plugin_id", "type"}

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, outputLabels, nil)
}

// fluentdSeries is one series of fluent-plugin-prometheus's monitors, all
// gauges, read from an output's status and counters.
type fluentdSeries struct {
	name, help string
	value      func(output.Status, *output.Stats) float64
}

// outputStatus is what prometheus_output_monitor serves. Sluice serves it
// whether or not that source is configured.
var outputStatus = []fluentdSeries{
	{"fluentd_output_status_buffer_queue_length", "Current buffer queue length.",
		func(st output.Status, _ *output.Stats) float64 { return float64(st.QueueLength) }},
	{"fluentd_output_status_buffer_total_bytes", "Current total size of stage and queue buffers.",
		func(st output.Status, _ *output.Stats) float64 { return float64(st.TotalBytes) }},
	{"fluentd_output_status_buffer_stage_length", "Current length of stage buffers.",
		func(st output.Status, _ *output.Stats) float64 { return float64(st.StageLength) }},
	{"fluentd_output_status_buffer_stage_byte_size", "Current total size of stage buffers.",
		func(st output.Status, _ *output.Stats) float64 { return float64(st.StageBytes) }},
	{"fluentd_output_status_buffer_queue_byte_size", "Current total size of queue buffers.",
		func(st output.Status, _ *output.Stats) float64 { return float64(st.QueueBytes) }},
	{"fluentd_output_status_buffer_available_space_ratio", "Ratio of available space in buffer.",
		func(st output.Status, _ *output.Stats) float64 { return st.AvailableSpaceRatio }},
	{"fluentd_output_status_retry_count", "Current retry counts.",
		func(_ output.Status, s *output.Stats) float64 { return float64(s.RetryCount.Load()) }},
	{"fluentd_output_status_num_errors", "Current number of errors.",
		func(_ output.Status, s *output.Stats) float64 { return float64(s.NumErrors.Load()) }},
	{"fluentd_output_status_emit_count", "Current emit counts.",
		func(_ output.Status, s *output.Stats) float64 { return float64(s.EmitCount.Load()) }},
	{"fluentd_output_status_emit_records", "Current emit records.",
		func(_ output.Status, s *output.Stats) float64 { return float64(s.EmitRecords.Load()) }},
	{"fluentd_output_status_write_count", "Current write counts.",
		func(_ output.Status, s *output.Stats) float64 { return float64(s.WriteCount.Load()) }},
	{"fluentd_output_status_rollback_count", "Current rollback counts.",
		func(_ output.Status, s *output.Stats) float64 { return float64(s.RollbackCount.Load()) }},
	{"fluentd_output_status_flush_time_count", "Total flush time in milliseconds.",
		func(_ output.Status, s *output.Stats) float64 { return float64(s.WriteSeconds.SumMillis()) }},
	{"fluentd_output_status_slow_flush_count", "Current slow flush counts.",
		func(_ output.Status, s *output.Stats) float64 { return float64(s.SlowFlushes.Load()) }},
	{"fluentd_output_status_retry_wait", "Current retry wait.",
		func(st output.Status, _ *output.Stats) float64 { return st.RetryWait }},
}

// status is what prometheus_monitor serves, only when it is configured
// (its labels add plugin_category).
var status = []fluentdSeries{
	{"fluentd_status_buffer_queue_length", "Current buffer queue length.",
		func(st output.Status, _ *output.Stats) float64 { return float64(st.QueueLength) }},
	{"fluentd_status_buffer_total_bytes", "Current total size of queued buffers.",
		func(st output.Status, _ *output.Stats) float64 { return float64(st.TotalBytes) }},
	{"fluentd_status_retry_count", "Current retry counts.",
		func(_ output.Status, s *output.Stats) float64 { return float64(s.RetryCount.Load()) }},
}

// ReservedLabels are the labels Sluice sets itself (the fluentd_status_*
// family's, which include fluentd_output_status_*'s); <labels> may not
// name them.
var ReservedLabels = []string{"plugin_id", "plugin_category", "type"}

func descs(series []fluentdSeries, labels []string, extra map[string]string) []*prometheus.Desc {
	out := make([]*prometheus.Desc, len(series))
	for i, f := range series {
		out[i] = prometheus.NewDesc(f.name, f.help, labels, extra)
	}
	return out
}

// monitorLabels merges the <labels> of the monitors of each family; a nil
// map for status or tail means no such monitor is configured.
func monitorLabels(ms []Monitor) (outputExtra, statusExtra, tailExtra map[string]string) {
	outputExtra = map[string]string{}
	for _, m := range ms {
		dst := outputExtra
		switch m.Family {
		case "status":
			if statusExtra == nil {
				statusExtra = map[string]string{}
			}
			dst = statusExtra
		case "tail":
			if tailExtra == nil {
				tailExtra = map[string]string{}
			}
			dst = tailExtra
		}
		for k, v := range m.Labels {
			dst[k] = v
		}
	}
	return outputExtra, statusExtra, tailExtra
}

// tailSeries is what prometheus_tail_monitor serves, per file and per
// source, under fluent-plugin-prometheus's names (all gauges there).
func (c *collector) tailSeries(ch chan<- prometheus.Metric, p Plugin, extra map[string]string) {
	fileLabels := append(append([]string(nil), outputLabels...), "path")
	position := prometheus.NewDesc("fluentd_tail_file_position", "Current position of file.", fileLabels, extra)
	inode := prometheus.NewDesc("fluentd_tail_file_inode", "Current inode of file.", fileLabels, extra)
	for _, f := range p.Files.FollowedFiles() {
		ch <- prometheus.MustNewConstMetric(position, prometheus.GaugeValue, float64(f.Position), p.ID, p.Type, f.Path)
		ch <- prometheus.MustNewConstMetric(inode, prometheus.GaugeValue, float64(f.Inode), p.ID, p.Type, f.Path)
	}
	opened, closed, rotated, throttled := p.Files.FileCounts()
	for _, s := range []struct {
		name, help string
		v          int64
	}{{"fluentd_tail_file_opened", "Number of opened files.", opened}, {"fluentd_tail_file_closed", "Number of closed files.", closed},
		{"fluentd_tail_file_rotated", "Number of rotated files.", rotated}, {"fluentd_tail_file_throttled", "Number of times files got throttled.", throttled}} {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(s.name, s.help, outputLabels, extra), prometheus.GaugeValue, float64(s.v), p.ID, p.Type)
	}
}

// Sluice's own per-output series.
var (
	sluiceDropped   = prometheus.NewDesc("sluice_output_dropped_records_total", "Records lost by the output, by reason (each drop is also logged).", []string{"plugin_id", "type", "reason"}, nil)
	sluiceBackup    = desc("sluice_output_backup_records_total", "Records moved to the backup directory.")
	sluiceOverflow  = desc("sluice_output_buffer_overflows_total", "Emits refused or blocked because the buffer was full.")
	sluiceSecondary = desc("sluice_output_secondary_writes_total", "Chunks written to <secondary>.")
	sluiceCorrupt   = desc("sluice_output_corrupt_chunks_total", "Chunk files found damaged and moved aside.")
	sluiceLeftover  = desc("sluice_output_shutdown_leftover_records", "During a shutdown's drain, the records not yet delivered; after it, what it could not deliver.")
	sluiceWritten   = desc("sluice_output_written_records_total", "Records delivered by the output.")
	sluiceWrittenB  = desc("sluice_output_written_bytes_total", "Buffered bytes of the chunks delivered (msgpack, or the formatted bytes for outputs that format when buffering).")
	sluiceOldest    = desc("sluice_output_oldest_write_age_seconds", "Age of the oldest chunk write in flight, 0 when none is: a write that does not return grows here.")
	sluiceRetrying  = desc("sluice_output_retrying_chunks", "Chunks waiting for a retry after a failed write.")
	sluiceWriteTime = desc("sluice_output_write_duration_seconds", "Time one chunk write took, successful or not.")
)

type collector struct{ src Source }

// Describe sends nothing: the collector is unchecked, because the engine's
// counters are only known at scrape time.
func (c *collector) Describe(chan<- *prometheus.Desc) {}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, o Output) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, o.ID, o.Type)
	}
	counter := func(d *prometheus.Desc, v int64, o Output) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), o.ID, o.Type)
	}
	outputExtra, statusExtra, tailExtra := monitorLabels(c.src.MetricMonitors())
	statusOn := statusExtra != nil
	outputDescs := descs(outputStatus, outputLabels, outputExtra)
	statusDescs := descs(status, ReservedLabels, statusExtra)
	for _, o := range c.src.MetricOutputs() {
		st, s := o.Status(), o.Stats
		for i, f := range outputStatus {
			gauge(outputDescs[i], f.value(st, s), o)
		}
		if statusOn {
			for i, f := range status {
				ch <- prometheus.MustNewConstMetric(statusDescs[i], prometheus.GaugeValue, f.value(st, s), o.ID, "output", o.Type)
			}
		}

		for i, reason := range output.DropReasons {
			ch <- prometheus.MustNewConstMetric(sluiceDropped, prometheus.CounterValue, float64(s.Dropped[i].Load()), o.ID, o.Type, reason)
		}
		counter(sluiceBackup, s.BackupRecords.Load(), o)
		counter(sluiceOverflow, s.OverflowCount.Load(), o)
		counter(sluiceSecondary, s.SecondaryWrites.Load(), o)
		counter(sluiceCorrupt, s.CorruptChunks.Load(), o)
		gauge(sluiceLeftover, float64(st.Undelivered), o)
		counter(sluiceWritten, s.WriteRecords.Load(), o)
		gauge(sluiceOldest, st.OldestWrite, o)
		gauge(sluiceRetrying, float64(st.Retrying), o)
		counter(sluiceWrittenB, s.WriteBytes.Load(), o)
		buckets, count, sum := s.WriteSeconds.Snapshot()
		ch <- prometheus.MustNewConstHistogram(sluiceWriteTime, count, sum, buckets, o.ID, o.Type)
	}
	// A family needs one help text; plugins of different types may word
	// the same counter differently, so the first wording is kept.
	helps := map[string]string{}
	for _, p := range c.src.MetricPlugins() {
		if p.Files != nil && tailExtra != nil {
			c.tailSeries(ch, p, tailExtra)
		}
		p.Measure(func(name, help string, v int64, isGauge bool) {
			name = "sluice_" + p.Kind + "_" + name
			if h, ok := helps[name]; ok {
				help = h
			} else {
				helps[name] = help
			}
			typ := prometheus.CounterValue
			if isGauge {
				typ = prometheus.GaugeValue
			}
			ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(name, help, outputLabels, nil), typ, float64(v), p.ID, p.Type)
		})
	}
	for _, k := range c.src.MetricCounters() {
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(k.Name, k.Help, nil, nil), prometheus.CounterValue, k.Value())
	}
}
