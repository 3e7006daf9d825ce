//go:build integration

package integration

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/tier"
)

// TestTierTracers is the CI-sized tracer test (`sluice-tier` runs the full
// size; docs/deploy.md): three instances with file buffers behind Debian's
// HAProxy, acked fluent-logger-golang clients sending throughout a rolling
// deploy, a scale-out to five and a SIGKILL. No acknowledged event may be
// lost; none may be duplicated by the deploy; the new instances must carry
// connections and bytes once a few max_connection_age periods have passed.
func TestTierTracers(t *testing.T) {
	haproxy := haproxyBinary(t)
	var progress strings.Builder
	cfg := tier.Config{
		Sluice: sluiceBinary(t), HAProxy: haproxy, Dir: t.TempDir(),
		Instances: 3, MaxConnectionAge: 2 * time.Second,
		Clients: 10, BytesPerSec: 1 << 20, RecordSize: 500,
		TracerClients: 4, TracerRate: 40,
		Log: &progress,
	}
	plan := tier.Plan{Warmup: 2 * time.Second, Deploys: 1, Pause: time.Second,
		ScaleTo: 5, Window: 2 * time.Second, Windows: 3, Kill: true}
	rep, err := tier.Run(cfg, plan)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	var out strings.Builder
	rep.Write(&out)
	t.Logf("\n%s\n%s", progress.String(), out.String())

	if all := rep.Total(); all.Lost > 0 {
		t.Errorf("%d acknowledged events lost", all.Lost)
	}
	if d := rep.Total("steady", "deploy", "scale-out", "end"); d.Duplicated > 0 {
		t.Errorf("%d events duplicated outside the SIGKILL phase", d.Duplicated)
	}
	if deploy := rep.Total("deploy"); deploy.Sent < 100 {
		t.Errorf("only %d events acknowledged during the deploy: too little traffic to judge it", deploy.Sent)
	}
	if rep.Failed > 0 {
		t.Errorf("clients gave up on %d posts", rep.Failed)
	}
	last := rep.SharesAfter[len(rep.SharesAfter)-1]
	for _, s := range last {
		if s.Instance > cfg.Instances && (s.Connections == 0 || s.Bytes == 0) {
			t.Errorf("new instance %d carries %d connections and %.0f bytes three max_connection_age periods after the scale-out",
				s.Instance, s.Connections, s.Bytes)
		}
	}
}

// TestTierSeed000Deploy is seed 000's deploy with the seed's own setup:
// three instances with the seed's memory buffers and kinesis_firehose
// behind HAProxy, acked clients at 1,500 events/s, the Firehose stand-in
// (firehosefake, the PutRecordBatch wire API) refusing 30% of records and
// throttling 5% of calls throughout, and a rolling restart of every
// instance. The goal the seed sets against Fluentd's 2.67 lost and 11.7
// duplicated per deploy: none lost and none duplicated.
func TestTierSeed000Deploy(t *testing.T) {
	haproxy := haproxyBinary(t)
	var progress strings.Builder
	cfg := tier.Config{
		Sluice: sluiceBinary(t), HAProxy: haproxy, Dir: t.TempDir(),
		Instances: 3, MaxConnectionAge: 2 * time.Second,
		TracerClients: 8, TracerRate: 1500,
		Firehose: &tier.FirehoseFaults{FailRecords: 0.3, ThrottleCalls: 0.05},
		Log:      &progress,
	}
	plan := tier.Plan{Warmup: 2 * time.Second, Deploys: 1, Pause: time.Second}
	rep, err := tier.Run(cfg, plan)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	var out strings.Builder
	rep.Write(&out)
	t.Logf("\n%s\n%s", progress.String(), out.String())
	all := rep.Total()
	if all.Lost > 0 || all.Duplicated > 0 {
		t.Errorf("%d acknowledged events lost and %d duplicated across the deploy, want none of either", all.Lost, all.Duplicated)
	}
	if deploy := rep.Total("deploy"); deploy.Sent < 3000 {
		t.Errorf("only %d events acknowledged during the deploy: too little traffic to judge it", deploy.Sent)
	}
	if rep.Failed > 0 {
		t.Errorf("clients gave up on %d posts", rep.Failed)
	}
}

// haproxyBinary is Debian's HAProxy, which scripts/test installs.
func haproxyBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"haproxy", "/usr/sbin/haproxy"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Fatal("haproxy is not installed (scripts/test installs Debian's package)")
	return ""
}
