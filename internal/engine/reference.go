package engine

import (
	"github.com/sluice-log/sluice/internal/plugin"
)

// Reference is the parameter reference of one plugin type: its own
// parameters and sections and, for an output that takes chunks, those of
// <buffer> with the defaults this output has, and <secondary>.
func Reference(info plugin.Info) []plugin.Param {
	params := plugin.Params(info)
	if info.Kind != plugin.KindOutput {
		return params
	}
	if info.Inject {
		in, _ := injectConfig(info) // CheckPlugins reports an error
		params = append(params, plugin.Param{Name: "<inject>", Type: "section",
			Desc: "Fields added to each record before the output formats or buffers it: host name, tag, time."})
		params = append(params, plugin.StructParams(&in, "<inject> ")...)
	}
	if _, ok := info.New().(plugin.BufferedOutput); !ok {
		return params
	}
	cfg, err := bufferConfig(info, "memory")
	if err != nil {
		return params // CheckPlugins reports it
	}
	desc := "How events are buffered, in chunks, and flushed, retried and given up on. A memory buffer by default; @type file keeps chunks across restarts."
	if _, sync := info.New().(plugin.SyncOutput); sync {
		desc = "Optional: without it the output takes events as they arrive; with it they are buffered as for any buffered output."
	}
	params = append(params, plugin.Param{Name: "<buffer>", Type: "section", Desc: desc})
	params = append(params, plugin.StructParams(&cfg, "<buffer> ")...)
	params = append(params, plugin.Param{Name: "<secondary>", Type: "section",
		Desc: "An output that takes the chunks this one gives up on (retries exhausted, or a permanent error), usually secondary_file; without it they go to the backup directory."})
	return params
}
