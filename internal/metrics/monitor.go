package metrics

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// PluginInfo is one plugin as monitor_agent lists it.
type PluginInfo struct {
	ID, Category, Type string
	Config             map[string]string
	Output             *Output // buffered outputs only
}

// PluginsAPI serves Fluentd's monitor_agent API: /api/plugins.json and
// /api/plugins (one LTSV line per plugin), with its field names, for the
// tools that poll it. ?with_config=false leaves the configuration out, as
// in Fluentd.
func PluginsAPI(src Source) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/plugins.json", func(w http.ResponseWriter, r *http.Request) {
		list := pluginList(src, r.URL.Query().Get("with_config") != "false")
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"plugins": list}) // the client went away
	})
	mux.HandleFunc("/api/plugins", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		for _, p := range pluginList(src, false) {
			keys := make([]string, 0, len(p))
			for k := range p {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			fields := make([]string, 0, len(keys))
			for _, k := range keys {
				if v := p[k]; v != nil {
					fields = append(fields, fmt.Sprintf("%s:%v", k, v))
				}
			}
			fmt.Fprintln(w, strings.Join(fields, "\t"))
		}
	})
	return mux
}

func pluginList(src Source, withConfig bool) []map[string]any {
	var out []map[string]any
	for _, p := range src.MonitorPlugins() {
		m := map[string]any{
			"plugin_id":       p.ID,
			"plugin_category": p.Category,
			"type":            p.Type,
			"output_plugin":   p.Category == "output",
			"retry_count":     nil,
		}
		if withConfig {
			cfg := map[string]string{"@type": p.Type, "@id": p.ID}
			for k, v := range p.Config {
				if secret(k) {
					v = "xxxxxx" // as Fluentd masks secret parameters
				}
				cfg[k] = v
			}
			m["config"] = cfg
		}
		if o := p.Output; o != nil {
			st, s := o.Status(), o.Stats
			m["buffer_queue_length"] = st.QueueLength
			m["buffer_stage_length"] = st.StageLength
			m["buffer_total_queued_size"] = st.TotalBytes
			m["buffer_stage_byte_size"] = st.StageBytes
			m["buffer_queue_byte_size"] = st.QueueBytes
			m["buffer_available_buffer_space_ratios"] = st.AvailableSpaceRatio
			m["retry_count"] = s.RetryCount.Load()
			m["emit_records"] = s.EmitRecords.Load()
			m["emit_count"] = s.EmitCount.Load()
			m["write_count"] = s.WriteCount.Load()
			m["rollback_count"] = s.RollbackCount.Load()
			m["slow_flush_count"] = s.SlowFlushes.Load()
			m["flush_time_count"] = s.WriteSeconds.SumMillis()
			m["retry"] = map[string]any{}
			if st.RetryWait > 0 {
				m["retry"] = map[string]any{"steps": s.RetryCount.Load(), "next_time_in_seconds": st.RetryWait}
			}
		}
		out = append(out, m)
	}
	return out
}

// secret reports whether a parameter holds a credential, by the names the
// plugins use for them.
func secret(key string) bool {
	for _, s := range []string{"secret", "password", "shared_key", "sec_key", "token", "passphrase", "private_key"} {
		if strings.Contains(key, s) {
			return true
		}
	}
	return false
}
