package pprof_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/pprof"
)

// A service that embeds the engine serves profiles and metrics on a
// loopback listener of their own until its context ends.
func ExampleServe() {
	app := engine.MustNew(engine.Config{})
	defer app.Close()
	w, _ := app.Worker(engine.WorkerConfig{})

	m := pprof.NewMetrics()
	m.AddWorker(w)
	app.AddHooks(m.Hooks()) // task run-time histogram

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		// ":0" listens on 127.0.0.1, port chosen by the system; a real
		// service would use a fixed address such as "127.0.0.1:6060".
		done <- pprof.Serve(ctx, ":0", pprof.WithMetrics(m),
			pprof.OnListen(func(a net.Addr) { listening <- a.String() }))
	}()
	addr := <-listening

	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(strings.HasPrefix(addr, "127.0.0.1:"), strings.Contains(string(body), "celerity_worker_tasks_received_total"))

	cancel() // graceful shutdown
	fmt.Println(<-done)
	// Output:
	// true true
	// <nil>
}

// Mount the routes on a server the service already runs, for example an
// internal admin server.
func ExampleHandler() {
	admin := http.NewServeMux()
	admin.Handle("/debug/pprof/", pprof.Handler())
	srv := httptest.NewServer(admin)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.HasPrefix(string(body), "goroutine profile:"))
	// Output: 200 true
}
