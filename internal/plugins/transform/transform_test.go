package transform_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluice-log/sluice/internal/plugintest"
)

// The example of Fluentd's grep documentation.
func TestGrepDocumentationExample(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<filter foo.bar>
  @type grep
  <regexp>
    key message
    pattern /cool/
  </regexp>
  <regexp>
    key hostname
    pattern /^web\d+\.example\.com$/
  </regexp>
  <exclude>
    key message
    pattern /uncool/
  </exclude>
</filter>
<match **>
  @type capture
  name grep
</match>
`)
	plugintest.Start(t, e)
	s := plugintest.Stream(t, "foo.bar",
		map[string]any{"message": "It's cool outside today", "hostname": "web001.example.com"},
		map[string]any{"message": "I am cool but you are uncool", "hostname": "db001.example.com"},
		map[string]any{"message": "That's not cool", "hostname": "web1337.example.com"},
		map[string]any{"hostname": "web001.example.com"},
		map[string]any{"message": "It's cool outside today"},
	)
	plugintest.Must(t, e.Root().Emit(context.Background(), s))
	got := plugintest.Captured("grep")
	if len(got) != 2 || got[0].Record["hostname"] != "web001.example.com" || got[1].Record["hostname"] != "web1337.example.com" {
		t.Errorf("kept %+v", got)
	}
}

func TestGrepKeepsAllWithoutCopy(t *testing.T) {
	e := plugintest.Build(t, "<filter **>\n  @type grep\n  <regexp>\n    key k\n    pattern /v/i\n  </regexp>\n</filter>\n<match **>\n  @type capture\n  name all\n</match>\n")
	plugintest.Reset()
	plugintest.Start(t, e)
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "t", map[string]any{"k": "V"}, map[string]any{"k": "xv"})))
	if n := len(plugintest.Captured("all")); n != 2 {
		t.Errorf("kept %d of 2", n)
	}
}

func TestRecordTransformerPlaceholders(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<filter web.app.access>
  @type record_transformer
  auto_typecast true
  remove_keys drop_me
  <record>
    tag        ${tag}
    part       ${tag_parts[1]}
    last       ${tag_parts[-1]}
    prefix     ${tag_prefix[1]}
    suffix     ${tag_suffix[1]}
    host       ${hostname}
    msg        said: ${record["message"]} (${code})
    code_typed ${code}
    nested     ${record["kubernetes"]["pod"]}
    missing    ${nope}
    when       ${time}
  </record>
</filter>
<match **>
  @type capture
  name rt
</match>
`)
	plugintest.Start(t, e)
	s := plugintest.Stream(t, "web.app.access", map[string]any{
		"message": "hi", "code": 200, "drop_me": true, "kubernetes": map[string]any{"pod": "p-1"},
	})
	plugintest.Must(t, e.Root().Emit(context.Background(), s))
	got := plugintest.Captured("rt")
	if len(got) != 1 {
		t.Fatalf("got %d events", len(got))
	}
	r := got[0].Record
	want := map[string]any{
		"tag": "web.app.access", "part": "app", "last": "access", "prefix": "web.app", "suffix": "app.access",
		"host": "test-host", "msg": "said: hi (200)", "nested": "p-1", "missing": "${nope}", "message": "hi",
	}
	for k, v := range want {
		if r[k] != v {
			t.Errorf("%s = %#v, want %#v", k, r[k], v)
		}
	}
	if c, ok := r["code_typed"].(int64); !ok || c != 200 {
		t.Errorf("code_typed = %#v, want int 200 (auto_typecast)", r["code_typed"])
	}
	if _, ok := r["drop_me"]; ok {
		t.Error("remove_keys did not remove drop_me")
	}
	if r["when"] == "" || r["when"] == "${time}" {
		t.Errorf("time placeholder = %v", r["when"])
	}
}

func TestRecordTransformerRenewAndKeep(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, "<filter **>\n  @type record_transformer\n  renew_record true\n  keep_keys a\n  <record>\n    b new\n  </record>\n</filter>\n<match **>\n  @type capture\n  name renew\n</match>\n")
	plugintest.Start(t, e)
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "t", map[string]any{"a": 1, "b": 2, "c": 3})))
	r := plugintest.Captured("renew")[0].Record
	if len(r) != 2 || r["a"] != int64(1) || r["b"] != "new" {
		t.Errorf("record %v, want {a:1 b:new}", r)
	}
}

