package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Errors of Config.validate.
var (
	// ErrBadConfig is returned by Run for a setting out of range; the
	// message names it.
	ErrBadConfig = errors.New("bench: bad config")
	// ErrUnknownScenario is returned by Run for a scenario name it does
	// not know.
	ErrUnknownScenario = errors.New("bench: unknown scenario")
)

// Config chooses what Run measures. The zero Config is valid: every
// scenario on the memory transport with the defaults below.
type Config struct {
	// Broker is the broker URL: "" or "memory://" (default), "redis://...",
	// "amqp://...". Use a Redis database or RabbitMQ vhost of the bench's
	// own: it creates queues named Prefix+"."+scenario and deletes them at
	// the end.
	Broker string
	// Backend is the result backend URL ("" = the broker's own kind; with
	// RabbitMQ, rpc://).
	Backend string
	// Transport, when set, is used instead of opening Broker and Backend.
	Transport Transport
	// Prefix names the run's queues (default "celerity-bench-<random>").
	Prefix string

	// Scenarios to run, in order (default: all of Scenarios()).
	Scenarios []string
	// N is the number of tasks per throughput scenario (default
	// DefaultNMemory on the memory transport, DefaultNBroker on a server).
	N int
	// LatencyN is the number of timed round trips (default 10000, at most N).
	LatencyN int
	// Concurrency is the worker's concurrency (default runtime.NumCPU()).
	Concurrency int
	// PrefetchMultiplier is worker_prefetch_multiplier (default 4).
	PrefetchMultiplier int
	// Producers is the number of goroutines sending tasks (default 1).
	Producers int
	// Batch is the batch size of enqueue-batch and of pre-loading (default 100).
	Batch int
	// Clients is the number of concurrent round-trip clients (default 1).
	Clients int
	// CanvasWidth is the number of header tasks of each chord of the
	// canvas scenario (default 100).
	CanvasWidth int
	// Payload is the size in bytes of the string argument each task gets
	// (default 0: no arguments).
	Payload int
	// Serializer is task_serializer: json (default), msgpack or yaml.
	Serializer string
	// Compression is task_compression ("" = none).
	Compression string
	// AcksLate is task_acks_late.
	AcksLate bool
	// Pool is worker_pool: goroutine (default) or solo.
	Pool string

	// Compare names another implementation to run the same scenarios:
	// "" (none) or "celery" (Python Celery through Python, on the same
	// broker; skipped with a reason when it is not installed).
	Compare string
	// Python is the interpreter with Celery installed (default
	// /usr/bin/python3).
	Python string

	// Timeout bounds each scenario (default 5 minutes).
	Timeout time.Duration
	// Progress receives a progress bar (nil = none).
	Progress io.Writer
	// Logger receives the engine's and the transports' logs (default: a
	// logger that discards them).
	Logger *slog.Logger
}

// Default numbers of tasks per scenario: the memory transport moves
// millions a second, a broker tens of thousands.
const (
	DefaultNMemory = 500_000
	DefaultNBroker = 20_000
)

// withTransport fills the defaults that depend on the transport.
func (c Config) withTransport(tr Transport) Config {
	if c.N == 0 {
		c.N = DefaultNBroker
		if tr.Name() == "memory" {
			c.N = DefaultNMemory
		}
	}
	c.LatencyN = min(c.LatencyN, c.N)
	return c
}

// Scenario names.
const (
	ScenarioEnqueue      = "enqueue"
	ScenarioEnqueueBatch = "enqueue-batch"
	ScenarioDrain        = "drain"
	ScenarioThroughput   = "throughput"
	ScenarioLatency      = "latency"
	ScenarioCanvas       = "canvas"
)

// Scenarios returns the names of every scenario, in the order Run runs
// them by default, with a one-line description each.
func Scenarios() [][2]string {
	out := make([][2]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = [2]string{s.name, s.desc}
	}
	return out
}

