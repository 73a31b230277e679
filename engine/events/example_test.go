package events_test

import (
	"context"
	"fmt"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
	"github.com/celerity-go/celerity/engine/events"
)

// A worker sending Celery events (as `celery worker -E` does) and a
// monitor receiving them. On a real broker the bus comes from
// control.Open, and Python's `celery events` and Flower see the same
// stream.
func Example() {
	bus := control.NewMemoryBus()
	defer bus.Close()

	var seen []string
	l, err := events.Receive(context.Background(), bus, "task.#", nil, func(e events.Event) {
		seen = append(seen, e.Type()+" "+e.Hostname())
	})
	if err != nil {
		panic(err)
	}

	app := engine.MustNew(engine.Config{Hostname: "w1@example"})
	engine.Register2(app, "tasks.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	d := events.New(bus, events.Options{TaskEvents: true})
	d.Attach(app) // before the worker runs
	d.Start()
	w, err := app.Worker(engine.WorkerConfig{Concurrency: 1})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()

	res, err := app.SendTask(ctx, "tasks.add", []any{2, 3}, nil)
	if err != nil {
		panic(err)
	}
	if _, err := res.Wait(ctx); err != nil {
		panic(err)
	}
	cancel()
	<-done
	d.Close() // publishes what is pending
	l.Close()
	for _, s := range seen {
		fmt.Println(s)
	}
	fmt.Println("dropped:", d.Stats().Dropped)
	// Output:
	// task-received w1@example
	// task-started w1@example
	// task-succeeded w1@example
	// dropped: 0
}