// TestRecordTransformerRenewTimeKey: renew_time_key sets the event time
// from the new record's field (a number or a numeric string, fractions
// kept); without the field, or with a non-number, the time stays.
func TestRecordTransformerRenewTimeKey(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, "<filter **>\n  @type record_transformer\n  renew_time_key ts\n  <record>\n    ts ${record[\"epoch\"]}\n  </record>\n</filter>\n<match **>\n  @type capture\n  name renewtime\n</match>\n")
	plugintest.Start(t, e)
	for _, epoch := range []any{1700000000.25, int64(1600000000), "1500000000", "not a time"} {
		plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "t", map[string]any{"epoch": epoch})))
	}
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "t", map[string]any{"other": 1})))
	got := plugintest.Captured("renewtime")
	if len(got) != 5 {
		t.Fatalf("%d events", len(got))
	}
	want := []time.Time{time.Unix(1700000000, 250000000), time.Unix(1600000000, 0), time.Unix(1500000000, 0)}
	for i, w := range want {
		if !got[i].Time.Std().Equal(w) {
			t.Errorf("event %d: time %v, want %v", i, got[i].Time, w)
		}
	}
	for _, ev := range got[3:] {
		if ev.Time.Unix() != 1362020400 { // plugintest.Stream's time
			t.Errorf("an event without a numeric ts got time %v; it should keep its own", ev.Time.Std())
		}
	}
}

func TestRecordTransformerAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are checked without -race (scripts/test runs them)")
	}
	e := plugintest.Build(t, "<filter **>\n  @type record_transformer\n  <record>\n    host ${hostname}\n    tag ${tag}\n  </record>\n</filter>\n<match **>\n  @type null\n</match>\n")
	s := plugintest.Stream(t, "a.b", map[string]any{"log": "line", "source": "stdout"})
	ctx := context.Background()
	root := e.Root()
	_ = root.Emit(ctx, s)
	if n := testing.AllocsPerRun(200, func() { _ = root.Emit(ctx, s) }); n > 0 {
		t.Errorf("a filtered emit allocates %v times", n)
	}
}

// The <and>/<or> examples of Fluentd's grep documentation.
func TestGrepAndOr(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<filter and.**>
  @type grep
  <and>
    <regexp>
      key price
      pattern /[1-9]\d*/
    </regexp>
    <regexp>
      key item_name
      pattern /^book_/
    </regexp>
  </and>
</filter>
<filter or.**>
  @type grep
  <or>
    <exclude>
      key status_code
      pattern /^5\d\d$/
    </exclude>
    <exclude>
      key url
      pattern /\.css$/
    </exclude>
  </or>
</filter>
<match **>
  @type capture
  name andor
</match>`)
	plugintest.Start(t, e)
	ctx := context.Background()
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "and.x",
		map[string]any{"price": "12", "item_name": "book_a"},
		map[string]any{"price": "12", "item_name": "pen"},
		map[string]any{"price": "0", "item_name": "book_b"},
	)))
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "or.x",
		map[string]any{"status_code": "200", "url": "/index.html"},
		map[string]any{"status_code": "503", "url": "/index.html"},
		map[string]any{"status_code": "200", "url": "/site.css"},
	)))
	got := plugintest.Captured("andor")
	if len(got) != 2 || got[0].Record["item_name"] != "book_a" || got[1].Record["url"] != "/index.html" || got[1].Record["status_code"] != "200" {
		t.Errorf("kept %+v", got)
	}
}

func TestParserFilter(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<filter plain.**>
  @type parser
  key_name log
  <parse>
    @type regexp
    expression /^(?<host>[^ ]*) (?<code>\d+)$/
    types code:integer
  </parse>
</filter>
<filter keep.**>
  @type parser
  key_name log
  reserve_data true
  remove_key_name_field true
  inject_key_prefix p_
  <parse>
    @type json
  </parse>
</filter>
<filter hash.**>
  @type parser
  key_name log
  hash_value_field parsed
  emit_invalid_record_to_error false
  <parse>
    @type json
  </parse>
</filter>
<match **>
  @type capture
  name parsed
</match>
<label @ERROR>
  <match **>
    @type capture
    name parse_errors
  </match>
</label>`)
	plugintest.Start(t, e)
	ctx := context.Background()
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "plain.x", map[string]any{"log": "web1 200", "other": 1}, map[string]any{"log": "garbage"})))
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "keep.x", map[string]any{"log": `{"a":"b","time":1362020400}`, "src": "k8s"})))
	plugintest.Must(t, e.Root().Emit(ctx, plugintest.Stream(t, "hash.x", map[string]any{"log": `{"a":"b"}`}, map[string]any{"log": "not json"})))
	got := plugintest.Captured("parsed")
	if len(got) != 3 {
		t.Fatalf("parsed %+v", got)
	}
	if got[0].Record["host"] != "web1" || got[0].Record["code"] != int64(200) || len(got[0].Record) != 2 {
		t.Errorf("plain: %+v", got[0].Record)
	}
	if got[1].Record["p_a"] != "b" || got[1].Record["src"] != "k8s" || got[1].Record["log"] != nil || got[1].Time != 1362020400e9 {
		t.Errorf("reserve_data: %+v at %v", got[1].Record, got[1].Time)
	}
	if m, ok := got[2].Record["parsed"].(map[string]any); !ok || m["a"] != "b" {
		t.Errorf("hash_value_field: %+v", got[2].Record)
	}
	errs := plugintest.Captured("parse_errors")
	if len(errs) != 1 || errs[0].Record["log"] != "garbage" {
		t.Errorf("@ERROR got %+v (the hash.x failure is dropped: emit_invalid_record_to_error false)", errs)
	}
}

