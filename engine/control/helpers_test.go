package control_test

import (
	"context"
	"sync"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
)

// node is a running worker with its control server.
type node struct {
	app     *engine.App
	w       *engine.Worker
	srv     *control.Server
	gate    chan struct{} // closed by release: "t.block" tasks return
	release func()
	runErr  chan error
}

type nodeConfig struct {
	hostname    string
	pool        string
	concurrency int
	cfg         engine.Config
	opts        control.ServerOptions
	setup       func(app *engine.App)
}

// startNode runs a worker named cfg.hostname on the memory transport with
// a control server on bus; it is stopped when the test ends.
func startNode(t *testing.T, bus control.Bus, nc nodeConfig) *node {
	t.Helper()
	cfg := nc.cfg
	cfg.Hostname = nc.hostname
	app, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{app: app, gate: make(chan struct{}), runErr: make(chan error, 1)}
	engine.Register2(app, "t.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil }, engine.Params("x", "y"))
	engine.Register1(app, "t.block", func(ctx context.Context, label string) (string, error) {
		select {
		case <-n.gate:
			return label, nil
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	})
	if nc.setup != nil {
		nc.setup(app)
	}
	conc := nc.concurrency
	if conc == 0 {
		conc = 2
	}
	n.w, err = app.Worker(engine.WorkerConfig{Concurrency: conc, Pool: nc.pool, ShutdownTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	app.AddHooks(engine.Hooks{WorkerReady: func(*engine.Worker) { close(ready) }})
	n.srv = control.NewServer(bus, n.w, nc.opts)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { n.runErr <- n.w.Run(ctx) }()
	<-ready
	if err := n.srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	t.Cleanup(func() {
		once.Do(func() { close(n.gate) })
		cancel()
		select {
		case <-n.runErr:
		case <-time.After(20 * time.Second):
			t.Error("worker did not stop")
		}
		if err := n.srv.Close(); err != nil {
			t.Error(err)
		}
		app.Close()
	})
	n.release = func() { once.Do(func() { close(n.gate) }) }
	return n
}

// call broadcasts and returns the first reply by node (tests talk to
// one node per call).
func call(t *testing.T, c *control.Client, method string, args any, dest ...string) map[string]json.RawMessage {
	t.Helper()
	replies, err := c.Call(context.Background(), control.Call{Method: method, Args: args, Destination: dest,
		Timeout: 5 * time.Second, Limit: 1})
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	out := map[string]json.RawMessage{}
	for _, r := range replies {
		out[r.Node] = r.Value
	}
	return out
}

func decode(t *testing.T, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
}

// eventually polls cond until it holds or 10s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
