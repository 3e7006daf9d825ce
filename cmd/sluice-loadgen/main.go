// Command sluice-loadgen drives a Forward-protocol server (Sluice, Fluentd,
// Fluent Bit) with Docker-driver-shaped events and reports the rate the
// receiver took them at, drain included.
//
//	sluice-loadgen send -addr 127.0.0.1:24224 -mode packed -conns 4 -batch 500 -events 10000000 [-pid PID]
//	sluice-loadgen sink -listen 127.0.0.1:24225      a decoding Go receiver to compare against
//	sluice-loadgen bulk-sink -listen 127.0.0.1:9200  an Elasticsearch _bulk receiver that counts documents
//	sluice-loadgen firehose-sink -listen 127.0.0.1:4573  a Firehose stand-in that counts records
//	sluice-loadgen api-sink -listen 127.0.0.1:8080  Loki, HEC, Datadog, CloudWatch Logs and out_http stand-ins that count events
//	sluice-loadgen count -glob 'out/*/*.log' -run R -conns 4 -events N -tracer-every K
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/sluice-log/sluice/internal/loadgen"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: sluice-loadgen send|sink|bulk-sink|firehose-sink|api-sink|count [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "send":
		err = send(os.Args[2:])
	case "sink":
		err = sink(os.Args[2:])
	case "bulk-sink":
		err = bulkSink(os.Args[2:])
	case "firehose-sink":
		err = firehoseSink(os.Args[2:])
	case "api-sink":
		err = apiSink(os.Args[2:])
	case "count":
		err = count(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sluice-loadgen:", err)
		os.Exit(1)
	}
}

func sendFlags(fs *flag.FlagSet) *loadgen.SendConfig {
	c := &loadgen.SendConfig{}
	fs.StringVar(&c.Addr, "addr", "127.0.0.1:24224", "server address")
	fs.StringVar(&c.Mode, "mode", "packed", "message, forward, packed or compressed")
	fs.IntVar(&c.Conns, "conns", 4, "connections")
	fs.IntVar(&c.Batch, "batch", 500, "events per message (forward, packed, compressed)")
	fs.Int64Var(&c.Events, "events", 1_000_000, "events in total")
	fs.BoolVar(&c.Ack, "ack", false, "request an ack for every message")
	fs.StringVar(&c.Tag, "tag", "bench.docker", "tag")
	fs.IntVar(&c.TracerEvery, "tracer-every", 0, "one event in this many carries a unique tracer id")
	fs.StringVar(&c.TracerRun, "run", strconv.FormatInt(time.Now().Unix(), 36), "run name, the tracer id prefix")
	return c
}

func send(args []string) error {
	fs := flag.NewFlagSet("send", flag.ExitOnError)
	cfg := sendFlags(fs)
	pid := fs.Int("pid", 0, "receiver process to report CPU and peak RSS for")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var cpu0 float64
	var sampler *loadgen.Sampler
	if *pid > 0 {
		cpu0, _ = loadgen.CPUSeconds(*pid)
		sampler = loadgen.StartSampler(*pid, 100*time.Millisecond)
	}
	r, err := loadgen.Send(ctx, *cfg)
	fmt.Printf("mode=%s conns=%d batch=%d ack=%v events=%d elapsed=%.2fs rate=%.0f events/s %.1f MB/s tracers=%d run=%s\n",
		cfg.Mode, cfg.Conns, cfg.Batch, cfg.Ack, r.Events, r.Elapsed.Seconds(), r.EventsPerSec(), r.MBPerSec(), r.Tracers, cfg.TracerRun)
	if sampler != nil {
		peak := sampler.Stop()
		cpu1, _ := loadgen.CPUSeconds(*pid)
		fmt.Printf("receiver pid=%d cpu=%.2fs (%.0f%% of one core) peak_rss=%.1f MiB\n",
			*pid, cpu1-cpu0, 100*(cpu1-cpu0)/r.Elapsed.Seconds(), float64(peak)/(1<<20))
	}
	return err
}

// serveSink runs a sink until SIGINT or SIGTERM, printing line() each
// second in which count() changed.
func serveSink(what, addr string, closer interface{ Close() error }, count func() int64, line func() string) error {
	defer func() { _ = closer.Close() }()
	fmt.Println(what, "on", addr)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := int64(0)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if n := count(); n != last {
				fmt.Println(line())
				last = n
			}
		}
	}
}

func listenFlag(name, def string, args []string) string {
	fs := flag.NewFlagSet(name, flag.ExitOnError)
	addr := fs.String("listen", def, "address to listen on")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	return *addr
}

func sink(args []string) error {
	s, err := loadgen.Listen(listenFlag("sink", "127.0.0.1:24225", args))
	if err != nil {
		return err
	}
	last := int64(0)
	return serveSink("decoding sink", s.Addr(), s, s.Events.Load, func() string {
		n := s.Events.Load()
		line := fmt.Sprintf("events=%d rate=%d/s", n, n-last)
		last = n
		return line
	})
}

func bulkSink(args []string) error {
	s, err := loadgen.ListenBulk(listenFlag("bulk-sink", "127.0.0.1:9200", args))
	if err != nil {
		return err
	}
	return serveSink("_bulk sink", s.Addr(), s, s.Docs.Load, func() string {
		span := s.Span().Seconds()
		return fmt.Sprintf("documents=%d bytes=%d span=%.2fs rate=%.0f/s", s.Docs.Load(), s.Bytes.Load(), span, float64(s.Docs.Load())/max(span, 0.001))
	})
}

func firehoseSink(args []string) error {
	s, err := loadgen.ListenFirehose(listenFlag("firehose-sink", "127.0.0.1:4573", args))
	if err != nil {
		return err
	}
	last := int64(0)
	return serveSink("Firehose stand-in", s.Addr(), s, s.Records.Load, func() string {
		n := s.Records.Load()
		line := fmt.Sprintf("records=%d calls=%d rate=%d/s", n, s.Calls.Load(), n-last)
		last = n
		return line
	})
}

func apiSink(args []string) error {
	s, err := loadgen.ListenAPI(listenFlag("api-sink", "127.0.0.1:8080", args))
	if err != nil {
		return err
	}
	last := int64(0)
	return serveSink("HTTP API stand-in", s.Addr(), s, s.Events.Load, func() string {
		n := s.Events.Load()
		line := fmt.Sprintf("records=%d requests=%d bytes=%d rate=%d/s", n, s.Requests.Load(), s.Bytes.Load(), n-last)
		last = n
		return line
	})
}

func count(args []string) error {
	fs := flag.NewFlagSet("count", flag.ExitOnError)
	cfg := sendFlags(fs)
	glob := fs.String("glob", "", "files written by the sink: JSON lines or msgpack records")
	_ = fs.Parse(args) // ExitOnError: a bad flag exits
	c, err := loadgen.CountTracers(*glob, loadgen.ExpectedTracers(*cfg))
	if err != nil {
		return err
	}
	fmt.Printf("records=%d tracers expected=%d seen=%d missing=%d duplicated=%d\n", c.Records, c.Expected, c.Seen, c.Missing, c.Duplicated)
	if c.Missing > 0 || c.Duplicated > 0 {
		os.Exit(3)
	}
	return nil
}
