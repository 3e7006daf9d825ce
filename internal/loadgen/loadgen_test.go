package loadgen

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func TestSendToSinkAllModes(t *testing.T) {
	s, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := int64(0)
	for _, mode := range []string{ModeMessage, ModeForward, ModePacked} {
		for _, ack := range []bool{false, true} {
			cfg := SendConfig{Addr: s.Addr(), Mode: mode, Conns: 2, Batch: 50, Events: 1000, Ack: ack, TracerEvery: 10, TracerRun: "t"}
			r, err := Send(context.Background(), cfg)
			if err != nil {
				t.Fatalf("%s ack=%v: %v", mode, ack, err)
			}
			if r.Events != 1000 || r.Tracers != 100 {
				t.Errorf("%s: sent %d events, %d tracers", mode, r.Events, r.Tracers)
			}
			want += 1000 + 2 // plus one barrier event per connection
		}
	}
	if got := s.Events.Load(); got != want {
		t.Errorf("sink counted %d events, want %d", got, want)
	}
}

func TestCountTracers(t *testing.T) {
	cfg := SendConfig{Conns: 2, Events: 40, TracerEvery: 10, TracerRun: "r"}
	ids := ExpectedTracers(cfg)
	if len(ids) != 4 {
		t.Fatalf("expected %v", ids)
	}
	dir := t.TempDir()
	lines := `{"tracer":"r-0-0"}
{"tracer":"r-0-10"}
{"tracer":"r-0-10"}
{"tracer":"r-1-0"}
{"log":"no tracer"}
`
	if err := os.WriteFile(filepath.Join(dir, "a.log"), []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := CountTracers(filepath.Join(dir, "*.log"), ids)
	if err != nil {
		t.Fatal(err)
	}
	if c != (TracerCount{Expected: 4, Seen: 3, Missing: 1, Duplicated: 1, Records: 5}) {
		t.Errorf("count %+v", c)
	}

	// The same records as the msgpack formatter writes them.
	var mp []byte
	for _, line := range strings.Split(strings.TrimSpace(lines), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if mp, err = msgp.AppendIntf(mp, rec); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "a.log"), mp, 0o644); err != nil {
		t.Fatal(err)
	}
	if c, err = CountTracers(filepath.Join(dir, "*.log"), ids); err != nil {
		t.Fatal(err)
	}
	if c != (TracerCount{Expected: 4, Seen: 3, Missing: 1, Duplicated: 1, Records: 5}) {
		t.Errorf("msgpack count %+v", c)
	}
}

func TestProcStats(t *testing.T) {
	pid := os.Getpid()
	if cpu, err := CPUSeconds(pid); err != nil || cpu < 0 {
		t.Errorf("CPUSeconds = %v, %v", cpu, err)
	}
	if rss, err := RSS(pid); err != nil || rss <= 0 {
		t.Errorf("RSS = %v, %v", rss, err)
	}
}
