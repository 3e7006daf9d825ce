package sample_test

import (
	"testing"

	"github.com/sluice-log/sluice/internal/plugintest"
)

func TestSampleRateSizeAndCounter(t *testing.T) {
	plugintest.Reset()
	e := plugintest.Build(t, `
<source>
  @type dummy
  tag gen
  rate 20
  size 2
  auto_increment_key seq
  dummy [{"a": 1}, {"b": "x"}]
</source>
<match gen>
  @type capture
  name gen
</match>`)
	stop := plugintest.Start(t, e)
	plugintest.WaitFor(t, "ten events", func() bool { return len(plugintest.Captured("gen")) >= 10 })
	stop()
	got := plugintest.Captured("gen")
	for i, ev := range got[:10] {
		if ev.Record["seq"] != int64(i) {
			t.Errorf("event %d: seq %v", i, ev.Record["seq"])
		}
		if (i%2 == 0) != (ev.Record["a"] != nil) {
			t.Errorf("event %d: records should alternate, got %v", i, ev.Record)
		}
	}
}

func TestSampleRejectsBadJSON(t *testing.T) {
	if _, err := plugintest.BuildErr("<source>\n  @type sample\n  tag t\n  sample [1, 2\n</source>"); err == nil {
		t.Error("accepted an unterminated JSON sample")
	}
	if _, err := plugintest.BuildErr("<source>\n  @type sample\n  tag t\n  sample \"not json\"\n</source>"); err == nil {
		t.Error("accepted a non-JSON sample")
	}
}
