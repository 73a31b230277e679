package beat_test

import (
	"context"
	"fmt"
	"time"

	"github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/beat"
)

// A beat service and a worker in one process, on the memory transport.
// With several processes on Redis, give each the same
// beat.NewRedisLocker(broker.Client(), "celerity.beat") and a StateFile:
// one of them sends, the others stand by.
func ExampleService() {
	app := engine.MustNew(engine.Config{}) // memory broker and backend
	defer app.Close()
	sums := make(chan int, 100)
	engine.Register2(app, "tasks.add", func(_ context.Context, x, y int) (int, error) {
		sums <- x + y
		return x + y, nil
	})

	every, _ := beat.NewInterval(50 * time.Millisecond)
	s, err := beat.NewService(app, beat.ServiceConfig{Entries: []*beat.Entry{
		{Name: "add-every-50ms", Task: "tasks.add", Schedule: every, Args: json.RawMessage(`[2, 3]`)},
	}})
	if err != nil {
		panic(err)
	}
	w, err := app.Worker(engine.WorkerConfig{Concurrency: 1})
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	beatDone := make(chan error)
	go func() { beatDone <- s.Run(ctx) }()
	go w.Run(ctx)
	for range 3 {
		fmt.Println(<-sums)
	}
	cancel()
	fmt.Println(<-beatDone, s.State().Entries["add-every-50ms"].TotalRunCount >= 3)
	// Output:
	// 5
	// 5
	// 5
	// <nil> true
}
