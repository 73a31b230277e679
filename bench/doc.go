// Package bench is the benchmark harness behind `celerity bench`: whole-
// system figures for the engine on a transport, set beside the raw ceiling
// of that transport and, optionally, Python Celery doing the same work.
//
// # Scenarios
//
//	enqueue        send N no-op tasks one call at a time, no worker running
//	enqueue-batch  the same, published in batches of Config.Batch (the engine
//	               sends one message per call; the harness batches at the
//	               transport seam, whose Publish takes many)
//	drain          N no-op tasks pre-loaded, then a worker runs them all:
//	               from the worker being ready to the last task done
//	throughput     producers and worker together: from the first send to the
//	               last task done (on memory://, producers wait while 4096
//	               tasks are queued, as a broker's flow control holds them)
//	latency        round trips one after the other (Config.Clients at once):
//	               send a task, run it, wait for its result; p50/p90/p99/p99.9
//	               from a log-linear (HDR-style) Histogram
//	canvas         fan-out and join: N tasks as chords of Config.CanvasWidth
//	               header tasks, each joined by a body that counts their
//	               results; from the first apply to the last body done
//	               (skipped on rpc://, which cannot count chord parts)
//
// No-op tasks ignore their results; the latency and chord header tasks
// return their arguments.
// Each scenario runs on queues of its own (Config.Prefix + "." + name),
// deleted at the end of the run.
//
// # Raw ceilings
//
// Every scenario is also run, in the same process, with the transport and
// nothing else (Ceiling): buffered channels for the memory transport,
// pipelined LPUSH/RPOP through rueidis for Redis, publish (with publisher
// confirms, as our transport does) and consume with prefetch and multiple
// acks through amqp091-go for RabbitMQ. The report prints each beside our
// figure as a ratio.
//
// # Python Celery
//
// With Config.Compare = "celery" the enqueue, drain, throughput, latency
// and canvas scenarios are run again by Python Celery (/usr/bin/python3 and the app in
// testdata/bench_app.py, embedded in the binary) on the same broker with
// the same N, concurrency, prefetch multiplier, payload, serializer,
// compression and acks_late; its worker uses the prefork pool (solo when
// ours is solo). Its drain runs the messages celerity pre-loads. When
// Python Celery is missing, or the transport is the in-process memory
// broker, each comparison says why it was skipped.
//
// # Report
//
// Run returns a Report: figures per scenario, the allocations per task
// and GC cycles and pauses of the timed part (runtime.MemStats deltas; the
// whole process is counted, producers and worker alike), the settings and
// the machine. WriteTable prints it for people, WriteJSON for programs,
// WriteHTML as a self-contained page with a throughput chart and the
// latency distributions.
//
// Figures from a 2-core machine shared with other work are noisy: compare
// runs made one after the other on the same machine, and prefer the ratios
// to the absolute numbers.
package bench
