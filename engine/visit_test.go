package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
)

// TestVisitorsSeeOnlyTheRunInProgress: while executors run short tasks
// back to back, which publish and withdraw each run with no lock (see
// slotState), other goroutines look at them: inspect active, revoke with
// terminate aimed at tasks that have just finished, and sends from
// goroutines the handlers start. A terminate reaches no later task, and a
// child sent from a handler's goroutine names its sender as parent. Under
// -race, a visitor that touched a run's fields outside the run fails it.
func TestVisitorsSeeOnlyTheRunInProgress(t *testing.T) {
	const n = 2000
	app := newApp(t, Config{})
	finished := make(chan string, n)
	var ended atomic.Int32
	app.SetHooks(Hooks{TaskPostrun: func(t *Task, _ codec.State) {
		if t.Name == "t.short" {
			finished <- strings.Clone(t.ID)
			ended.Add(1)
		}
	}})
	var cancelled atomic.Int32
	RegisterRaw(app, "t.short", func(ctx context.Context, t *Task) error {
		// Sent from another goroutine: inherit visits the slot.
		var err error
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			err = app.SendRaw(ctx, "t.child", nil, nil, TaskID("child-"+t.ID))
		}()
		<-sent
		if context.Cause(ctx) != nil {
			cancelled.Add(1)
		}
		return err
	}, TaskIgnoreResult(true))
	parents := make(chan [2]string, n)
	RegisterRaw(app, "t.child", func(_ context.Context, t *Task) error {
		parents <- [2]string{strings.Clone(t.ID), strings.Clone(t.ParentID)}
		return nil
	}, TaskIgnoreResult(true))
	w, _ := startWorker(t, app, WorkerConfig{Concurrency: 2})
	ctx := testCtx(t, 60*time.Second)

	stop := make(chan struct{})
	var visitors sync.WaitGroup
	defer func() { close(stop); visitors.Wait() }()
	visitors.Add(2)
	go func() { // revoke with terminate each task as it finishes
		defer visitors.Done()
		for {
			select {
			case id := <-finished:
				app.Revoke(true, id)
			case <-stop:
				return
			}
		}
	}()
	go func() { // inspect active
		defer visitors.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, info := range w.Active() {
				if info.Name != "t.short" && info.Name != "t.child" {
					t.Errorf("active task %q (%s)", info.Name, info.ID)
				}
			}
		}
	}()
	for i := range n {
		if err := app.SendRaw(ctx, "t.short", nil, nil, TaskID(fmt.Sprintf("short-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case p := <-parents:
			if want := strings.TrimPrefix(p[0], "child-"); p[1] != want {
				t.Errorf("child %s: parent %q, want %q", p[0], p[1], want)
			}
		case <-ctx.Done():
			t.Fatal("children did not all run")
		}
	}
	for ended.Load() < n { // the last handlers may still be checking their context
		if ctx.Err() != nil {
			t.Fatal("tasks did not all end")
		}
		time.Sleep(time.Millisecond)
	}
	if c := cancelled.Load(); c != 0 {
		t.Errorf("%d tasks found their context cancelled: a terminate aimed at a finished task reached a later one", c)
	}
}
