// Package pprof serves Go's runtime profiles and Prometheus metrics on a
// listener of its own, for a celerity worker or any service that embeds the
// engine.
//
// Nothing happens at import time: unlike net/http/pprof (which this package
// does not import), no handler is registered on http.DefaultServeMux. The
// endpoint is off until a program asks for it:
//
//   - `celerity worker --pprof 127.0.0.1:6060` on the command line;
//   - Serve(ctx, "127.0.0.1:6060", ...) in a service, which listens until ctx
//     ends and then shuts the server down;
//   - Handler(...) to mount the same routes on a server the service owns.
//
// An address without a host (":6060", or just "6060") binds the loopback
// interface, 127.0.0.1: profiles expose the program's memory, so listening
// on every interface takes an explicit address such as "0.0.0.0:6060". An
// empty address (or "off") means disabled, and Serve and Start return
// ErrDisabled.
//
// Routes (all GET, except /debug/pprof/symbol which also takes POST):
//
//	/debug/pprof/             index of the profiles
//	/debug/pprof/<profile>    heap, goroutine, allocs, block, mutex, threadcreate (?debug=N, heap ?gc=1)
//	/debug/pprof/profile      CPU profile (?seconds=N, default 30)
//	/debug/pprof/trace        execution trace (?seconds=N, default 1)
//	/debug/pprof/cmdline      the command line
//	/debug/pprof/symbol       program counter to function name
//	/metrics                  Prometheus metrics (see Metrics)
//
// The server sets read-header, read, write and idle timeouts (see
// WithTimeouts); a CPU profile or trace extends its own write deadline by
// the duration it records for, as net/http/pprof does. Delta profiles
// (?seconds= on heap and the like) are not served: take two profiles and
// compare them with `go tool pprof -base`.
//
// Metrics holds a private Prometheus registry with the Go runtime and
// process collectors, the counters of the workers added with AddWorker, the
// task run-time histogram its Hooks record, and the queue depths given to
// WatchQueues.
package pprof
