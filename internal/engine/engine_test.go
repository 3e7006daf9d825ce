package engine_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/config"
	"github.com/sluice-log/sluice/internal/engine"
	"github.com/sluice-log/sluice/internal/plugintest"
)

func tagsOf(name string) []string {
	var tags []string
	for _, e := range plugintest.Captured(name) {
		tags = append(tags, e.Tag)
	}
	sort.Strings(tags)
	return tags
}

func TestRoutingFiltersAndLabels(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<filter app.**>
  @type record_transformer
  <record>
    seen_by root_filter
  </record>
</filter>
<match app.access>
  @type capture
  name access
</match>
<filter app.**>
  @type record_transformer
  <record>
    late yes
  </record>
</filter>
<match app.** other.{a,b}>
  @type capture
  name app
</match>
<match relabel.**>
  @type relabel
  @label @side
</match>
<match copy.**>
  @type copy
  <store>
    @type capture
    name copy1
  </store>
  <store ignore_error>
    @type capture
    name copy2
  </store>
</match>
<label @side>
  <match **>
    @type capture
    name side
  </match>
</label>
`)
	stop := plugintest.Start(t, e)
	ctx := context.Background()
	for _, tag := range []string{"app.access", "app.error", "other.b", "relabel.x", "copy.y", "nowhere"} {
		plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, tag, map[string]any{"k": tag})))
	}
	stop()

	access := plugintest.Captured("access")
	if len(access) != 1 || access[0].Record["seen_by"] != "root_filter" || access[0].Record["late"] != nil {
		t.Errorf("access got %+v: want the first filter only", access)
	}
	app := plugintest.Captured("app")
	if got := tagsOf("app"); strings.Join(got, ",") != "app.error,other.b" {
		t.Errorf("app tags %v", got)
	}
	for _, ev := range app {
		if ev.Tag == "app.error" && (ev.Record["seen_by"] != "root_filter" || ev.Record["late"] != "yes") {
			t.Errorf("app.error should pass both filters: %+v", ev.Record)
		}
	}
	if got := tagsOf("side"); strings.Join(got, ",") != "relabel.x" {
		t.Errorf("relabel went to %v", got)
	}
	if len(plugintest.Captured("copy1")) != 1 || len(plugintest.Captured("copy2")) != 1 {
		t.Errorf("copy stores got %d and %d", len(plugintest.Captured("copy1")), len(plugintest.Captured("copy2")))
	}
	if e.Unmatched.Load() != 1 {
		t.Errorf("unmatched = %d, want 1 (tag nowhere)", e.Unmatched.Load())
	}
}

func TestSourceLabelAndErrorLabel(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<source>
  @type counter
  @label @in
  tag frontend-apache
  count 3
</source>
<match **>
  @type capture
  name root
</match>
<label @in>
  <filter backend*>
    @type fail
  </filter>
  <match frontend*>
    @type capture
    name frontend
  </match>
  <match backend*>
    @type capture
    name backend
  </match>
</label>
<label @ERROR>
  <match **>
    @type capture
    name errors
  </match>
</label>
`)
	stop := plugintest.Start(t, e)
	plugintest.WaitFor(t, "frontend events", func() bool { return len(plugintest.Captured("frontend")) == 3 })
	in, err := e.Label("@in")
	plugintest.Must(t, err)
	plugintest.Must(t, in.Emit(context.Background(), plugintest.Stream(t, "backend-api", map[string]any{"x": 1})))
	stop()
	if n := len(plugintest.Captured("root")); n != 0 {
		t.Errorf("root match got %d events from a labelled source", n)
	}
	if n := len(plugintest.Captured("backend")); n != 0 {
		t.Errorf("backend got %d events past a failing filter", n)
	}
	if errs := plugintest.Captured("errors"); len(errs) != 1 || errs[0].Tag != "backend-api" {
		t.Errorf("@ERROR got %+v", errs)
	}
}

