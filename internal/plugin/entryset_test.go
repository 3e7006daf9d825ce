package plugin

import "testing"

// TestEntrySetSurvivesTheChunk: a set saved with a chunk reads back the
// same from its metadata, and a garbled value reads as empty.
func TestEntrySetSurvivesTheChunk(t *testing.T) {
	meta := map[string]string{}
	c := NewChunk(Chunk{}, meta, func(k, v string) error { meta[k] = v; return nil })
	var d EntrySet
	for _, i := range []int{0, 7, 8, 1000} {
		d.Add(i)
	}
	if err := d.Save(c, "done"); err != nil {
		t.Fatal(err)
	}
	got := LoadEntrySet(c, "done")
	if got.Count() != 4 || !got.Has(1000) || !got.Has(7) || got.Has(1) || got.Has(5000) {
		t.Errorf("read back %v (count %d)", got, got.Count())
	}
	if err := c.SaveMeta("done", "%%% not base64"); err != nil {
		t.Fatal(err)
	}
	if LoadEntrySet(c, "done").Count() != 0 {
		t.Error("a garbled set was read")
	}
}
