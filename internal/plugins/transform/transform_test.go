package transform_test

import (
	"context"
	"testing"

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
