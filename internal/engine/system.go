package engine

import (
	"fmt"
	"time"

	"github.com/sluice-log/sluice/internal/buffer"
	"github.com/sluice-log/sluice/internal/plugin"
)

// System is the <system> directive. Sluice accepts Fluentd's parameters;
// those that have no meaning in one Go process are accepted and ignored.
type System struct {
	Workers                    int           `conf:"workers" desc:"Accepted and ignored: one Sluice process uses every core." ignored:"one Sluice process uses every core"`
	RootDir                    string        `conf:"root_dir" desc:"The home of file buffers (root_dir/<@id>/buffer) and of the backup directory, when an output's <buffer> names no path."`
	LogLevel                   string        `conf:"log_level" enum:"trace,debug,info,warn,error,fatal" desc:"The least severe level of Sluice's own log (-v and -q on the command line move it)."`
	SuppressRepeatedStacktrace bool          `conf:"suppress_repeated_stacktrace" desc:"Accepted for Fluentd compatibility; Sluice logs no stack traces." ignored:"Sluice logs no stack traces"`
	EmitErrorLogInterval       time.Duration `conf:"emit_error_log_interval" desc:"Accepted for Fluentd compatibility." ignored:"Sluice logs each kind of error once per event, not on a timer"`
	SuppressConfigDump         bool          `conf:"suppress_config_dump" desc:"Accepted for Fluentd compatibility; Sluice does not log its configuration." ignored:"Sluice does not log its configuration"`
	WithoutSource              bool          `conf:"without_source" desc:"Accepted for Fluentd compatibility." ignored:"sources always run"`
	ProcessName                string        `conf:"process_name" desc:"Accepted for Fluentd compatibility." ignored:"the process keeps its name"`
	IgnoreRepeatedLogInterval  time.Duration `conf:"ignore_repeated_log_interval" desc:"Accepted for Fluentd compatibility." ignored:"Sluice does not thin its own log"`
	IgnoreSameLogInterval      time.Duration `conf:"ignore_same_log_interval" desc:"Accepted for Fluentd compatibility." ignored:"Sluice does not thin its own log"`
	EnableMsgpackTimeSupport   bool          `conf:"enable_msgpack_time_support" desc:"Accepted for Fluentd compatibility; EventTime is always understood." ignored:"EventTime is always understood"`
	FilePermission             string        `conf:"file_permission" desc:"The octal mode of the files Sluice creates: file buffers' chunks and backups, out_file's and secondary_file's files (0644 by default; the umask still applies)."`
	DirPermission              string        `conf:"dir_permission" desc:"The octal mode of the directories Sluice creates for them (0755 by default)."`
	EnableInputMetrics         bool          `conf:"enable_input_metrics" desc:"Accepted for Fluentd compatibility: Sluice always counts its inputs." ignored:"inputs are always counted"`
	EnableSizeMetrics          bool          `conf:"enable_size_metrics" desc:"Accepted for Fluentd compatibility: Sluice always counts bytes." ignored:"bytes are always counted"`
	StrictConfigValue          bool          `conf:"strict_config_value" desc:"Accepted for Fluentd compatibility: Sluice always refuses a value of the wrong type." ignored:"a value of the wrong type is always an error"`
	DisableShared              bool          `conf:"disable_shared_socket" desc:"Accepted for Fluentd compatibility: one process shares no sockets." ignored:"one process shares no sockets"`
	EnableJITCompiler          bool          `conf:"enable_jit" desc:"Accepted for Fluentd compatibility (Ruby's JIT)." ignored:"there is no Ruby to compile"`
	// ShutdownTimeout bounds the drain at stop; the default stays below
	// the 30 s that ECS and Kubernetes wait before SIGKILL.
	ShutdownTimeout time.Duration `conf:"shutdown_timeout" desc:"How long the drain at shutdown may take: buffers flush, with retries, until it passes. Keep it below the orchestrator's kill grace (30s on ECS and Kubernetes)."`
	// RPCEndpoint (host:port) serves Fluentd's HTTP RPC: the signals'
	// actions over HTTP. Off when empty.
	RPCEndpoint string     `conf:"rpc_endpoint" desc:"host:port to serve Fluentd's HTTP RPC on (/api/plugins.flushBuffers, /api/config.reload...); off when empty."`
	Log         LogSection `section:"log" desc:"The format of Sluice's own log."`
}

// LogSection is <system><log>.
type LogSection struct {
	Format                string `conf:"format" enum:"text,json,logfmt,fluentd" desc:"text: Fluentd's own text lines (time [level]: #0 [plugin_id] message key=value), so log parsers and alerts written for Fluentd keep working; json: one object per line with Fluentd's keys (time, level, message) and the attributes; logfmt: slog's key=value lines. fluentd is text's old name."`
	RotateAge             string `conf:"rotate_age" desc:"Accepted for Fluentd compatibility: Sluice logs to standard error (or -o FILE) and leaves rotation to the platform." ignored:"Sluice logs to standard error (or -o FILE); rotation is the platform's"`
	RotateSize            string `conf:"rotate_size" desc:"Accepted for Fluentd compatibility (see rotate_age)." ignored:"Sluice logs to standard error (or -o FILE); rotation is the platform's"`
	ForcedStacktraceLevel string `conf:"forced_stacktrace_level" desc:"Accepted for Fluentd compatibility." ignored:"Sluice logs no stack traces"`
	TimeFormat            string `conf:"time_format" desc:"strftime format of the time in text and json lines; Fluentd's default, %Y-%m-%d %H:%M:%S %z, when unset (logfmt lines use RFC 3339)."`
}

// Perm is file_permission and dir_permission, or the defaults.
func (s *System) Perm() (buffer.Perm, error) {
	p := buffer.DefaultPerm
	var err error
	if s.FilePermission != "" {
		if p.File, err = buffer.ParsePerm(s.FilePermission); err != nil {
			return p, fmt.Errorf("file_permission: %w", err)
		}
	}
	if s.DirPermission != "" {
		if p.Dir, err = buffer.ParsePerm(s.DirPermission); err != nil {
			return p, fmt.Errorf("dir_permission: %w", err)
		}
	}
	return p, nil
}

// DefaultShutdownTimeout is <system> shutdown_timeout's default.
const DefaultShutdownTimeout = 25 * time.Second

// DefaultSystem is <system> when the configuration has none.
func DefaultSystem() System {
	return System{ShutdownTimeout: DefaultShutdownTimeout, LogLevel: "info", Log: LogSection{Format: "text"}}
}

// SystemReference is the parameter reference of <system>.
func SystemReference() []plugin.Param {
	sys := DefaultSystem()
	return plugin.StructParams(&sys, "")
}