// TestShutdownOrder checks the documented order: inputs stop first, then
// buffered outputs drain what they hold.
func TestShutdownOrder(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<source>
  @type counter
  tag t
  count 100
</source>
<match t>
  @type capture
  name drained
  fail 2
  <buffer>
    flush_interval 1h
    retry_wait 0.01
    retry_randomize false
  </buffer>
</match>
`)
	stop := plugintest.Start(t, e)
	plugintest.WaitFor(t, "the input to emit", func() bool { return e.Unmatched.Load() == 0 })
	stop()
	if n := len(plugintest.Captured("drained")); n != 100 {
		t.Fatalf("drained %d of 100 events at shutdown (after two failed writes)", n)
	}
	j := plugintest.Journal()
	if len(j) < 2 || j[0] != "stop:t" {
		t.Errorf("journal %v: the input must stop before the output writes", j)
	}
}

func TestBuildErrors(t *testing.T) {
	cases := []struct{ name, conf, want string }{
		{"unknown type", "<match **>\n  @type nosuch\n</match>", `test.conf:1: unknown plugin type "nosuch" (output)`},
		{"unknown parameter", "<match **>\n  @type null\n  colour red\n</match>", `test.conf:3: unknown parameter "colour" in <match **>`},
		{"unknown buffer parameter", "<match **>\n  @type file\n  path /tmp/x\n  <buffer>\n    flush_intervl 1s\n  </buffer>\n</match>", `test.conf:5: unknown parameter "flush_intervl" in <buffer>`},
		{"missing type", "<source>\n  tag x\n</source>", `test.conf:1: <source > has no @type`},
		{"duplicate id", "<match a>\n  @type null\n  @id x\n</match>\n<match b>\n  @type null\n  @id x\n</match>", `test.conf:7: @id "x" is already used at test.conf:3`},
		{"missing label", "<source>\n  @type sample\n  tag x\n  @label @nope\n</source>", `test.conf:4: @label @nope: no such <label>`},
		{"bad pattern", "<match {a,b>\n  @type null\n</match>", `unclosed '{'`},
		{"worker id past workers", "<worker 1>\n</worker>", `test.conf:1: <worker 1>: worker id 1 is not allowed: <system> workers is 1`},
		{"worker range past workers", "<system>\n  workers 2\n</system>\n<worker 0-2>\n</worker>", `test.conf:4: <worker 0-2>: worker id 0-2 is not allowed`},
		{"two sources on one port", "<source>\n  @type forward\n  port 24299\n</source>\n<source>\n  @type http\n  port 24299\n  bind 127.0.0.1\n</source>", `test.conf:5: port 24299 is already taken by the source at test.conf:1`},
		{"missing certificate", "<source>\n  @type forward\n  <transport tls>\n    cert_path /nonexistent/server.crt\n    private_key_path /nonexistent/server.key\n  </transport>\n</source>", `<transport tls> cert_path: stat /nonexistent/server.crt`},
		{"worker with a parameter", "<worker 0>\n  tag x\n</worker>", `test.conf:2: <worker 0> takes sections only`},
		{"enable_ruby with Ruby", "<filter **>\n  @type record_transformer\n  enable_ruby true\n  <record>\n    up ${record['msg'].upcase}\n  </record>\n</filter>\n<match **>\n  @type null\n</match>", `test.conf:5: up: ${record['msg'].upcase}`},
		{"placeholder without chunk key", "<match **>\n  @type file\n  path /tmp/${tag}/x\n  <buffer time>\n    timekey 1h\n  </buffer>\n</match>", `needs tag in the chunk keys`},
		{"time key without timekey", "<match **>\n  @type null\n  <buffer time>\n  </buffer>\n</match>", `timekey is not set`},
		{"buffer on unbuffered output", "<match **>\n  @type relabel\n  @label @x\n  <buffer>\n  </buffer>\n</match>\n<label @x>\n</label>", `does not use a <buffer>`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := plugintest.BuildErr(tc.conf)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// TestCompatConfigs: both seed configurations build as written.
func TestCompatConfigs(t *testing.T) {
	for _, file := range []string{"k8s-s3.conf", "fargate-firehose.conf"} {
		t.Run(file, func(t *testing.T) {
			root, err := config.ParseFile(filepath.Join("testdata", file), nil)
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if _, err = engine.Build(root, engine.Options{Logger: plugintest.Quiet}); err != nil {
				t.Fatalf("does not build: %v", err)
			}
		})
	}
}

func TestCompatFixturesMatchShared(t *testing.T) {
	for _, f := range []string{"k8s-s3.conf", "fargate-firehose.conf"} {
		shared, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "compat", f))
		if err != nil {
			t.Skipf("shared/ not beside the checkout: %v", err)
		}
		ours, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		if string(shared) != string(ours) {
			t.Errorf("testdata/%s differs from shared/compat/%s: copy it again", f, f)
		}
	}
}

// TestWorkerBodiesRunOnce: the sources and matches inside <worker 0> and
// <worker 0-1> run, once each, as if written at the top level.
func TestWorkerBodiesRunOnce(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<system>
  workers 2
</system>
<worker 0>
  <source>
    @type counter
    tag w0
    count 3
  </source>
</worker>
<worker 0-1>
  <match w0>
    @type capture
    name workers
  </match>
</worker>
`)
	plugintest.Start(t, e)
	plugintest.WaitFor(t, "the worker's events", func() bool { return len(plugintest.Captured("workers")) >= 3 })
	time.Sleep(50 * time.Millisecond)
	if n := len(plugintest.Captured("workers")); n != 3 {
		t.Errorf("captured %d events, want the source's 3 once", n)
	}
}