func (c Config) withDefaults() Config {
	if c.Prefix == "" {
		var b [4]byte
		rand.Read(b[:])
		c.Prefix = "celerity-bench-" + hex.EncodeToString(b[:])
	}
	if len(c.Scenarios) == 0 {
		for _, s := range scenarios {
			c.Scenarios = append(c.Scenarios, s.name)
		}
	}
	if c.LatencyN == 0 {
		c.LatencyN = 10_000
	}
	if c.Concurrency == 0 {
		c.Concurrency = runtime.NumCPU()
	}
	if c.PrefetchMultiplier == 0 {
		c.PrefetchMultiplier = 4
	}
	if c.Producers == 0 {
		c.Producers = 1
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
	if c.Clients == 0 {
		c.Clients = 1
	}
	if c.CanvasWidth == 0 {
		c.CanvasWidth = 100
	}
	if c.Serializer == "" {
		c.Serializer = "json"
	}
	if c.Pool == "" {
		c.Pool = "goroutine"
	}
	if c.Python == "" {
		c.Python = "/usr/bin/python3"
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...)))
	}
	if c.N < 0 {
		bad("n %d < 0", c.N)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"latency n", c.LatencyN}, {"concurrency", c.Concurrency},
		{"prefetch multiplier", c.PrefetchMultiplier}, {"producers", c.Producers},
		{"batch", c.Batch}, {"clients", c.Clients}, {"canvas width", c.CanvasWidth},
	} {
		if f.v < 1 {
			bad("%s %d < 1", f.name, f.v)
		}
	}
	if c.Payload < 0 || c.Payload > 64<<20 {
		bad("payload %d is outside 0-64MiB", c.Payload)
	}
	switch c.Serializer {
	case "json", "msgpack", "yaml":
	default:
		bad("serializer %q is not json, msgpack or yaml", c.Serializer)
	}
	switch c.Pool {
	case "goroutine", "solo":
	default:
		bad("pool %q is not goroutine or solo", c.Pool)
	}
	switch c.Compare {
	case "", "celery":
	default:
		bad("compare %q: only celery is known", c.Compare)
	}
	if c.Timeout < 0 {
		bad("timeout %v < 0", c.Timeout)
	}
	for i, name := range c.Scenarios {
		if scenarioByName(name) == nil {
			errs = append(errs, fmt.Errorf("%w %q (known: %s)", ErrUnknownScenario, name, strings.Join(scenarioNames(), ", ")))
		} else if slices.Index(c.Scenarios, name) != i {
			bad("scenario %q listed twice", name)
		}
	}
	return errors.Join(errs...)
}

// Run runs the configured scenarios one after the other and returns their
// report. A scenario that cannot run here (canvas without a backend that
// counts chords, a raw ceiling or a Celery comparison that is not
// available) is
// reported with the reason; an error is returned only when the harness
// itself cannot go on (bad config, broker unreachable, a scenario that
// failed or timed out).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	tr := cfg.Transport
	if tr == nil {
		var err error
		tr, err = OpenTransport(ctx, cfg.Broker, cfg.Backend, TransportOptions{Prefix: cfg.Prefix})
		if err != nil {
			return nil, err
		}
		defer tr.Close()
	}
	cfg = cfg.withTransport(tr)
	r, err := newRunner(ctx, cfg, tr)
	if err != nil {
		return nil, err
	}
	if r.py != nil {
		defer r.py.close()
	}
	rep := &Report{Started: start, Machine: machine(), Settings: cfg.settings(tr)}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := tr.Cleanup(cctx, r.queues); err != nil {
			cfg.Logger.Warn("bench: cleanup", "err", err)
		}
	}()
	for _, name := range cfg.Scenarios {
		res, err := r.run(ctx, scenarioByName(name))
		rep.Results = append(rep.Results, res)
		if err != nil {
			rep.Elapsed = time.Since(start)
			rep.finish()
			return rep, fmt.Errorf("bench: %s: %w", name, err)
		}
	}
	rep.Elapsed = time.Since(start)
	rep.finish()
	return rep, nil
}

func (c Config) settings(tr Transport) Settings {
	return Settings{
		Transport: tr.Name(), Broker: brokerName(c.Broker), Backend: Redact(c.Backend),
		Scenarios: c.Scenarios, N: c.N, LatencyN: c.LatencyN, Concurrency: c.Concurrency,
		PrefetchMultiplier: c.PrefetchMultiplier, Producers: c.Producers, Batch: c.Batch,
		Clients: c.Clients, CanvasWidth: c.CanvasWidth, Payload: c.Payload, Serializer: c.Serializer, Compression: c.Compression,
		AcksLate: c.AcksLate, Pool: c.Pool, Compare: c.Compare,
	}
}

func brokerName(u string) string {
	if u == "" {
		return "memory://"
	}
	return Redact(u)
}

func machine() Machine {
	m := Machine{GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
		CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0)}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
