// Package tier runs a tier of Sluice instances behind HAProxy in TCP mode
// on loopback, the way an aggregator service runs behind a Network Load
// Balancer, and measures what a deploy does to the logs that flow through
// it: tracer events sent with acknowledgements by fluent-logger-golang (the
// library inside Docker's fluentd log driver) are counted at the sink,
// lost and duplicated, across a rolling deploy, a scale-out and a SIGKILL.
//
// Each instance has its own file buffer and writes JSON lines to its own
// directory under the shared sink. HAProxy balances new connections by
// least connections and health-checks every instance on /readyz, as an NLB
// target group would. Both are real processes; nothing is simulated.
package tier

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/sluice-log/sluice/internal/firehosefake"
	"github.com/sluice-log/sluice/internal/loadgen"
)

// Config describes the tier and its traffic.
type Config struct {
	Sluice  string // the sluice binary
	HAProxy string // the haproxy binary
	Dir     string // working directory: configs, buffers, sink, logs

	Instances    int // at start
	MaxInstances int // HAProxy has this many server slots; scale-out fills them
	// MaxConnectionAge is the forward source's max_connection_age (0: off).
	MaxConnectionAge time.Duration

	Clients     int     // background clients
	BytesPerSec int     // background traffic, all clients together
	RecordSize  int     // bytes of log text per background record
	TracerRate  float64 // tracer events per second, all tracer clients together
	// TracerClients send the tracers, each on its own connection.
	TracerClients int

	// Firehose, when set, gives every instance seed 000's output instead
	// of the file sink: a memory buffer with the seed's settings and
	// kinesis_firehose to a stand-in on loopback (firehosefake, which
	// speaks PutRecordBatch) that refuses and throttles as set.
	Firehose *FirehoseFaults

	Log io.Writer // progress; nil for none
}

// FirehoseFaults are the failures the Firehose stand-in injects for the
// whole run, drains included.
type FirehoseFaults struct {
	FailRecords   float64 // share of records refused (ServiceUnavailableException, InternalFailure)
	ThrottleCalls float64 // share of calls refused whole (ServiceUnavailableException)
}

// firehoseStream is the one delivery stream of a tier in Firehose mode.
const firehoseStream = "tier-delivery-stream"

// instance is one Sluice process and its ports.
type instance struct {
	n                 int // 1-based, the HAProxy server name s<n>
	fwdPort, httpPort int
	version           int
	cmd               *exec.Cmd
	exited            chan struct{}
	exitErr           error // cmd.Wait's, set before exited closes
}

// Tier is a running tier.
type Tier struct {
	cfg       Config
	lbPort    int
	instances []*instance // MaxInstances slots; started ones have cmd != nil
	haproxy   *exec.Cmd
	hapExited chan struct{}
	// firehose and its server are the stand-in when cfg.Firehose is set.
	firehose    *firehosefake.Server
	firehoseSrv *http.Server
	firehoseURL string
}

