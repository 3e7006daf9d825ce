package buffer

import (
	"testing"
	"time"
)

func TestTemplate(t *testing.T) {
	keys, err := ParseChunkKeys("tag,time,path,$.kubernetes.pod")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := NewTemplate("/out/${tag}/${tag[1]}/${tag[-1]}/${path}/${$.kubernetes.pod}/%Y%m%d%H", keys)
	if err != nil {
		t.Fatal(err)
	}
	k := NewKey("app.web.access", 1362020400, []string{"cust%Y", "pod-1"})
	if got := tmpl.Expand(k, time.UTC); got != "/out/app.web.access/web/access/cust%Y/pod-1/2013022803" {
		t.Errorf("Expand = %q", got)
	}
	for _, bad := range []string{"${nope}", "${tag[x]}", "${unclosed"} {
		if _, err := NewTemplate(bad, keys); err == nil {
			t.Errorf("NewTemplate(%q) accepted", bad)
		}
	}
	if _, err := NewTemplate("/a/%Y", ChunkKeys{Tag: true}); err == nil {
		t.Error("time placeholder without time key accepted")
	}
	if _, err := NewTemplate("/a/${tag}", ChunkKeys{Time: true}); err == nil {
		t.Error("tag placeholder without tag key accepted")
	}
}