// TestLabelsAndPatternsAsFluentd: a label name need not start with '@';
// relabel to @ROOT goes back to the top level; a <match> without a
// pattern takes every tag.
func TestLabelsAndPatternsAsFluentd(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<source>
  @type counter
  tag a
  count 2
  @label plain
</source>
<label plain>
  <match a>
    @type relabel
    @label @ROOT
  </match>
</label>
<match>
  @type capture
  name rootback
</match>
`)
	plugintest.Start(t, e)
	plugintest.WaitFor(t, "events back at the top level", func() bool { return len(plugintest.Captured("rootback")) == 2 })
	if _, err := plugintest.BuildErr("<label @ROOT>\n</label>"); err == nil || !strings.Contains(err.Error(), "test.conf:1: <label @ROOT> cannot be defined") {
		t.Errorf("<label @ROOT>: %v", err)
	}
}

// TestEveryProblemAtOnce: one build reports every problem of a section,
// its <buffer> and its neighbours, one line each, in file order, with a
// suggestion for a misspelt name, and no line for a copy whose store
// already reported its own.
func TestEveryProblemAtOnce(t *testing.T) {
	_, err := plugintest.BuildErr(`<match a.**>
  @type file
  pth /tmp/x
  <buffer>
    flush_intervl 1s
    chunk_limit_size 1x
    retry_max_times many
  </buffer>
</match>
<match b.**>
  @type copy
  <store>
    @type nosuch
  </store>
  <store>
    @type null
    never_flsh true
  </store>
</match>
`)
	if err == nil {
		t.Fatal("the configuration built")
	}
	want := []string{
		`test.conf:1: <match a.**>: required parameter "path" is missing`,
		`test.conf:3: unknown parameter "pth" in <match a.**> (did you mean "path"?)`,
		`test.conf:5: unknown parameter "flush_intervl" in <buffer> (did you mean "flush_interval"?)`,
		`test.conf:6: chunk_limit_size: invalid size "1x"`,
		`test.conf:7: retry_max_times: invalid integer "many"`,
		`test.conf:12: unknown plugin type "nosuch" (output)`,
		`test.conf:17: unknown parameter "never_flsh" in <store> (did you mean "never_flush"?)`,
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q\nwant it to start %q", i+1, lines[i], w)
		}
	}
}

// TestFluentLogReceivesSluicesLog: with <label @FLUENT_LOG>, a warning
// Sluice logs arrives there as an event tagged fluent.warn, with its
// message and attributes; without such a label, <match fluent.**> at the
// top level takes it.
func TestFluentLogReceivesSluicesLog(t *testing.T) {
	for _, c := range []struct{ name, conf string }{
		{"label", "<label @FLUENT_LOG>\n  <match fluent.**>\n    @type capture\n    name flog\n  </match>\n</label>\n"},
		{"match", "<match fluent.**>\n  @type capture\n  name flog\n</match>\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			plugintest.Reset()
			root, err := config.Parse("test.conf", []byte(c.conf), nil)
			plugintest.Must(t, err)
			flog := engine.NewFluentLog()
			logger := slog.New(flog.Handler(slog.NewTextHandler(io.Discard, nil)))
			e, err := engine.Build(root, engine.Options{Logger: logger, FluentLog: flog})
			plugintest.Must(t, err)
			plugintest.Start(t, e)
			logger.With("plugin_id", "out_s3").Warn("retrying the chunk", "retry_times", 3)
			plugintest.WaitFor(t, "the warning as an event", func() bool {
				for _, ev := range plugintest.Captured("flog") {
					if ev.Tag == "fluent.warn" && ev.Record["message"] == "retrying the chunk" &&
						ev.Record["plugin_id"] == "out_s3" && ev.Record["retry_times"] == "3" {
						return true
					}
				}
				return false
			})
		})
	}
}

// TestCatchAllDoesNotTakeOwnLog: a <match **> alone does not receive
// Sluice's own log (only a match that names fluent.* tags, or the label).
func TestCatchAllDoesNotTakeOwnLog(t *testing.T) {
	plugintest.Reset()
	root, err := config.Parse("test.conf", []byte("<match **>\n  @type capture\n  name all\n</match>\n"), nil)
	plugintest.Must(t, err)
	flog := engine.NewFluentLog()
	logger := slog.New(flog.Handler(slog.NewTextHandler(io.Discard, nil)))
	e, err := engine.Build(root, engine.Options{Logger: logger, FluentLog: flog})
	plugintest.Must(t, err)
	stop := plugintest.Start(t, e)
	logger.Warn("not for the archive")
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "app", map[string]any{"a": 1})))
	time.Sleep(200 * time.Millisecond) // the log's delivery is asynchronous: give it the time it would take
	stop()
	for _, ev := range plugintest.Captured("all") {
		if strings.HasPrefix(ev.Tag, "fluent.") {
			t.Errorf("the catch-all took an own log event: %+v", ev)
		}
	}
}
