package redis_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/transport/redis"
)

// A celerity app on Redis: Python Celery clients and workers can share
// these queues and results.
func ExampleNewBroker() {
	ctx := context.Background()
	broker, err := redis.NewBroker(ctx, "redis://127.0.0.1:6379/0?visibility_timeout=3600")
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
	backend, err := redis.NewBackend(ctx, "redis://127.0.0.1:6379/0", redis.WithResultExpires(24*time.Hour))
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()

	app, err := engine.New(engine.Config{Broker: broker, Backend: backend, TaskAcksLate: true})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	add := engine.Register2(app, "tasks.add", func(ctx context.Context, x, y int) (int, error) { return x + y, nil })

	w, err := app.Worker(engine.WorkerConfig{Concurrency: 8})
	if err != nil {
		log.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go w.Run(wctx)

	res, err := add.Delay(ctx, 2, 3)
	if err != nil {
		log.Fatal(err)
	}
	sum, err := res.Get(ctx)
	fmt.Println(sum, err)
}

// Celery's broker_transport_options, by their kombu names.
func ExampleWithTransportOptions() {
	broker, err := redis.NewBroker(context.Background(), "rediss://:secret@redis.example:6380/1",
		redis.WithTransportOptions(map[string]any{
			"visibility_timeout": 43200.0, // 12 hours
			"priority_steps":     []any{0.0, 3.0, 6.0, 9.0},
			"global_keyprefix":   "app1:",
		}))
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
}

// Chord bookkeeping as Celery 5.2 keeps it: the part that completes the
// chord gets every part, ordered by group index.
func ExampleBackend_ChordPartDone() {
	ctx := context.Background()
	backend, err := redis.NewBackend(ctx, "redis://127.0.0.1:6379/0")
	if err != nil {
		log.Fatal(err)
	}
	defer backend.Close()
	const group = "5c3a1b0e-0000-4000-8000-000000000001"
	if err := backend.SetChordSize(ctx, group, 2); err != nil {
		log.Fatal(err)
	}
	backend.ChordPartDone(ctx, group, 1, []byte(`[1, "task-b", "SUCCESS", 20]`))
	done, parts, err := backend.ChordPartDone(ctx, group, 0, []byte(`[1, "task-a", "SUCCESS", 10]`))
	if err != nil {
		log.Fatal(err)
	}
	if done {
		for _, p := range parts {
			fmt.Println(string(p)) // decode, then send the chord body with the results
		}
		backend.ChordCleanup(ctx, group)
	}
}
