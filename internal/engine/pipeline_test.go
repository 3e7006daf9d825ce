package engine

import "testing"

// TestRetiredPipelineDrains: a reload waits on drained, which closes when
// the pipeline is retired and its last emit has left, not before.
func TestRetiredPipelineDrains(t *testing.T) {
	closed := func(p *pipeline) bool {
		select {
		case <-p.drained:
			return true
		default:
			return false
		}
	}
	p := newPipeline("", nil)
	p.active.Add(2)
	p.leave()
	if closed(p) {
		t.Fatal("drained closed before the pipeline was retired")
	}
	p.retire()
	if closed(p) {
		t.Fatal("drained closed with an emit still running")
	}
	p.leave()
	if !closed(p) {
		t.Fatal("drained still open after the last emit left")
	}
	idle := newPipeline("", nil)
	idle.retire()
	if !closed(idle) {
		t.Fatal("an idle pipeline did not drain at once")
	}
}
