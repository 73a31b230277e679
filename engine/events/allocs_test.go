//go:build !race

package events

import (
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
)

// TestAllocsTaskEvents: encoding and queueing a task event allocates
// nothing in steady state (the hooks run on the worker's hot path).
func TestAllocsTaskEvents(t *testing.T) {
	// Not started: no publisher, and a batch large enough that the run
	// below never fills it, so only the hooks are measured.
	d := New(control.NewMemoryBus(), Options{Hostname: "allocs@host", TaskEvents: true, BufferLimit: 1 << 30})
	m := &codec.Message{ID: []byte("7f0c5a4e-0b7e-4a53-8f4b-5f2f3a1c2d3e"), Task: []byte("t.add"),
		ArgsRepr: []byte("(1, 2)"), KwargsRepr: []byte("{}"), RootID: []byte("7f0c5a4e-0b7e-4a53-8f4b-5f2f3a1c2d3e"),
		ETA: time.Now()}
	task := &engine.Task{ID: "7f0c5a4e-0b7e-4a53-8f4b-5f2f3a1c2d3e", Name: "t.add"}
	emit := func() {
		d.taskReceived(m)
		d.taskStarted(task)
		d.taskSucceeded(task)
	}
	for range 2000 { // grow the batch buffer and the pools
		emit()
	}
	if n := testing.AllocsPerRun(1000, emit); n != 0 {
		t.Errorf("%v allocations per task (3 events)", n)
	}
}
