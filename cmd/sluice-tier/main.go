// Command sluice-tier runs the tracer test: a tier of Sluice instances
// with file buffers (or, with -firehose, seed 000's memory buffers and
// kinesis_firehose to a faulty stand-in) behind HAProxy (TCP mode, least connections, health
// checks on /readyz) on loopback, fluent-logger-golang clients with
// RequestAck sending background traffic and tracers through it, and a
// rolling deploy, a scale-out and a SIGKILL while they send. It prints the
// tracers lost and duplicated per phase and each instance's share of the
// connections and bytes before and after the scale-out. docs/deploy.md
// shows a run.
//
//	sluice-tier -sluice ./sluice [-instances 3] [-scale-to 5] [-max-connection-age 10s] [-mbps 4] ...
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"github.com/sluice-log/sluice/internal/tier"
)

func main() {
	var cfg tier.Config
	var plan tier.Plan
	var mbps float64
	var keep bool
	flag.StringVar(&cfg.Sluice, "sluice", "sluice", "the sluice binary")
	flag.StringVar(&cfg.HAProxy, "haproxy", "haproxy", "the haproxy binary")
	flag.StringVar(&cfg.Dir, "dir", "", "working directory (default: a new temporary one, removed after a run unless -keep)")
	flag.BoolVar(&keep, "keep", false, "keep the working directory (configs, logs, sink)")
	flag.IntVar(&cfg.Instances, "instances", 3, "instances at start")
	flag.IntVar(&plan.ScaleTo, "scale-to", 5, "instances after the scale-out (0: no scale-out)")
	flag.DurationVar(&cfg.MaxConnectionAge, "max-connection-age", 10*time.Second, "the forward source's max_connection_age (0: off)")
	flag.IntVar(&cfg.Clients, "clients", 20, "background clients")
	flag.Float64Var(&mbps, "mbps", 4, "background traffic, MB/s in total")
	flag.IntVar(&cfg.RecordSize, "record-size", 500, "bytes of log text per background record")
	flag.IntVar(&cfg.TracerClients, "tracer-clients", 4, "clients sending tracers")
	flag.Float64Var(&cfg.TracerRate, "tracer-rate", 20, "tracers per second, in total")
	flag.DurationVar(&plan.Warmup, "warmup", 5*time.Second, "steady traffic before the deploy")
	flag.IntVar(&plan.Deploys, "deploys", 1, "rolling deploys: each SIGTERMs, drains and restarts every instance in turn")
	flag.DurationVar(&plan.Pause, "pause", 3*time.Second, "pause after each deploy step and around the kill")
	flag.DurationVar(&plan.Window, "window", 10*time.Second, "window over which shares are measured")
	flag.IntVar(&plan.Windows, "windows", 3, "windows measured after the scale-out")
	flag.BoolVar(&plan.Kill, "kill", true, "SIGKILL one instance and restart it on its buffer")
	firehose := flag.Bool("firehose", false, "seed 000's output instead of the file sink: memory buffers and kinesis_firehose to a Firehose stand-in on loopback")
	var faults tier.FirehoseFaults
	flag.Float64Var(&faults.FailRecords, "firehose-fail-records", 0.3, "with -firehose: share of records the stand-in refuses")
	flag.Float64Var(&faults.ThrottleCalls, "firehose-throttle-calls", 0.05, "with -firehose: share of calls the stand-in throttles whole")
	quiet := flag.Bool("q", false, "no progress lines")
	flag.Parse()
	if *firehose {
		cfg.Firehose = &faults
	}
	cfg.BytesPerSec = int(mbps * 1e6)
	if !*quiet {
		// stdout: fluent-logger-golang writes its reconnect notices to
		// stderr, which can go to /dev/null.
		cfg.Log = os.Stdout
	}
	if p, err := exec.LookPath(cfg.Sluice); err == nil {
		cfg.Sluice = p
	}
	temporary := cfg.Dir == ""
	if temporary {
		dir, err := os.MkdirTemp("", "sluice-tier-")
		if err != nil {
			fail(err)
		}
		cfg.Dir = dir
	}
	rep, err := tier.Run(cfg, plan)
	if err != nil {
		fail(err)
	}
	rep.Write(os.Stdout)
	if keep {
		fmt.Println("\nworking directory:", cfg.Dir)
	}
	if temporary && !keep {
		os.RemoveAll(cfg.Dir)
	}
	if rep.Total().Lost > 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sluice-tier:", err)
	os.Exit(2)
}