// The example of fluent-plugin-rewrite-tag-filter's README, shortened.
func TestRewriteTagFilter(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<match apache.access>
  @type rewrite_tag_filter
  capitalize_regex_backreference true
  <rule>
    key     status
    pattern /^(5\d\d)$/
    tag     error.$1.${tag}
  </rule>
  <rule>
    key     agent
    pattern /Googlebot/
    tag     bot.__TAG_PARTS[0]__
  </rule>
  <rule>
    key     domain
    pattern /^example\.com$/
    tag     other.site
    invert  true
  </rule>
  <rule>
    key     path
    pattern /^\/(\w+)/
    tag     site.$1
  </rule>
</match>
<match **>
  @type capture
  name rewritten
</match>`)
	plugintest.Start(t, e)
	plugintest.Must(t, e.Root().Emit(context.Background(), plugintest.Stream(t, "apache.access",
		map[string]any{"status": "503", "domain": "example.com", "path": "/a"},
		map[string]any{"status": "200", "agent": "Googlebot/2.1", "domain": "example.com", "path": "/a"},
		map[string]any{"status": "200", "domain": "other.org", "path": "/a"},
		map[string]any{"status": "200", "domain": "example.com", "path": "/shop/cart"},
		map[string]any{"status": "200", "domain": "example.com", "path": "-"},
	)))
	var tags []string
	for _, ev := range plugintest.Captured("rewritten") {
		tags = append(tags, ev.Tag)
	}
	want := "error.503.apache.access bot.apache other.site site.Shop"
	if got := strings.Join(tags, " "); got != want {
		t.Errorf("tags %q, want %q", got, want)
	}
}

// TestV012FlatParameters: grep's regexpN and excludeN, and the parser
// filter's flat format /re/ (with v0.12's log_level), mean what their
// sections mean.
func TestV012FlatParameters(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<filter foo.bar>
  @type grep
  regexp1 message cool
  regexp2 hostname ^web\d+\.example\.com$
  exclude1 message uncool
</filter>
<filter foo.bar>
  @type parser
  key_name message
  reserve_data true
  format /^(?<mood>\w+) (?<rest>.*)$/
  log_level warn
</filter>
<match **>
  @type capture
  name flat
</match>
`)
	plugintest.Start(t, e)
	s := plugintest.Stream(t, "foo.bar",
		map[string]any{"message": "cool outside", "hostname": "web001.example.com"},
		map[string]any{"message": "cool but uncool", "hostname": "web002.example.com"},
		map[string]any{"message": "cool again", "hostname": "db001.example.com"},
	)
	plugintest.Must(t, e.Root().Emit(context.Background(), s))
	got := plugintest.Captured("flat")
	if len(got) != 1 || got[0].Record["mood"] != "cool" || got[0].Record["rest"] != "outside" || got[0].Record["hostname"] != "web001.example.com" {
		t.Errorf("kept and parsed %+v", got)
	}
}

// TestRewriteTagFilterLabels: @label sends the rewritten records to that
// label, and a <rule>'s label overrides it for that rule's records.
func TestRewriteTagFilterLabels(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<match app>
  @type rewrite_tag_filter
  @label @ROUTED
  <rule>
    key level
    pattern ^error$
    tag alert.${tag}
    label @ALERTS
  </rule>
  <rule>
    key level
    pattern .+
    tag routed.$0
  </rule>
</match>
<label @ROUTED>
  <match **>
    @type capture
    name routed
  </match>
</label>
<label @ALERTS>
  <match **>
    @type capture
    name alerts
  </match>
</label>
`)
	plugintest.Start(t, e)
	s := plugintest.Stream(t, "app", map[string]any{"level": "error"}, map[string]any{"level": "info"}, map[string]any{"level": "error"})
	plugintest.Must(t, e.Root().Emit(context.Background(), s))
	alerts, routed := plugintest.Captured("alerts"), plugintest.Captured("routed")
	if len(alerts) != 2 || alerts[0].Tag != "alert.app" || len(routed) != 1 || routed[0].Record["level"] != "info" {
		t.Errorf("alerts %+v\nrouted %+v", alerts, routed)
	}
}

// TestEnableRubyWithoutRuby: with enable_ruby, the Ruby forms that need no
// Ruby work.
func TestEnableRubyWithoutRuby(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<filter app.**>
  @type record_transformer
  enable_ruby true
  <record>
    pod ${record["kubernetes"]["pod_name"]}
    level ${record['level']}
    service ${tag_parts[1]}
    node ${hostname}
  </record>
</filter>
<match **>
  @type capture
  name ruby
</match>
`)
	plugintest.Start(t, e)
	s := plugintest.Stream(t, "app.web", map[string]any{"level": "warn", "kubernetes": map[string]any{"pod_name": "web-1"}})
	plugintest.Must(t, e.Root().Emit(context.Background(), s))
	got := plugintest.Captured("ruby")
	if len(got) != 1 || got[0].Record["pod"] != "web-1" || got[0].Record["level"] != "warn" || got[0].Record["service"] != "web" || got[0].Record["node"] == "" {
		t.Errorf("%+v", got)
	}
}
