package placeholder

import (
	"testing"

	"github.com/sluice-log/sluice/internal/event"
)

func TestRender(t *testing.T) {
	rec, err := event.EncodeRecord(map[string]any{"app": "web", "k8s": map[string]any{"ns": "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	e := &event.Entry{Time: event.Time(1362020400 * 1e9), Record: rec}
	for in, want := range map[string]string{
		"logs-${record['app']}-${record[\"k8s\"][\"ns\"]}":                   "logs-web-prod",
		"${tag_parts[1]}.${tag_parts[-1]} ${tag_prefix[1]} ${tag_suffix[1]}": "docker.c1 kube.docker docker.c1",
		"${app}@${hostname} ${missing}":                                      "web@h1 ${missing}",
		"plain":                                                              "plain",
	} {
		tmpl, err := Parse(in)
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if got := string(tmpl.Render(nil, "kube.docker.c1", "h1", e)); got != want {
			t.Errorf("%q: %q, want %q", in, got, want)
		}
	}
	for _, bad := range []string{"${record['a'", "${time.strftime('%Y')}", "${tag_parts[x]}"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
	if p, ok := mustParse(t, "${record['app']}").LoneRecord(); !ok || p[0] != "app" {
		t.Error("LoneRecord")
	}
	if !mustParse(t, "x").Static() || mustParse(t, "${tag}").Static() {
		t.Error("Static")
	}
}

func mustParse(t *testing.T, s string) *Template {
	tmpl, err := Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}
