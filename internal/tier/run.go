package tier

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/sluice-log/sluice/internal/top"
)

// Plan is what happens to the tier while the traffic flows.
type Plan struct {
	Warmup time.Duration // steady traffic before anything happens
	// Deploys times, every instance is replaced in turn (SIGTERM, drain,
	// start the next config version), with Pause after each.
	Deploys int
	Pause   time.Duration
	// ScaleTo starts instances up to this count (0: no scale-out), then
	// measures each instance's share of connections and bytes over
	// Windows windows of Window each.
	ScaleTo int
	Window  time.Duration
	Windows int
	// Kill sends SIGKILL to the first instance and starts it again on its
	// buffer after Pause.
	Kill bool
}

// PhaseCount is the tracer outcome of one phase.
type PhaseCount struct {
	Phase                  string
	Sent, Lost, Duplicated int
}

// Share is one instance's part of the traffic over a window.
type Share struct {
	Instance    int
	Connections int     // forward connections open at the end of the window
	Bytes       float64 // event bytes its forward source took in the window
}

// Report is the outcome of a run.
type Report struct {
	Config Config
	Plan   Plan
	// Tracers and Background events, acknowledged, by the phase they
	// were sent in.
	Tracers, Background []PhaseCount
	// Failed counts posts the clients gave up on (never acknowledged).
	Failed int
	// SharesBefore is the window just before the scale-out; SharesAfter one
	// per window after it.
	SharesBefore []Share
	SharesAfter  [][]Share
}

// Run starts a tier, drives it through plan under traffic, stops it, and
// counts what arrived.
func Run(cfg Config, plan Plan) (*Report, error) {
	cfg.MaxInstances = max(cfg.MaxInstances, cfg.Instances, plan.ScaleTo)
	t, err := Start(cfg)
	if err != nil {
		return nil, err
	}
	defer func() { _ = t.Stop() }() // best effort: the run's own result is what is reported
	host, port := t.Addr()
	tr, err := startTraffic(cfg, host, port)
	if err != nil {
		return nil, err
	}
	rep := &Report{Config: cfg, Plan: plan}
	fail := func(err error) (*Report, error) {
		tr.halt()
		return nil, err
	}
	time.Sleep(plan.Warmup)

	if plan.Deploys > 0 {
		tr.setPhase("deploy")
	}
	for d := 1; d <= plan.Deploys; d++ {
		t.logf("rolling deploy %d of %d instances", d, len(t.Running()))
		for _, n := range t.Running() {
			if err := t.Redeploy(n); err != nil {
				return fail(err)
			}
			time.Sleep(plan.Pause)
		}
	}
	if plan.ScaleTo > 0 {
		tr.setPhase("scale-out")
		before := t.sample()
		time.Sleep(plan.Window)
		rep.SharesBefore = shares(before, t.sample())
		t.logf("scaling out from %d to %d instances", len(t.Running()), plan.ScaleTo)
		if err := t.ScaleTo(plan.ScaleTo); err != nil {
			return fail(err)
		}
		for i := 0; i < plan.Windows; i++ {
			before := t.sample()
			time.Sleep(plan.Window)
			rep.SharesAfter = append(rep.SharesAfter, shares(before, t.sample()))
		}
	}
	if plan.Kill {
		tr.setPhase("kill")
		if err := t.Kill(t.Running()[0], plan.Pause); err != nil {
			return fail(err)
		}
		time.Sleep(plan.Pause)
	}
	tr.setPhase("end")
	time.Sleep(plan.Pause)
	tr.halt()
	t.logf("traffic stopped; stopping the tier (each instance flushes)")
	if err := t.Stop(); err != nil {
		return nil, err
	}

	if rep.Tracers, err = countPhases(t, TracerTag, "tracer", tr.tracers); err != nil {
		return nil, err
	}
	if rep.Background, err = countPhases(t, BackgroundTag, "id", tr.bgAcked); err != nil {
		return nil, err
	}
	rep.Failed = tr.failed
	return rep, nil
}

// countPhases counts, by the phase each was sent in, how often every
// acknowledged id arrived at the tier's sink (as field of tag's events).
func countPhases(t *Tier, tag, field string, acked map[string]string) ([]PhaseCount, error) {
	seen, err := t.seen(tag, field)
	if err != nil {
		return nil, err
	}
	byPhase := map[string]*PhaseCount{}
	for id, phase := range acked {
		pc := byPhase[phase]
		if pc == nil {
			pc = &PhaseCount{Phase: phase}
			byPhase[phase] = pc
		}
		count(pc, seen[id])
	}
	var out []PhaseCount
	for _, phase := range phases {
		if pc := byPhase[phase]; pc != nil {
			out = append(out, *pc)
		}
	}
	return out, nil
}

