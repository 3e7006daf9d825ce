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
}

// Source lists what to report; it is called on every scrape, so a reload
// that changes the outputs is seen at once.
type Source interface {
	MonitorPlugins() []PluginInfo
	MetricOutputs() []Output
	MetricPlugins() []Plugin
	MetricCounters() []Counter
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

// The series of fluent-plugin-prometheus's prometheus_output_monitor.
var (
	queueLength   = desc("fluentd_output_status_buffer_queue_length", "Current buffer queue length.")
	totalBytes    = desc("fluentd_output_status_buffer_total_bytes", "Current total size of stage and queue buffers.")
	stageLength   = desc("fluentd_output_status_buffer_stage_length", "Current length of stage buffers.")
	stageBytes    = desc("fluentd_output_status_buffer_stage_byte_size", "Current total size of stage buffers.")
	queueBytes    = desc("fluentd_output_status_buffer_queue_byte_size", "Current total size of queue buffers.")
	availSpace    = desc("fluentd_output_status_buffer_available_space_ratio", "Ratio of available space in buffer.")
	retryCount    = desc("fluentd_output_status_retry_count", "Current retry counts.")
	numErrors     = desc("fluentd_output_status_num_errors", "Current number of errors.")
	emitCount     = desc("fluentd_output_status_emit_count", "Current emit counts.")
	emitRecords   = desc("fluentd_output_status_emit_records", "Current emit records.")
	writeCount    = desc("fluentd_output_status_write_count", "Current write counts.")
	rollbackCount = desc("fluentd_output_status_rollback_count", "Current rollback counts.")
	flushTime     = desc("fluentd_output_status_flush_time_count", "Total flush time in milliseconds.")
	slowFlushes   = desc("fluentd_output_status_slow_flush_count", "Current slow flush counts.")
	retryWait     = desc("fluentd_output_status_retry_wait", "Current retry wait.")

	sluiceDropped   = desc("sluice_output_dropped_records_total", "Records lost by the output, for any reason (each drop is logged with its reason).")
	sluiceBackup    = desc("sluice_output_backup_records_total", "Records moved to the backup directory.")
	sluiceOverflow  = desc("sluice_output_buffer_overflows_total", "Emits refused or blocked because the buffer was full.")
	sluiceSecondary = desc("sluice_output_secondary_writes_total", "Chunks written to <secondary>.")
	sluiceCorrupt   = desc("sluice_output_corrupt_chunks_total", "Chunk files found damaged and moved aside.")
	sluiceLeftover  = desc("sluice_output_shutdown_leftover_records", "Records the last shutdown could not deliver.")
	sluiceWritten   = desc("sluice_output_written_records_total", "Records delivered by the output.")
	sluiceWrittenB  = desc("sluice_output_written_bytes_total", "Buffered bytes of the chunks delivered (msgpack, or the formatted bytes for outputs that format when buffering).")
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
	for _, o := range c.src.MetricOutputs() {
		st, s := o.Status(), o.Stats
		// fluent-plugin-prometheus reports all of these as gauges.
		gauge(queueLength, float64(st.QueueLength), o)
		gauge(totalBytes, float64(st.TotalBytes), o)
		gauge(stageLength, float64(st.StageLength), o)
		gauge(stageBytes, float64(st.StageBytes), o)
		gauge(queueBytes, float64(st.QueueBytes), o)
		gauge(availSpace, st.AvailableSpaceRatio, o)
		gauge(retryCount, float64(s.RetryCount.Load()), o)
		gauge(numErrors, float64(s.NumErrors.Load()), o)
		gauge(emitCount, float64(s.EmitCount.Load()), o)
		gauge(emitRecords, float64(s.EmitRecords.Load()), o)
		gauge(writeCount, float64(s.WriteCount.Load()), o)
		gauge(rollbackCount, float64(s.RollbackCount.Load()), o)
		gauge(flushTime, float64(s.WriteSeconds.SumMillis()), o)
		gauge(slowFlushes, float64(s.SlowFlushes.Load()), o)
		gauge(retryWait, st.RetryWait, o)

		counter(sluiceDropped, s.DroppedRecords.Load(), o)
		counter(sluiceBackup, s.BackupRecords.Load(), o)
		counter(sluiceOverflow, s.OverflowCount.Load(), o)
		counter(sluiceSecondary, s.SecondaryWrites.Load(), o)
		counter(sluiceCorrupt, s.CorruptChunks.Load(), o)
		gauge(sluiceLeftover, float64(s.ShutdownLeftover.Load()), o)
		counter(sluiceWritten, s.WriteRecords.Load(), o)
		counter(sluiceWrittenB, s.WriteBytes.Load(), o)
		buckets, count, sum := s.WriteSeconds.Snapshot()
		ch <- prometheus.MustNewConstHistogram(sluiceWriteTime, count, sum, buckets, o.ID, o.Type)
	}
	// A family needs one help text; plugins of different types may word
	// the same counter differently, so the first wording is kept.
	helps := map[string]string{}
	for _, p := range c.src.MetricPlugins() {
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
