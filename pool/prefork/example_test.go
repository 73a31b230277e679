package prefork_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"time"

	"github.com/celerity-go/celerity/pool/prefork"
)

// A worker runs tasks in child processes: copies of its own binary. The
// program's main starts with the child side (this test binary's TestMain
// does the same, with a handler that understands "echo:X" and "spin"):
//
//	func main() {
//		if prefork.IsChild() {
//			err := prefork.ServeChild(func(dst, payload []byte) []byte {
//				return runTask(dst, payload) // decode, run, encode the result
//			})
//			if err != nil {
//				fmt.Fprintln(os.Stderr, err)
//				os.Exit(1)
//			}
//			os.Exit(0)
//		}
//		// ... the worker, which starts the pool:
//	}
func Example() {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	p, err := prefork.New(prefork.Config{
		Procs:            2,
		Command:          func() *exec.Cmd { return exec.Command(exe) },
		MaxTasksPerChild: 1000,
		Logger:           slog.New(slog.DiscardHandler),
	})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	if err := p.Start(ctx); err != nil {
		panic(err)
	}

	results := make(chan prefork.Result, 1)
	done := func(r prefork.Result) {
		r.Payload = append([]byte(nil), r.Payload...) // a view: copy it to keep it
		results <- r
	}

	_ = p.Submit(prefork.Request{Payload: []byte("echo:hello from a child"), HardLimit: time.Minute}, done)
	fmt.Println(string((<-results).Payload))

	// A task stuck in a loop is killed at its hard limit, with its child.
	_ = p.Submit(prefork.Request{Payload: []byte("spin"), HardLimit: 100 * time.Millisecond}, done)
	r := <-results
	fmt.Println(errors.Is(r.Err, prefork.ErrTimeLimitExceeded))

	// The pool goes on with a new child.
	_ = p.Submit(prefork.Request{Payload: []byte("echo:still serving")}, done)
	fmt.Println(string((<-results).Payload))

	if err := p.Stop(ctx); err != nil { // soft: running tasks finish
		panic(err)
	}
	// Output:
	// hello from a child
	// true
	// still serving
}

// An Autoscaler sizes a pool between Min and Max from its load
// (--autoscale=MAX,MIN).
func ExampleAutoscaler() {
	a := prefork.Autoscaler{Min: 2, Max: 8, Keepalive: 30 * time.Second}
	t0 := time.Now()
	fmt.Println(a.Next(t0, 2, 20))                   // backlog: grow to max at once
	fmt.Println(a.Next(t0.Add(time.Second), 8, 0))   // idle, but grown a second ago
	fmt.Println(a.Next(t0.Add(time.Minute), 8, 3))   // idle past keepalive: shrink to the load
	fmt.Println(a.Next(t0.Add(2*time.Minute), 3, 0)) // and to min
	// Output:
	// 8
	// 8
	// 3
	// 2
}
