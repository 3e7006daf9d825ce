package event

import (
	"reflect"
	"testing"

	"github.com/tinylib/msgp/msgp"
)

func TestAppendWithout(t *testing.T) {
	rec, err := EncodeRecord(map[string]any{
		"log": "line", "stream": "stdout",
		"kubernetes": map[string]any{"namespace": "web", "pod": "p-1", "labels": map[string]any{"app": "x"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := AppendWithout([]byte("prefix"), rec, [][]string{{"stream"}, {"kubernetes", "pod"}, {"kubernetes", "labels", "app"}, {"absent"}, {"log", "deeper"}})
	if err != nil {
		t.Fatal(err)
	}
	if string(out[:6]) != "prefix" {
		t.Fatalf("dst not appended to: %q", out)
	}
	got, _, err := msgp.ReadIntfBytes(out[6:])
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"log": "line", "kubernetes": map[string]any{"namespace": "web", "labels": map[string]any{}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
