package engine_test

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/celerity-go/celerity/engine"
)

// A raw handler reads its arguments as a JSON view and sets its result
// from a buffer of its own: the handler itself allocates nothing. This one
// sums the non-negative integers of its positional arguments.
func ExampleRegisterRaw() {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	engine.RegisterRaw(app, "tasks.sum", func(_ context.Context, t *engine.Task) error {
		var sum, n int64
		for _, c := range t.Args() { // the JSON array as sent: [2, 3, 4]
			if c >= '0' && c <= '9' {
				n = n*10 + int64(c-'0')
				continue
			}
			sum, n = sum+n, 0 // a separator ends a number
		}
		var buf [20]byte
		t.Return(strconv.AppendInt(buf[:0], sum+n, 10)) // Return copies
		return nil
	})
	w, _ := app.Worker(engine.WorkerConfig{})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { stop(); <-done }()

	// SendRaw takes the arguments already encoded, and copies them.
	if err := app.SendRaw(ctx, "tasks.sum", []byte(`[2, 3, 4]`), nil, engine.TaskID("sum-1")); err != nil {
		fmt.Println(err)
		return
	}
	sum, err := engine.ResultOf[int](app, "sum-1").Get(ctx)
	fmt.Println(sum, err)
	// Output: 9 <nil>
}

// A long task reports its progress in a custom state, which clients read
// while it runs (Celery's update_state); its final result replaces it.
func ExampleTask_UpdateState() {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	resume := make(chan struct{})
	engine.RegisterRaw(app, "tasks.import", func(ctx context.Context, t *engine.Task) error {
		if err := t.UpdateState(ctx, "PROGRESS", map[string]int{"done": 50, "total": 100}); err != nil {
			return err
		}
		<-resume // the rest of the work
		return t.ReturnValue(100)
	})
	w, _ := app.Worker(engine.WorkerConfig{})
	ctx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	defer func() { stop(); <-done }()

	res, _ := app.SendTask(ctx, "tasks.import", nil, nil)
	var m engine.Meta
	for m.StateName != "PROGRESS" && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
		m, _ = res.Meta(ctx)
	}
	fmt.Println(m.StateName, string(m.Result))
	close(resume)
	v, err := res.Get(ctx)
	fmt.Println(v, err)
	state, _ := res.State(ctx)
	fmt.Println(state)
	// Output:
	// PROGRESS {"done":50,"total":100}
	// 100 <nil>
	// SUCCESS
}
