package control_test

import (
	"context"
	"fmt"
	"time"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
)

// A worker's mailbox and a client on one in-process bus. On a real
// broker, control.Open(ctx, app.Broker(), brokerURL) gives the bus that
// Python's `celery inspect` and `celery control` share.
func Example() {
	bus := control.NewMemoryBus()
	defer bus.Close()

	app := engine.MustNew(engine.Config{Hostname: "w1@example"})
	engine.Register2(app, "tasks.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	w, err := app.Worker(engine.WorkerConfig{Concurrency: 1})
	if err != nil {
		panic(err)
	}
	srv := control.NewServer(bus, w, control.ServerOptions{}) // before w.Run
	// A command of the program's own, next to Celery's.
	srv.Handle("uptime_hint", control.KindInspect, func(context.Context, *control.Request) (any, error) {
		return control.OK("all good"), nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	if err := srv.Start(ctx); err != nil {
		panic(err)
	}

	c := control.NewClient(bus, control.ClientOptions{})
	defer c.Close()
	for _, method := range []string{"ping", "registered", "uptime_hint"} {
		replies, err := c.Call(ctx, control.Call{Method: method, Timeout: time.Second, Limit: 1})
		if err != nil {
			panic(err)
		}
		for _, r := range replies {
			fmt.Printf("%s %s: %s\n", method, r.Node, r.Value)
		}
	}

	cancel()
	<-done
	srv.Close()
	// Output:
	// ping w1@example: {"ok":"pong"}
	// registered w1@example: ["tasks.add"]
	// uptime_hint w1@example: {"ok":"all good"}
}
