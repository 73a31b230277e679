package timelimit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/celerity-go/celerity/timelimit"
)

// run is the shape of an engine's per-run state: a pooled pointer that is
// the Target, so tracking a run needs no closure.
type run struct {
	cancel context.CancelCauseFunc
	hard   chan struct{}
}

func (r *run) TimeLimitExceeded(l timelimit.Limit) {
	r.cancel(l.Err()) // soft: the task is told; hard: a last chance to notice
	if l == timelimit.Hard {
		close(r.hard) // the engine fails the task and abandons the slot here
	}
}

// A cooperative task stops at its soft limit and recognises why.
func Example() {
	tracker := timelimit.New(time.Millisecond)
	tracker.Start()
	defer tracker.Stop()

	// Celery's precedence: per-call header, then the task, then the worker.
	call := timelimit.Limits{}
	task := timelimit.Limits{Soft: 20 * time.Millisecond}
	worker := timelimit.Limits{Hard: time.Hour}
	limits := call.Or(task).Or(worker)

	ctx, cancel := context.WithCancelCause(context.Background())
	r := &run{cancel: cancel, hard: make(chan struct{})}
	h := tracker.Track(limits, r)

	err := slowTask(ctx)
	h.Done() // the task returned: nothing will fire for it any more
	cancel(nil)

	fmt.Println(errors.Is(err, timelimit.ErrSoftTimeLimitExceeded))
	fmt.Println(err)
	// Output:
	// true
	// cleaned up after: SoftTimeLimitExceeded: soft time limit exceeded
}

func slowTask(ctx context.Context) error {
	select {
	case <-time.After(time.Hour):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cleaned up after: %w", context.Cause(ctx))
	}
}