// freePort asks the kernel for a free loopback port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Start starts cfg.Instances instances and HAProxy in front of them, and
// returns once HAProxy sees every instance ready.
func Start(cfg Config) (*Tier, error) {
	if cfg.MaxInstances < cfg.Instances {
		cfg.MaxInstances = cfg.Instances
	}
	t := &Tier{cfg: cfg}
	var err error
	if t.lbPort, err = freePort(); err != nil {
		return nil, err
	}
	for i := 1; i <= cfg.MaxInstances; i++ {
		in := &instance{n: i}
		if in.fwdPort, err = freePort(); err != nil {
			return nil, err
		}
		if in.httpPort, err = freePort(); err != nil {
			return nil, err
		}
		t.instances = append(t.instances, in)
	}
	for _, d := range []string{"conf", "logs", "sink", "buffer"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	if cfg.Firehose != nil {
		if err := t.startFirehose(); err != nil {
			return nil, err
		}
	}
	for _, in := range t.instances[:cfg.Instances] {
		if err := t.startInstance(in); err != nil {
			_ = t.Stop() // the start error is the one to report
			return nil, err
		}
	}
	if err := t.startHAProxy(); err != nil {
		_ = t.Stop()
		return nil, err
	}
	return t, nil
}

// Addr is where clients connect: HAProxy's frontend.
func (t *Tier) Addr() (string, int) { return "127.0.0.1", t.lbPort }

// SinkGlob matches the JSON-lines files every instance wrote for tag.
func (t *Tier) SinkGlob(tag string) string {
	return filepath.Join(t.cfg.Dir, "sink", "*", tag, "*.log")
}

// startFirehose serves the Firehose stand-in on a loopback port.
func (t *Tier) startFirehose() error {
	t.firehose = firehosefake.New()
	t.firehose.CreateStream(firehoseStream)
	t.firehose.FailRecords(t.cfg.Firehose.FailRecords)
	t.firehose.ThrottleCalls(t.cfg.Firehose.ThrottleCalls)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	t.firehoseSrv = &http.Server{Handler: t.firehose, ReadHeaderTimeout: 10 * time.Second}
	t.firehoseURL = "http://" + ln.Addr().String()
	go func() { _ = t.firehoseSrv.Serve(ln) }() // returns when Stop closes it
	return nil
}

// seen counts how often each value of field arrived at the sink, in the
// records of tag (file sink) or in any record (Firehose, where one
// delivery stream takes every tag: tracers and background events carry
// different id fields).
func (t *Tier) seen(tag, field string) (map[string]int, error) {
	if t.firehose == nil {
		return loadgen.SeenIDs(t.SinkGlob(tag), field)
	}
	seen := map[string]int{}
	for _, rec := range t.firehose.Records(firehoseStream) {
		var v map[string]any
		if err := json.Unmarshal(rec, &v); err != nil {
			return nil, fmt.Errorf("firehose record %.80q: %w", rec, err)
		}
		if id, ok := v[field].(string); ok {
			seen[id]++
		}
	}
	return seen, nil
}

func (t *Tier) logf(format string, args ...any) {
	if t.cfg.Log != nil {
		fmt.Fprintf(t.cfg.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
}

var sluiceConf = template.Must(template.New("sluice").Parse(`# instance {{.N}}, config version {{.Version}}
<system>
  shutdown_timeout 20s
</system>
<source>
  @type forward
  @id in_forward
  bind 127.0.0.1
  port {{.FwdPort}}
{{- if .MaxAge}}
  max_connection_age {{.MaxAge}}
{{- end}}
</source>
<source>
  @type prometheus
  bind 127.0.0.1
  port {{.HTTPPort}}
</source>
{{- if .Firehose}}
# seed 000's output: memory buffer with the seed's settings.
<match **>
  @type kinesis_firehose
  @id out_sink
  region us-west-2
  delivery_stream_name {{.Firehose}}
  <buffer>
    flush_interval 1
    chunk_limit_size 1m
    flush_thread_interval 0.1
    flush_thread_burst_interval 0.01
    flush_thread_count 15
    total_limit_size 2GB
  </buffer>
</match>
{{- else}}
<match **>
  @type file
  @id out_sink
  path {{.Dir}}/sink/instance-{{.N}}/${tag}/events
  append true
  <format>
    @type json
  </format>
  <buffer tag,time>
    @type file
    path {{.Dir}}/buffer/instance-{{.N}}
    timekey 1d
    timekey_wait 0
    flush_mode interval
    flush_interval 1
    flush_at_shutdown true
  </buffer>
</match>
{{- end}}
`))

func (t *Tier) startInstance(in *instance) error {
	in.version++
	maxAge := ""
	if t.cfg.MaxConnectionAge > 0 {
		maxAge = fmt.Sprintf("%gs", t.cfg.MaxConnectionAge.Seconds())
	}
	var conf strings.Builder
	if err := sluiceConf.Execute(&conf, map[string]any{"N": in.n, "Version": in.version, "FwdPort": in.fwdPort,
		"HTTPPort": in.httpPort, "MaxAge": maxAge, "Dir": t.cfg.Dir, "Firehose": firehoseName(t.cfg)}); err != nil {
		return err
	}
	path := filepath.Join(t.cfg.Dir, "conf", fmt.Sprintf("instance-%d.conf", in.n))
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		return err
	}
	logFile, err := os.OpenFile(filepath.Join(t.cfg.Dir, "logs", fmt.Sprintf("instance-%d.log", in.n)),
		os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(t.cfg.Sluice, "-c", path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if t.firehose != nil {
		cmd.Env = append(os.Environ(), "AWS_ENDPOINT_URL_FIREHOSE="+t.firehoseURL,
			"AWS_ACCESS_KEY_ID=AKIDTIER", "AWS_SECRET_ACCESS_KEY=tier", "AWS_EC2_METADATA_DISABLED=true")
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	in.cmd, in.exited = cmd, make(chan struct{})
	go func(done chan struct{}) { in.exitErr = cmd.Wait(); close(done) }(in.exited)
	if err := waitReady(fmt.Sprintf("http://127.0.0.1:%d/readyz", in.httpPort), in.exited, 20*time.Second); err != nil {
		return fmt.Errorf("instance %d: %w (log: %s)", in.n, err, logFile.Name())
	}
	t.logf("instance %d ready (config version %d, pid %d)", in.n, in.version, cmd.Process.Pid)
	return nil
}

func firehoseName(cfg Config) string {
	if cfg.Firehose == nil {
		return ""
	}
	return firehoseStream
}

// waitReady polls url until it answers 200.
func waitReady(url string, exited <-chan struct{}, patience time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(patience)
	for {
		select {
		case <-exited:
			return errors.New("exited while starting")
		default:
		}
		if resp, err := client.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v", url, patience)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var haproxyConf = template.Must(template.New("haproxy").Parse(`# HAProxy in TCP mode standing in for a Network Load Balancer.
global
  maxconn 4096
defaults
  mode tcp
  timeout connect 2s
  timeout client 1h
  timeout server 1h
  retries 3
  option redispatch
frontend forward
  bind 127.0.0.1:{{.LBPort}}
  default_backend sluice
backend sluice
  balance leastconn
  # Like an NLB target group's health check on /readyz: an instance that
  # shuts down or whose buffer fills gets no new connections.
  option httpchk GET /readyz
  default-server inter 300ms fall 1 rise 2
{{- range .Instances}}
  server s{{.N}} 127.0.0.1:{{.FwdPort}} check port {{.HTTPPort}}
{{- end}}
`))

func (t *Tier) startHAProxy() error {
	var rows []map[string]int
	for _, in := range t.instances {
		rows = append(rows, map[string]int{"N": in.n, "FwdPort": in.fwdPort, "HTTPPort": in.httpPort})
	}
	var conf strings.Builder
	if err := haproxyConf.Execute(&conf, map[string]any{"LBPort": t.lbPort, "Instances": rows}); err != nil {
		return err
	}
	path := filepath.Join(t.cfg.Dir, "conf", "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf.String()), 0o644); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(t.cfg.Dir, "logs", "haproxy.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.Command(t.cfg.HAProxy, "-db", "-f", path)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	t.haproxy, t.hapExited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(t.hapExited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-t.hapExited:
			return fmt.Errorf("haproxy exited at start (log: %s)", logFile.Name())
		default:
		}
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", t.lbPort)); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return errors.New("haproxy did not listen")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// rise 2 at inter 300ms: the servers count as up after about 0.6 s.
	time.Sleep(time.Second)
	t.logf("haproxy on 127.0.0.1:%d in front of %d instances", t.lbPort, t.cfg.Instances)
	return nil
}

// Running returns the numbers of the instances that run.
func (t *Tier) Running() []int {
	var out []int
	for _, in := range t.instances {
		if in.cmd != nil {
			out = append(out, in.n)
		}
	}
	return out
}

// Redeploy stops instance n with SIGTERM, waits for it to drain and exit,
// and starts it again with the next config version, as ECS replaces a task.
func (t *Tier) Redeploy(n int) error {
	in := t.instances[n-1]
	start := time.Now()
	if err := t.stopInstance(in, syscall.SIGTERM, 40*time.Second); err != nil {
		return err
	}
	t.logf("instance %d drained and exited in %v", n, time.Since(start).Round(time.Millisecond))
	return t.startInstance(in)
}

// Kill stops instance n with SIGKILL, then starts it again on the same
// buffer after pause.
func (t *Tier) Kill(n int, pause time.Duration) error {
	in := t.instances[n-1]
	if err := t.stopInstance(in, syscall.SIGKILL, 10*time.Second); err != nil {
		return err
	}
	t.logf("instance %d killed", n)
	time.Sleep(pause)
	return t.startInstance(in)
}

// ScaleTo starts instances until n run.
func (t *Tier) ScaleTo(n int) error {
	if n > len(t.instances) {
		return fmt.Errorf("scale to %d: HAProxy has %d server slots", n, len(t.instances))
	}
	for _, in := range t.instances[:n] {
		if in.cmd == nil {
			if err := t.startInstance(in); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *Tier) stopInstance(in *instance, sig syscall.Signal, patience time.Duration) error {
	if in.cmd == nil {
		return nil
	}
	if err := in.cmd.Process.Signal(sig); err != nil {
		return err
	}
	select {
	case <-in.exited:
	case <-time.After(patience):
		_ = in.cmd.Process.Kill()
		<-in.exited
		return fmt.Errorf("instance %d did not exit within %v of %v", in.n, patience, sig)
	}
	in.cmd = nil
	if in.exitErr != nil && sig == syscall.SIGTERM {
		return fmt.Errorf("instance %d: %v after SIGTERM", in.n, in.exitErr)
	}
	return nil
}

// Stop stops every instance with SIGTERM (so they flush) and HAProxy.
func (t *Tier) Stop() error {
	var errs []error
	for _, in := range t.instances {
		if in.cmd != nil {
			errs = append(errs, t.stopInstance(in, syscall.SIGTERM, 40*time.Second))
		}
	}
	if t.haproxy != nil {
		_ = t.haproxy.Process.Signal(syscall.SIGTERM)
		select {
		case <-t.hapExited:
		case <-time.After(5 * time.Second):
			_ = t.haproxy.Process.Kill()
		}
		t.haproxy = nil
	}
	if t.firehoseSrv != nil {
		_ = t.firehoseSrv.Close() // after the instances: their drains need it
		t.firehoseSrv = nil
	}
	return errors.Join(errs...)
}
