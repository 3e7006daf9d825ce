package plugin

import (
	"context"
	"strings"
	"testing"

	"github.com/sluice-log/sluice/internal/event"
)

type notAnInput struct{}

type chunkTaker struct{}

func (chunkTaker) Write(context.Context, *Chunk) error { return nil }

type streamTaker struct{}

func (streamTaker) Process(context.Context, event.Stream) error { return nil }

// TestRegisterChecksTheDeclaration: a value that is not what its kind
// needs, or Info fields of another kind, are refused at Register and
// reported by Check with the plugin's kind and type; a sound one is not.
func TestRegisterChecksTheDeclaration(t *testing.T) {
	for _, c := range []struct {
		info Info
		want string // "" when sound
	}{
		{Info{Kind: KindInput, Type: "t_not_input", New: func() any { return notAnInput{} }}, `plugin input "t_not_input": plugin.notAnInput does not implement plugin.Input`},
		{Info{Kind: KindOutput, Type: "t_admin_output", Admin: true, New: func() any { return chunkTaker{} }}, "Admin is for inputs"},
		{Info{Kind: KindOutput, Type: "t_sync_done", DoneWithDataOnReturn: true, New: func() any { return streamTaker{} }}, "has no Write"},
		{Info{Kind: KindOutput, Type: "t_sync_defaults", BufferDefaults: map[string]string{"": "tag"}, New: func() any { return streamTaker{} }}, "has no Write"},
		{Info{Kind: KindFilter, Type: "t_nil", New: func() any { return nil }}, "New returned nil"},
		{Info{Kind: KindOutput, Type: "t_sound", DoneWithDataOnReturn: true, New: func() any { return chunkTaker{} }}, ""},
	} {
		err := validate(c.info)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.info.Type, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: got %v, want an error with %q", c.info.Type, err, c.want)
		}
	}
}

// TestCheckReportsWhatRegisterRefused: Register keeps a mis-declared
// type out of the registry and Check names it, as it does a type
// registered twice.
func TestCheckReportsWhatRegisterRefused(t *testing.T) {
	regMu.Lock()
	saved, savedBad := registry, misdeclared
	registry, misdeclared = map[Kind]map[string]Info{}, nil
	regMu.Unlock()
	t.Cleanup(func() {
		regMu.Lock()
		registry, misdeclared = saved, savedBad
		regMu.Unlock()
	})
	if err := Check(); err != nil {
		t.Fatalf("empty registry: %v", err)
	}
	Register(Info{Kind: KindInput, Type: "broken", New: func() any { return notAnInput{} }})
	Register(Info{Kind: KindOutput, Type: "twice", New: func() any { return chunkTaker{} }})
	Register(Info{Kind: KindOutput, Type: "twice", New: func() any { return chunkTaker{} }})
	if _, ok := Lookup(KindInput, "broken"); ok {
		t.Error("a mis-declared type was registered")
	}
	if _, ok := Lookup(KindOutput, "twice"); !ok {
		t.Error("the first registration of a type was lost")
	}
	err := Check()
	if err == nil || !strings.Contains(err.Error(), `input "broken"`) || !strings.Contains(err.Error(), `"twice": registered twice`) {
		t.Fatalf("Check: %v", err)
	}
}
