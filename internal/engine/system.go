package engine

import "time"

// System is the <system> directive. Sluice accepts Fluentd's parameters;
// those that have no meaning in one Go process are accepted and ignored.
type System struct {
	Workers                    int           `conf:"workers"`
	RootDir                    string        `conf:"root_dir"`
	LogLevel                   string        `conf:"log_level" enum:"trace,debug,info,warn,error,fatal"`
	SuppressRepeatedStacktrace bool          `conf:"suppress_repeated_stacktrace"`
	EmitErrorLogInterval       time.Duration `conf:"emit_error_log_interval"`
	SuppressConfigDump         bool          `conf:"suppress_config_dump"`
	WithoutSource              bool          `conf:"without_source"`
	ProcessName                string        `conf:"process_name"`
	IgnoreRepeatedLogInterval  time.Duration `conf:"ignore_repeated_log_interval"`
	IgnoreSameLogInterval      time.Duration `conf:"ignore_same_log_interval"`
	EnableMsgpackTimeSupport   bool          `conf:"enable_msgpack_time_support"`
	FilePermission             string        `conf:"file_permission"`
	DirPermission              string        `conf:"dir_permission"`
	// ShutdownTimeout bounds the drain at stop; the default stays below
	// the 30 s that ECS and Kubernetes wait before SIGKILL.
	ShutdownTimeout time.Duration `conf:"shutdown_timeout"`
	// RPCEndpoint (host:port) serves Fluentd's HTTP RPC: the signals'
	// actions over HTTP. Off when empty.
	RPCEndpoint string     `conf:"rpc_endpoint"`
	Log         LogSection `section:"log"`
}

// LogSection is <system><log>.
type LogSection struct {
	Format     string `conf:"format" enum:"text,json"`
	TimeFormat string `conf:"time_format"`
}

// DefaultShutdownTimeout is <system> shutdown_timeout's default.
const DefaultShutdownTimeout = 25 * time.Second