// phases in the order a run goes through them.
var phases = []string{"steady", "deploy", "scale-out", "kill", "end"}

func count(pc *PhaseCount, times int) {
	pc.Sent++
	switch {
	case times == 0:
		pc.Lost++
	case times > 1:
		pc.Duplicated++
	}
}

// sample is, per running instance, its open forward connections and the
// event bytes its forward source has taken.
type sample map[int][2]float64

func (t *Tier) sample() sample {
	s := sample{}
	for _, in := range t.instances {
		if in.cmd == nil {
			continue
		}
		m, err := scrape(fmt.Sprintf("http://127.0.0.1:%d/metrics", in.httpPort))
		if err != nil {
			continue // counted as nothing, like an instance not yet up
		}
		s[in.n] = [2]float64{m.Values["sluice_input_connections"]["in_forward"], m.Values["sluice_input_bytes_total"]["in_forward"]}
	}
	return s
}

func shares(before, after sample) []Share {
	var out []Share
	for n, a := range after {
		b, ok := before[n]
		if !ok || a[1] < b[1] {
			b = [2]float64{} // started (or restarted) within the window
		}
		out = append(out, Share{Instance: n, Connections: int(a[0]), Bytes: a[1] - b[1]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Instance < out[j].Instance })
	return out
}

// scrape reads an instance's metrics with sluice top's parser.
func scrape(url string) (*top.Sample, error) {
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return top.Parse(resp.Body, time.Now())
}

// Total sums tracers and background events of the phases named (all
// phases when none is).
func (r *Report) Total(phases ...string) PhaseCount {
	var t PhaseCount
	for _, pc := range append(append([]PhaseCount(nil), r.Tracers...), r.Background...) {
		if len(phases) == 0 || slices.Contains(phases, pc.Phase) {
			t.Sent += pc.Sent
			t.Lost += pc.Lost
			t.Duplicated += pc.Duplicated
		}
	}
	return t
}

// Write prints the report for a person.
func (r *Report) Write(w io.Writer) {
	c := r.Config
	age := "off"
	if c.MaxConnectionAge > 0 {
		age = c.MaxConnectionAge.String()
	}
	fmt.Fprintf(w, "tier: %d instances (scale-out to %d) behind HAProxy leastconn, max_connection_age %s, %d rolling deploys\n",
		c.Instances, r.Plan.ScaleTo, age, r.Plan.Deploys)
	fmt.Fprintf(w, "traffic: %d background clients at %.1f MB/s in total (%d-byte records), %d tracer clients at %.0f tracers/s, all with RequestAck\n\n",
		c.Clients, float64(c.BytesPerSec)/1e6, c.RecordSize, c.TracerClients, c.TracerRate)
	fmt.Fprintf(w, "%-22s %10s %8s %12s\n", "events/phase", "acked", "lost", "duplicated")
	for _, kind := range []struct {
		name   string
		counts []PhaseCount
	}{{"tracers", r.Tracers}, {"background", r.Background}} {
		for _, p := range kind.counts {
			fmt.Fprintf(w, "%-22s %10d %8d %12d\n", kind.name+"/"+p.Phase, p.Sent, p.Lost, p.Duplicated)
		}
	}
	fmt.Fprintf(w, "posts given up by clients: %d\n", r.Failed)
	if r.SharesBefore != nil {
		fmt.Fprintf(w, "\nshare of connections and bytes per instance (window %v)\n", r.Plan.Window)
		writeShares(w, "before scale-out", r.SharesBefore)
		for i, s := range r.SharesAfter {
			writeShares(w, fmt.Sprintf("after, window %d", i+1), s)
		}
	}
}

func writeShares(w io.Writer, label string, ss []Share) {
	var conns, bytes float64
	for _, s := range ss {
		conns += float64(s.Connections)
		bytes += s.Bytes
	}
	fmt.Fprintf(w, "  %-18s", label)
	for _, s := range ss {
		fmt.Fprintf(w, "  #%d %3.0f%% conns %3.0f%% bytes", s.Instance, pct(float64(s.Connections), conns), pct(s.Bytes, bytes))
	}
	fmt.Fprintln(w)
}

func pct(a, total float64) float64 {
	if total == 0 {
		return 0
	}
	return 100 * a / total
}
