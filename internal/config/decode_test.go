package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

type rule struct {
	Key     string `conf:"key,required"`
	Pattern string `conf:"pattern"`
}

type sample struct {
	Port      int               `conf:"port"`
	Interval  time.Duration     `conf:"flush_interval"`
	Limit     Size              `conf:"chunk_limit_size"`
	Ratio     float64           `conf:"ratio"`
	On        bool              `conf:"on"`
	Mode      string            `conf:"mode" enum:"block,drop"`
	Keys      []string          `conf:"keys"`
	Labels    map[string]string `conf:"labels"`
	Legacy    string            `conf:"new_name" alias:"old_name"`
	Rules     []rule            `section:"regexp"`
	Buffer    *Element          `section:"buffer"`
	Untouched string            `conf:"untouched"`
}

func TestDecode(t *testing.T) {
	src := `<match **>
  port 24224
  flush_interval 0.1
  chunk_limit_size 25MB
  ratio 0.5
  on
  mode drop
  keys ["a", "b"]
  labels k1:v1, k2:v2
  old_name via-alias
  <regexp>
    key message
    pattern /cool/
  </regexp>
  <regexp>
    key host
  </regexp>
  <buffer tag,time>
    timekey 1h
  </buffer>
</match>
`
	root, err := Parse("d.conf", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := sample{Untouched: "default"}
	if err := Decode(root.Elements[0], &got); err != nil {
		t.Fatal(err)
	}
	want := sample{
		Port: 24224, Interval: 100 * time.Millisecond, Limit: 25 << 20, Ratio: 0.5, On: true, Mode: "drop",
		Keys: []string{"a", "b"}, Labels: map[string]string{"k1": "v1", "k2": "v2"}, Legacy: "via-alias",
		Rules:     []rule{{Key: "message", Pattern: "/cool/"}, {Key: "host"}},
		Buffer:    got.Buffer,
		Untouched: "default",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if got.Buffer == nil || got.Buffer.Arg != "tag,time" {
		t.Fatalf("buffer section not captured: %+v", got.Buffer)
	}
	// The buffer's own parameter was not decoded by anyone yet.
	errs := root.Unused()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `"timekey" in <buffer tag,time>`) {
		t.Errorf("Unused = %v", errs)
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"bad int", "port abc", `e.conf:2: port: invalid integer "abc"`},
		{"bad enum", "mode maybe", `e.conf:2: mode: "maybe" is not one of block, drop`},
		{"bad time", "flush_interval soon", `e.conf:2: flush_interval: invalid time "soon"`},
		{"bad size", "chunk_limit_size lots", `e.conf:2: chunk_limit_size: invalid size "lots"`},
		{"bad bool", "on maybe", `e.conf:2: on: invalid bool "maybe"`},
		{"missing required", "<regexp>\n pattern x\n</regexp>", `e.conf:2: <regexp>: required parameter "key" is missing`},
		{"bad json array", `keys ["a"`, `unterminated JSON value`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, err := Parse("e.conf", []byte("<match **>\n"+tc.src+"\n</match>\n"), nil)
			if err == nil {
				var s sample
				err = Decode(root.Elements[0], &s)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseScalars(t *testing.T) {
	durations := map[string]time.Duration{
		"1": time.Second, "0.1": 100 * time.Millisecond, "10s": 10 * time.Second, "5m": 5 * time.Minute,
		"1h": time.Hour, "1d": 24 * time.Hour, "0.01": 10 * time.Millisecond,
	}
	for in, want := range durations {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	sizes := map[string]int64{
		"1024": 1024, "8k": 8 << 10, "1m": 1 << 20, "25MB": 25 << 20, "2GB": 2 << 30, "1t": 1 << 40, "1.5m": 3 << 19,
	}
	for in, want := range sizes {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "-1", "1x", "m"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) succeeded", bad)
		}
	}
}

// TestIgnoredParameterIsNoticed: a parameter whose field says `ignored`
// decodes, and leaves a notice with its line and the reason.
func TestIgnoredParameterIsNoticed(t *testing.T) {
	root, err := Parse("t.conf", []byte("<source>\n  backlog 1024\n  port 1\n</source>\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Backlog int `conf:"backlog" ignored:"the kernel's backlog applies"`
		Port    int `conf:"port"`
	}
	if err := Decode(root.Elements[0], &v); err != nil {
		t.Fatal(err)
	}
	n := root.Notices()
	if v.Backlog != 1024 || len(n) != 1 || n[0].Pos.Line != 2 || n[0].Msg != "backlog is accepted and ignored: the kernel's backlog applies" {
		t.Errorf("backlog %d, notices %+v", v.Backlog, n)
	}
}
