package amqp_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/transport/amqp"
)

// A celerity app on RabbitMQ with the rpc:// result backend, as a Celery
// app configured with broker_url "amqp://guest:guest@localhost:5672//"
// and result_backend "rpc://". Python clients and workers can share the
// queue. (Not run as a test: it needs a RabbitMQ server.)
func Example() {
	ctx := context.Background()
	broker, err := amqp.NewBroker(ctx, "amqp://guest:guest@localhost:5672//",
		amqp.WithMaxPriority(10), // task_queue_max_priority, same as the Python side
		amqp.WithHeartbeat(30*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	backend, err := amqp.NewRPCBackend(ctx, broker)
	if err != nil {
		log.Fatal(err)
	}
	app, err := engine.New(engine.Config{Broker: broker, Backend: backend, TaskAcksLate: true})
	if err != nil {
		log.Fatal(err)
	}
	defer app.Close()
	engine.Register2(app, "tasks.add", func(ctx context.Context, x, y int) (int, error) { return x + y, nil })

	w, err := app.Worker(engine.WorkerConfig{Queues: []string{"celery"}, Concurrency: 8})
	if err != nil {
		log.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	go w.Run(wctx)

	res, err := app.SendTask(ctx, "tasks.add", []any{2, 3}, nil, engine.Countdown(time.Second))
	if err != nil {
		log.Fatal(err)
	}
	v, err := res.Get(ctx)
	fmt.Println(v, err)
}

// Declaring the remote-control and event topology as kombu does, for a
// worker named "w1@host" and an event receiver.
func ExampleBroker_Declare() {
	ctx := context.Background()
	broker, err := amqp.NewBroker(ctx, "amqp://guest:guest@localhost:5672//")
	if err != nil {
		log.Fatal(err)
	}
	defer broker.Close()
	err = broker.Declare(ctx,
		amqp.ControlQueue("w1@host", "celery"),  // celery.pidbox fanout -> w1@host.celery.pidbox
		amqp.ReplyQueue(broker.OID(), "celery"), // reply.celery.pidbox -> <oid>.reply.celery.pidbox
		amqp.EventQueue("a-node-uuid", "#"),     // celeryev topic -> celeryev.a-node-uuid
	)
	fmt.Println(err)
}
