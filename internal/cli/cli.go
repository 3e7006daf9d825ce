// Package cli is Sluice's command line:
//
//	sluice [run] -c FILE [--dry-run] [-v|-vv] [-q|-qq] [-o LOGFILE] [--log-format text|json|logfmt]
//	sluice check -c FILE
//	sluice version
//	sluice plugins
//
// Fluentd's flags keep their meaning, so existing unit files and container
// commands work unchanged.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugin"
	"github.com/sluice-log/sluice/internal/top"
)

// Version, Commit and BuildDate are set at build time by scripts/release
// with -ldflags "-X ...cli.Version=v1.2.3 -X ...cli.Commit=... -X
// ...cli.BuildDate=2026-12-06T21:00:00Z"; a plain go build leaves them
// empty and the module's and VCS's build information stands in.
var (
	Version   = ""
	Commit    = ""
	BuildDate = ""
)

// DefaultConfigPath is Fluentd's default, so a drop-in replacement finds it.
const DefaultConfigPath = "/etc/fluent/fluent.conf"

// Main runs the command and returns the exit status.
func Main(args []string, stdout, stderr io.Writer) int {
	cmd := "run"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return run(args, stdout, stderr, false)
	case "check":
		return run(args, stdout, stderr, true)
	case "version":
		fmt.Fprintln(stdout, "sluice", versionLine())
		return 0
	case "plugins":
		return plugins(args, stdout, stderr)
	case "probe":
		return probe(args, stdout, stderr)
	case "top":
		return topCmd(args, stdout, stderr)
	case "help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "sluice: unknown command %q\n", cmd)
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  sluice [run] -c FILE [--dry-run] [-v|-vv] [-q|-qq] [-o LOGFILE] [--log-format text|json|logfmt]
               [-i CONFIG_TEXT] [-d PIDFILE] [--umask 0022] [--admin-addr HOST:PORT] [--version]
               (Fluentd's -p, --no-supervisor, --under-supervisor, --use-v1-config, --log-rotate-*
               and the like are accepted, with a warning)
  sluice check -c FILE     parse, validate and build the pipeline without opening anything
  sluice version
  sluice plugins [TYPE]    list plugin types; with TYPE, its parameters with defaults and descriptions
  sluice top [-url URL] [-interval 1s] [-n FRAMES]
                           live view of a running instance, from its prometheus source
                           (default http://127.0.0.1:24231/metrics)
  sluice probe URL         GET URL (e.g. http://127.0.0.1:24231/healthz): exit 0 on 200, else 1,
                           for container health checks in images without curl
`)
}

// versionLine is the version, the commit it was built from and the Go
// version: what a bug report needs.
func versionLine() string {
	line := version()
	commit := Commit
	if bi, ok := debug.ReadBuildInfo(); ok && commit == "" {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				commit = s.Value
			}
		}
	}
	if len(commit) >= 12 {
		line += " commit " + commit[:12]
	}
	if BuildDate != "" {
		line += " built " + BuildDate
	}
	return line + " " + runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}

// counter is a repeatable boolean flag (-v -v, or -vv).
type counter int

func (c *counter) String() string   { return fmt.Sprint(int(*c)) }
func (c *counter) Set(string) error { *c++; return nil }
func (c *counter) IsBoolFlag() bool { return true }

type options struct {
	config     string
	dryRun     bool
	verbose    counter
	quiet      counter
	logFile    string
	logFormat  string
	version    bool
	inline     string
	pidFile    string
	umask      string
	configType string
	admin      string   // --admin-addr: the admin listener's host:port
	ignored    []string // Fluentd flags accepted without effect
}

// AdminEnv names the environment variable that turns the admin listener
// on when --admin-addr is not given (the image sets it).
const AdminEnv = "SLUICE_ADMIN_ADDR"

// adminSource is the admin listener: a prometheus source (/metrics,
// /healthz, /readyz) added to whatever the configuration holds, so that
// probes and scrapes work with a configuration that has none. A port the
// configuration takes as well fails the check, as two sources on one port do.
func adminSource(addr string) (*config.Element, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--admin-addr %q: want HOST:PORT (0.0.0.0:24232): %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("--admin-addr %q: the port must be 1 to 65535", addr)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	pos := config.Pos{File: "--admin-addr " + addr}
	el := &config.Element{Name: "source", Pos: pos}
	for _, kv := range [][2]string{{"@type", "prometheus"}, {"@id", "sluice_admin"}, {"bind", host}, {"port", port}} {
		el.Params = append(el.Params, &config.Param{Key: kv[0], Value: kv[1], Pos: pos})
	}
	return el, nil
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sluice", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.config, "c", DefaultConfigPath, "configuration file")
	fs.StringVar(&o.config, "config", DefaultConfigPath, "configuration file")
	fs.BoolVar(&o.dryRun, "dry-run", false, "check the configuration and exit")
	fs.Var(&o.verbose, "v", "more logging (-vv for trace)")
	fs.Var(&o.verbose, "verbose", "more logging")
	fs.Var(&o.quiet, "q", "less logging (-qq for errors only)")
	fs.Var(&o.quiet, "quiet", "less logging")
	fs.StringVar(&o.logFile, "o", "", "write Sluice's own log to this file")
	fs.StringVar(&o.logFile, "log", "", "write Sluice's own log to this file")
	fs.StringVar(&o.logFormat, "log-format", "", "text (Fluentd's), json (Fluentd's) or logfmt (default: <system><log> format, else text)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.StringVar(&o.inline, "i", "", "configuration text appended to the file's")
	fs.StringVar(&o.inline, "inline-config", "", "configuration text appended to the file's")
	fs.StringVar(&o.pidFile, "d", "", "write the process id to this file (Sluice does not daemonize)")
	fs.StringVar(&o.pidFile, "daemon", "", "write the process id to this file (Sluice does not daemonize)")
	fs.StringVar(&o.umask, "umask", "", "the file mode creation mask, in octal (0022)")
	fs.StringVar(&o.configType, "config-file-type", "guess", "guess or v1 (YAML configurations are not read)")
	fs.StringVar(&o.admin, "admin-addr", os.Getenv(AdminEnv), "serve /healthz, /readyz and /metrics on HOST:PORT whatever the configuration holds (default $"+AdminEnv+"; empty: off)")
	// Flags Fluentd's images, packages and unit files pass that have no
	// meaning for one Go process: accepted, and named in a warning.
	for _, name := range []string{"p", "plugin", "log-rotate-age", "log-rotate-size", "setup", "s", "r", "gemfile", "g"} {
		fs.Func(name, "accepted for Fluentd compatibility", func(v string) error {
			o.ignored = append(o.ignored, "-"+name+" "+v)
			return nil
		})
	}
	for _, name := range []string{"no-supervisor", "under-supervisor", "use-v1-config", "use-v0-config", "suppress-config-dump", "without-source", "strict-config-value", "enable-input-metrics", "enable-size-metrics"} {
		fs.BoolFunc(name, "accepted for Fluentd compatibility", func(string) error {
			o.ignored = append(o.ignored, "--"+name)
			return nil
		})
	}
	// Fluentd spells doubled levels as one flag.
	var expanded []string
	for _, a := range args {
		switch a {
		case "-vv":
			expanded = append(expanded, "-v", "-v")
		case "-qq":
			expanded = append(expanded, "-q", "-q")
		default:
			expanded = append(expanded, a)
		}
	}
	if err := fs.Parse(expanded); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch o.configType {
	case "guess", "v1":
	case "yaml":
		return nil, fmt.Errorf("--config-file-type yaml: Sluice reads Fluentd's v1 syntax only")
	default:
		return nil, fmt.Errorf("--config-file-type %q: want guess or v1", o.configType)
	}
	return o, nil
}

// readConfig parses the configuration file, with -i's text after it and
// the admin listener's source.
func readConfig(o *options, opts *config.Options) (*config.Element, error) {
	root, err := readConfigText(o, opts)
	if err != nil || o.admin == "" {
		return root, err
	}
	admin, err := adminSource(o.admin)
	if err != nil {
		return nil, err
	}
	root.Elements = append(root.Elements, admin)
	return root, nil
}

func readConfigText(o *options, opts *config.Options) (*config.Element, error) {
	if o.inline == "" {
		return config.ParseFile(o.config, opts)
	}
	read := os.ReadFile
	if opts != nil && opts.ReadFile != nil {
		read = opts.ReadFile
	}
	src, err := read(o.config)
	if err != nil && !(errors.Is(err, fs.ErrNotExist) && o.config == DefaultConfigPath) {
		return nil, err
	}
	src = append(append(src, '\n'), strings.ReplaceAll(o.inline, `\n`, "\n")...)
	return config.Parse(o.config, src, opts)
}

// noConfigHelp explains what to do when there is no configuration at all.
func noConfigHelp(o *options, err error) string {
	if errors.Is(err, fs.ErrNotExist) && o.config == DefaultConfigPath {
		return fmt.Sprintf("sluice: no configuration: %s does not exist. Pass your Fluentd configuration with -c FILE "+
			"(sluice check -c FILE validates it first), or put it at %s.", DefaultConfigPath, DefaultConfigPath)
	}
	return err.Error()
}

func run(args []string, stdout, stderr io.Writer, checkOnly bool) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, "sluice:", err)
		return 2
	}
	if o.version {
		fmt.Fprintln(stdout, "sluice", versionLine())
		return 0
	}
	var notices []string
	for _, f := range o.ignored {
		notices = append(notices, "warning: "+f+" is accepted and ignored: Sluice is one Go process and loads no Ruby plugins")
	}
	root, err := readConfig(o, &config.Options{Warn: func(pos config.Pos, msg string) {
		notices = append(notices, pos.String()+": warning: "+msg)
	}})
	if err != nil {
		for _, n := range notices {
			fmt.Fprintln(stderr, n)
		}
		fmt.Fprintln(stderr, noConfigHelp(o, err))
		return 1
	}
	if o.umask != "" {
		mask, err := strconv.ParseUint(o.umask, 8, 32)
		if err != nil || mask > 0o777 {
			fmt.Fprintf(stderr, "sluice: --umask %q: want an octal mode such as 0022\n", o.umask)
			return 2
		}
		if !checkOnly && !o.dryRun {
			syscall.Umask(int(mask))
		}
	}
	logOut := stderr
	if o.logFile != "" {
		f, err := os.OpenFile(o.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintln(stderr, "sluice:", err)
			return 1
		}
		defer f.Close()
		logOut = f
	}
	// Build once with a provisional logger to learn <system>, then build
	// the logger it asks for. Building has no side effects, so this is safe.
	eng, err := engine.Build(root, engine.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		for _, n := range notices {
			fmt.Fprintln(stderr, n)
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			fmt.Fprintln(stderr, line)
		}
		return 1
	}
	for _, n := range eng.Notices() {
		notices = append(notices, n.Pos.String()+": warning: "+n.Msg)
	}
	if checkOnly || o.dryRun {
		for _, n := range notices {
			fmt.Fprintln(stdout, n)
		}
		fmt.Fprintf(stdout, "%s: configuration OK\n", o.config)
		return 0
	}
	logger, err := newLogger(logOut, eng.System, o)
	if err != nil {
		fmt.Fprintln(stderr, "sluice:", err)
		return 1
	}
	for _, f := range o.ignored {
		logger.Warn("command-line flag accepted and ignored: Sluice is one Go process and loads no Ruby plugins", "flag", f)
	}
	if o.pidFile != "" {
		if err := os.WriteFile(o.pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
			fmt.Fprintln(stderr, "sluice: --daemon:", err)
			return 1
		}
		defer os.Remove(o.pidFile)
		logger.Info("process id written; Sluice runs in the foreground (it does not daemonize)", "pid_file", o.pidFile)
	}
	// Sluice's own log also goes into the pipeline, as Fluentd's does.
	flog := engine.NewFluentLog()
	logger = slog.New(flog.Handler(logger.Handler()))
	root, err = readConfig(o, parseOptions(logger))
	if err == nil {
		eng, err = engine.Build(root, engine.Options{Logger: logger, FluentLog: flog})
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, n := range eng.Notices() {
		logger.Warn(n.Msg, "pos", n.Pos.String())
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		bound := eng.MemoryBound()
		limit, from := memoryLimit(bound, cgroupMemoryLimit("/sys/fs/cgroup"))
		debug.SetMemoryLimit(limit)
		logger.Info("Go's memory limit set; set GOMEMLIMIT to choose", "limit_mib", limit>>20, "from", from,
			"configuration_bound_mib", bound>>20)
	}
	if procs, raised := ioHeadroom(os.Getenv("GOMAXPROCS"), runtime.GOMAXPROCS(0)); raised {
		runtime.GOMAXPROCS(procs)
		logger.Debug("GOMAXPROCS raised by one for threads blocked in file I/O; set GOMAXPROCS to choose", "gomaxprocs", procs)
	}
	sigCtx, stopSignals := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()
	// Every stop signal also comes here: the first starts the drain
	// (through sigCtx), a second ends the process at once.
	stopSigs := make(chan os.Signal, 2)
	signal.Notify(stopSigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(stopSigs)
	ctx, stop := context.WithCancel(sigCtx)
	defer stop()
	if addr := eng.System.RPCEndpoint; addr != "" {
		h := rpcHandler(rpcActions{
			flush:  eng.Flush,
			reload: func() error { return reload(eng, o, "rpc", logger) },
			stop:   stop,
		})
		// Served until the drain is over, like the metrics listener.
		rpcCtx, stopRPC := context.WithCancel(context.Background())
		defer stopRPC()
		if err := serveRPC(rpcCtx, addr, h, logger); err != nil {
			logger.Error("rpc_endpoint", "err", err)
			return 1
		}
	}
	// SIGUSR1 flushes every buffer now, as in Fluentd. SIGHUP and SIGUSR2
	// reload the configuration file: it is checked as `sluice check` does,
	// and a bad one leaves the running configuration in place.
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP, syscall.SIGUSR2)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-usr1:
				logger.Info("SIGUSR1: flushing every buffer")
				eng.Flush()
			case sig := <-hup:
				_ = reload(eng, o, sig.String(), logger)
			case <-ctx.Done():
				return
			}
		}
	}()
	ran := make(chan error, 1)
	go func() { ran <- eng.Run(ctx) }()
	for signals := 0; ; {
		select {
		case err := <-ran:
			if err != nil {
				logger.Error("start failed", "err", err)
				return 1
			}
			if eng.LostAtShutdown() > 0 {
				return ExitRecordsLost
			}
			return 0
		case sig := <-stopSigs:
			if signals++; signals == 1 {
				continue
			}
			chunks, bytes := eng.Pending()
			logger.Error("second stop signal: exiting without finishing the drain; file buffers keep their chunks, memory buffers lose theirs",
				"signal", sig.String(), "chunks", chunks, "bytes", bytes)
			return 128 + int(sig.(syscall.Signal))
		}
	}
}

// ExitRecordsLost is the exit status of a run whose shutdown deadline
// passed while memory buffers still held records: they are lost (logged
// with their count, and in sluice_output_dropped_records_total).
const ExitRecordsLost = 3

// reload applies the configuration file again (engine.Reload); by names
// the signal or "rpc".
func reload(eng *engine.Engine, o *options, by string, logger *slog.Logger) error {
	path := o.config
	logger.Info("reloading the configuration", "by", by, "config", path)
	root, err := readConfig(o, parseOptions(logger))
	if err == nil {
		err = eng.Reload(root)
	}
	if err != nil {
		logger.Error("reload rejected; the running configuration stays", "config", path,
			"errors", strings.Split(err.Error(), "\n"))
	}
	return err
}

func newLogger(w io.Writer, sys engine.System, o *options) (*slog.Logger, error) {
	level, err := engine.ParseLevel(sys.LogLevel)
	if err != nil {
		return nil, err
	}
	switch {
	case o.verbose >= 2:
		level = slog.LevelDebug - 4
	case o.verbose == 1:
		level = slog.LevelDebug
	case o.quiet >= 2:
		level = slog.LevelError
	case o.quiet == 1:
		level = slog.LevelWarn
	}
	format := sys.Log.Format
	if o.logFormat != "" {
		format = o.logFormat
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: clipAttr}
	// text and json are Fluentd's own formats, as <system><log> format
	// means in Fluentd; logfmt is slog's key=value, for tools that parse
	// that instead.
	switch format {
	case "logfmt":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "text", "", "fluentd", "json":
		h := newFluentdHandler(w, opts)
		h.json = format == "json"
		if sys.Log.TimeFormat != "" {
			h.timeFormat = sys.Log.TimeFormat
		}
		return slog.New(h), nil
	}
	return nil, fmt.Errorf("unknown log format %q (text, json or logfmt)", format)
}

// maxLoggedValue bounds a string in a log line. Tags, peers' names and
// record values come from clients: one of a megabyte would make a
// megabyte line, which log shippers truncate or refuse.
const maxLoggedValue = 1024

// clipAttr shortens a string attribute longer than maxLoggedValue to its
// start and its length.
func clipAttr(_ []string, a slog.Attr) slog.Attr {
	var v string
	switch a.Value.Kind() {
	case slog.KindString:
		v = a.Value.String()
	case slog.KindAny:
		err, ok := a.Value.Any().(error)
		if !ok {
			return a
		}
		v = err.Error()
	default:
		return a
	}
	if len(v) > maxLoggedValue {
		a.Value = slog.StringValue(fmt.Sprintf("%s… (%d bytes)", strings.ToValidUTF8(v[:maxLoggedValue], ""), len(v)))
	}
	return a
}

// plugins lists the plugin types (no arguments), or prints the parameter
// reference of the types named: `sluice plugins s3`, or `sluice plugins
// filter stdout` when a name has several kinds.
func plugins(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		for _, info := range plugin.All() {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", info.Kind, typeNames(info), info.Summary)
		}
		tw.Flush()
		fmt.Fprintln(stdout, "\n`sluice plugins TYPE` prints a type's parameters, with defaults and descriptions;\n`sluice plugins system` those of <system>.")
		return 0
	}
	kind, typ := plugin.Kind(""), args[0]
	if len(args) == 2 {
		kind, typ = plugin.Kind(args[0]), args[1]
	} else if len(args) > 2 {
		fmt.Fprintln(stderr, "usage: sluice plugins [[KIND] TYPE]")
		return 2
	}
	if typ == "system" && kind == "" {
		WriteSystemReference(stdout, false)
		return 0
	}
	found := 0
	for _, info := range plugin.All() {
		if (kind == "" || info.Kind == kind) && (info.Type == typ || slices.Contains(info.Aliases, typ)) {
			if found > 0 {
				fmt.Fprintln(stdout)
			}
			WriteReference(stdout, info, false)
			found++
		}
	}
	if found == 0 {
		fmt.Fprintf(stderr, "sluice: no plugin type %q; `sluice plugins` lists them\n", typ)
		return 1
	}
	return 0
}

func typeNames(info plugin.Info) string {
	if len(info.Aliases) == 0 {
		return info.Type
	}
	return info.Type + " (" + strings.Join(info.Aliases, ", ") + ")"
}

// WriteReference prints one plugin type's parameter reference: for a
// terminal, or as the Markdown page docs/plugins/ holds.
func WriteReference(w io.Writer, info plugin.Info, markdown bool) {
	title := string(info.Kind) + " " + typeNames(info)
	summary := upperFirst(info.Summary) + "."
	if markdown {
		title = fmt.Sprintf("%s `%s`", info.Kind, info.Type)
		if len(info.Aliases) > 0 {
			summary += fmt.Sprintf(" Also accepted as @type %s.", strings.Join(info.Aliases, ", "))
		}
	}
	writeParams(w, title, summary, string(info.Kind)+" "+info.Type, engine.Reference(info), markdown)
}

// WriteSystemReference prints <system>'s parameter reference.
func WriteSystemReference(w io.Writer, markdown bool) {
	writeParams(w, "<system>", "The instance's own settings: where buffers live, how it logs, how long it drains.",
		"system", engine.SystemReference(), markdown)
}

func writeParams(w io.Writer, title, summary, args string, params []plugin.Param, markdown bool) {
	if markdown {
		fmt.Fprintf(w, "# %s\n\n%s\n\n", title, summary)
		fmt.Fprintf(w, "Generated from the code by `go test ./internal/cli -run TestPluginDocs -update`; `sluice plugins %s` prints the same.\n\n", args)
		if len(params) == 0 {
			fmt.Fprintln(w, "No parameters.")
			return
		}
		fmt.Fprintln(w, "| Parameter | Type | Default | Description |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, p := range params {
			def := p.Default
			if def != "" {
				def = "`" + def + "`"
			}
			fmt.Fprintf(w, "| `%s` | %s | %s | %s |\n", mdEscape(p.Name), mdEscape(p.Type), mdEscape(def), mdEscape(p.Desc))
		}
		return
	}
	fmt.Fprintf(w, "%s: %s\n", title, summary)
	if len(params) == 0 {
		fmt.Fprintln(w, "  (no parameters)")
		return
	}
	for _, p := range params {
		line := "  " + p.Name
		if p.Type != "section" {
			line += "  " + p.Type
			if p.Default != "" {
				line += "  default " + p.Default
			}
		}
		fmt.Fprintln(w, line)
		if p.Desc != "" {
			fmt.Fprintln(w, "      "+p.Desc)
		}
	}
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func mdEscape(s string) string { return strings.NewReplacer("|", "\\|", "\n", " ").Replace(s) }

// probe is a health check for images with no shell or curl.
func probe(args []string, stdout, stderr io.Writer) int {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: sluice probe URL")
		return 2
	}
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(args[0])
	if err != nil {
		fmt.Fprintln(stderr, "probe:", err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	fmt.Fprintf(stdout, "%d %s\n", resp.StatusCode, strings.TrimSpace(string(body)))
	if resp.StatusCode != http.StatusOK {
		return 1
	}
	return 0
}

func topCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("url", "http://127.0.0.1:24231/metrics", "the instance's prometheus source")
	interval := fs.Duration("interval", time.Second, "refresh interval")
	frames := fs.Int("n", 0, "draw this many frames, without clearing the screen, then exit (0: until Ctrl-C)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := top.Run(ctx, stdout, *url, *interval, *frames); err != nil {
		fmt.Fprintln(stderr, "sluice top:", err)
		return 1
	}
	return 0
}

// parseOptions logs what the parser accepts with a warning.
func parseOptions(logger *slog.Logger) *config.Options {
	return &config.Options{Warn: func(pos config.Pos, msg string) { logger.Warn(msg, "pos", pos.String()) }}
}
