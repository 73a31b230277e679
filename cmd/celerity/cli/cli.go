package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
	"github.com/celerity-go/celerity/pool/prefork"
)

// Options configures Main.
type Options struct {
	Stdout, Stderr io.Writer
	// Setup registers the program's tasks on every app the CLI creates.
	Setup func(app *engine.App) error
}

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, o Options) error
}

func commands() []command {
	return []command{
		{"demo", "run producer and worker in this process on the memory transport", runDemo},
		{"worker", "consume and run tasks", runWorker},
		{"beat", "send periodic tasks on a schedule (one leader among instances)", runBeat},
		{"call", "send a task by name", runCall},
		{"result", "print a task's result", runResult},
		{"purge", "drop the waiting messages of queues", runPurge},
		{"inspect", "ask workers about their state (celery inspect: active, stats, ...)", runInspect},
		{"control", "change workers at runtime (celery control: revoke, rate_limit, ...)", runControl},
		{"status", "list the workers that answer a ping", runStatus},
		{"events", "watch the event stream: live view, or --dump", runEvents},
		{"bench", "benchmark enqueue, drain, throughput and latency (see package bench)", runBench},
	}
}

// exitUnavailable is the exit code (sysexits' EX_UNAVAILABLE) of inspect,
// control and status when no worker replied, as Celery's.
const exitUnavailable = 69

// errUsage marks a usage error already reported by the flag set.
var errUsage = errors.New("usage")

// Main runs the CLI with args (without the program name) and returns the
// process exit code. SIGINT and SIGTERM start a warm shutdown.
func Main(args []string, o Options) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return Run(ctx, args, o)
}

// Run is Main with the caller's context: cancelling it is what a signal
// does to Main.
func Run(ctx context.Context, args []string, o Options) int {
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(o.Stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], o)
		switch {
		case err == nil || errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.Is(err, control.ErrNoReply):
			// As Celery's inspect, control and status: EX_UNAVAILABLE.
			fmt.Fprintf(o.Stderr, "celerity %s: %v\n", c.name, err)
			return exitUnavailable
		default:
			fmt.Fprintf(o.Stderr, "celerity %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(o.Stderr, "celerity: unknown command %q\n\n", args[0])
	usage(o.Stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: celerity <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'celerity <command> --help' for a command's flags.")
}

// newFlags returns a flag set that reports errors to o.Stderr.
func newFlags(name, synopsis string, o Options) *flag.FlagSet {
	fs := flag.NewFlagSet("celerity "+name, flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(o.Stderr, "usage: celerity %s %s\n\nflags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// appFlags are the flags every command that talks to a broker takes.
type appFlags struct {
	broker, backend, config string
	loglevel                string
}

func (f *appFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.broker, "broker", "", "broker URL (broker_url; default $CELERITY_BROKER_URL or memory://)")
	fs.StringVar(&f.backend, "backend", "", "result backend URL (result_backend; default $CELERITY_RESULT_BACKEND)")
	fs.StringVar(&f.config, "config", "", "config file (.json/.yaml) with Celery setting names")
	fs.StringVar(&f.loglevel, "loglevel", "warn", "log level: debug, info, warn, error")
}

// newApp builds the app from config file, environment and flags, in that
// order of increasing precedence.
func (f *appFlags) newApp(o Options, tweak func(*engine.Config)) (*engine.App, error) {
	var cfg engine.Config
	if f.config != "" {
		if err := cfg.LoadFile(f.config); err != nil {
			return nil, err
		}
	}
	if err := cfg.LoadEnv(); err != nil {
		return nil, err
	}
	if f.broker != "" {
		cfg.BrokerURL = f.broker
	}
	if f.backend != "" {
		cfg.ResultBackend = f.backend
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.loglevel)); err != nil {
		return nil, fmt.Errorf("--loglevel: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(o.Stderr, &slog.HandlerOptions{Level: level}))
	var err error
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cfg.Broker, err = openBroker(ctx, cfg.BrokerURL, cfg.Logger); err != nil {
		return nil, err
	}
	if cfg.Backend, err = openBackend(ctx, cfg.ResultBackend, cfg.Broker, cfg.ResultExpires, cfg.Logger); err != nil {
		cfg.Broker.Close()
		return nil, err
	}
	if tweak != nil {
		tweak(&cfg)
	}
	app, err := engine.New(cfg)
	if err != nil {
		return nil, err
	}
	registerBuiltins(app)
	if o.Setup != nil {
		if err := o.Setup(app); err != nil {
			return nil, fmt.Errorf("setup: %w", err)
		}
	}
	return app, nil
}

// registerBuiltins adds the tasks every celerity binary knows.
func registerBuiltins(app *engine.App) {
	engine.RegisterRaw(app, "celerity.noop", func(context.Context, *engine.Task) error { return nil })
	engine.RegisterRaw(app, "celerity.echo", func(_ context.Context, t *engine.Task) error {
		t.Return(t.Args())
		return nil
	})
	engine.Register1(app, "celerity.sleep", func(ctx context.Context, seconds float64) (float64, error) {
		select {
		case <-time.After(time.Duration(seconds * float64(time.Second))):
			return seconds, nil
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
	})
}

func runWorker(ctx context.Context, args []string, o Options) error {
	fs := newFlags("worker", "[flags]", o)
	var af appFlags
	af.register(fs)
	queues := fs.String("Q", "", "comma-separated queues (default task_default_queue)")
	concurrency := fs.Int("c", 0, "concurrency (worker_concurrency; default: number of CPUs)")
	fs.IntVar(concurrency, "concurrency", 0, "same as -c")
	pool := fs.String("pool", "", "pool: goroutine, solo or prefork (worker_pool)")
	prefetch := fs.Int("prefetch-multiplier", 0, "worker_prefetch_multiplier (default 4)")
	maxTasks := fs.Int("max-tasks-per-child", 0, "recycle an executor after N tasks")
	maxMemory := fs.Int64("max-memory-per-child", 0, "recycle a prefork child after it grew past this many KiB resident")
	autoscale := fs.String("autoscale", "", "max,min: grow and shrink the pool with the backlog")
	hostname := fs.String("n", "", "node name (default celerity@<host>)")
	acksLate := fs.Bool("acks-late", false, "acknowledge after the task ran (task_acks_late)")
	pprofAddr := fs.String("pprof", "", "serve profiles (/debug/pprof/) and Prometheus metrics (/metrics) on this address,\ne.g. 127.0.0.1:6060 (a bare port binds loopback; off by default)")
	embeddedBeat := embeddedBeatFlags(fs)
	remote := workerRemote(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	app, err := af.newApp(o, func(c *engine.Config) {
		if *hostname != "" {
			c.Hostname = *hostname
		}
		if *acksLate {
			c.TaskAcksLate = true
		}
	})
	if err != nil {
		return err
	}
	defer app.Close()
	var qs []string
	if *queues != "" {
		qs = strings.Split(*queues, ",")
	}
	var scale prefork.Autoscaler
	if *autoscale != "" {
		if scale, err = parseAutoscale(*autoscale); err != nil {
			return err
		}
		*concurrency = scale.Max // the prefetch window follows the maximum, as in Celery
	}
	w, err := app.Worker(engine.WorkerConfig{Queues: qs, Concurrency: *concurrency, Pool: *pool,
		PrefetchMultiplier: *prefetch, MaxTasksPerChild: *maxTasks, MaxMemoryPerChild: *maxMemory})
	if err != nil {
		return err
	}
	if prefork.IsChild() {
		return w.Run(ctx) // a prefork child of a worker: serve tasks, nothing else
	}
	if *autoscale != "" {
		startAutoscale(ctx, scale, w, app)
	}
	stopBeat, err := embeddedBeat.start(ctx, app, o)
	if err != nil {
		return err
	}
	defer stopBeat()
	stopRemote, err := remote.start(ctx, app, w, o)
	if err != nil {
		return err
	}
	defer stopRemote()
	if *pprofAddr != "" {
		stop, err := servePprof(*pprofAddr, app, w, qs, o)
		if err != nil {
			return err
		}
		defer stop()
	}
	names := app.Registered()
	sort.Strings(names)
	fmt.Fprintf(o.Stderr, "celerity worker %s ready; tasks: %s\n", w.Hostname(), strings.Join(names, ", "))
	// A second SIGINT/SIGTERM during the warm shutdown makes it cold. A
	// third, or a cold shutdown still unfinished after coldExit, ends the
	// process: a task that ignores its cancelled context (which Go cannot
	// stop, and which holds the solo pool's one goroutine) does not keep
	// the worker up, as it does not in Celery.
	ran := make(chan struct{})
	defer close(ran)
	go func() {
		select {
		case <-ctx.Done():
		case <-ran:
			return
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		select {
		case <-sig:
		case <-ran:
			return
		}
		fmt.Fprintln(o.Stderr, "cold shutdown: cancelling running tasks")
		w.Terminate()
		select {
		case <-sig:
		case <-time.After(coldExit):
		case <-ran:
			return
		}
		fmt.Fprintln(o.Stderr, "cold shutdown: tasks still running; exiting")
		os.Exit(1)
	}()
	return w.Run(ctx)
}

// coldExit is how long a cold shutdown may take before the worker process
// exits anyway: the engine waits 2 s for tasks to return once cancelled,
// then gives up on them (not with the solo pool, whose loop runs them).
const coldExit = 5 * time.Second

// sendFlags are call's options.
type sendFlags struct {
	args, kwargs, queue, serializer, compression, id string
	countdown, expires                               time.Duration
	eta                                              string
	priority                                         int
}

func runCall(ctx context.Context, args []string, o Options) error {
	fs := newFlags("call", "[flags] TASK", o)
	var af appFlags
	af.register(fs)
	var sf sendFlags
	fs.StringVar(&sf.args, "args", "[]", "positional arguments as a JSON array")
	fs.StringVar(&sf.kwargs, "kwargs", "{}", "keyword arguments as a JSON object")
	fs.StringVar(&sf.queue, "queue", "", "target queue")
	fs.StringVar(&sf.serializer, "serializer", "", "json, msgpack or yaml")
	fs.StringVar(&sf.compression, "compression", "", "zlib, bzip2, zstd, ...")
	fs.StringVar(&sf.id, "id", "", "task id (default: a new UUID)")
	fs.DurationVar(&sf.countdown, "countdown", 0, "run no earlier than this from now")
	fs.StringVar(&sf.eta, "eta", "", "run no earlier than this RFC 3339 time")
	fs.DurationVar(&sf.expires, "expires", 0, "revoke if not started within this")
	fs.IntVar(&sf.priority, "priority", -1, "priority 0-9")
	wait := fs.Duration("wait", 0, "wait this long for the result and print it")
	// Flags may follow the task name, as with `celery call TASK --args ...`.
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	// Numbers stay as written (json.Number): 1 must not become 1.0.
	var a []any
	var kw map[string]any
	if err := decodeJSONArg(sf.args, &a); err != nil {
		return fmt.Errorf("--args: %w", err)
	}
	if err := decodeJSONArg(sf.kwargs, &kw); err != nil {
		return fmt.Errorf("--kwargs: %w", err)
	}
	opts, err := sf.options()
	if err != nil {
		return err
	}
	app, err := af.newApp(o, nil)
	if err != nil {
		return err
	}
	defer app.Close()
	res, err := app.SendTask(ctx, pos[0], a, kw, opts...)
	if err != nil {
		return err
	}
	fmt.Fprintln(o.Stdout, res.ID)
	if *wait > 0 {
		return printResult(ctx, app, res.ID, *wait, o)
	}
	return nil
}

func decodeJSONArg(s string, dst any) error {
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	return d.Decode(dst)
}

func (sf *sendFlags) options() ([]engine.Option, error) {
	var opts []engine.Option
	if sf.queue != "" {
		opts = append(opts, engine.Queue(sf.queue))
	}
	if sf.serializer != "" {
		opts = append(opts, engine.Serializer(sf.serializer))
	}
	if sf.compression != "" {
		opts = append(opts, engine.Compression(sf.compression))
	}
	if sf.id != "" {
		opts = append(opts, engine.TaskID(sf.id))
	}
	if sf.countdown > 0 {
		opts = append(opts, engine.Countdown(sf.countdown))
	}
	if sf.eta != "" {
		t, err := time.Parse(time.RFC3339Nano, sf.eta)
		if err != nil {
			return nil, fmt.Errorf("--eta: %w", err)
		}
		opts = append(opts, engine.ETA(t))
	}
	if sf.expires > 0 {
		opts = append(opts, engine.ExpiresIn(sf.expires))
	}
	if sf.priority >= 0 {
		opts = append(opts, engine.Priority(sf.priority))
	}
	return opts, nil
}

func runResult(ctx context.Context, args []string, o Options) error {
	fs := newFlags("result", "[flags] TASK_ID", o)
	var af appFlags
	af.register(fs)
	timeout := fs.Duration("timeout", 0, "wait up to this long for a ready state (0: print the current state)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		fs.Usage()
		return errUsage
	}
	app, err := af.newApp(o, nil)
	if err != nil {
		return err
	}
	defer app.Close()
	return printResult(ctx, app, pos[0], *timeout, o)
}

// printResult prints {"id", "state", "result", "traceback"} as one JSON line.
func printResult(ctx context.Context, app *engine.App, id string, timeout time.Duration, o Options) error {
	r := app.Result(id)
	var m engine.Meta
	var err error
	if timeout > 0 {
		wctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		m, err = r.Wait(wctx)
	} else {
		m, err = r.Meta(ctx)
	}
	if err != nil {
		return err
	}
	out, err := json.Marshal(map[string]any{"id": id, "state": m.StateName, "result": m.Result, "traceback": m.Traceback})
	if err != nil {
		return err
	}
	fmt.Fprintln(o.Stdout, string(out))
	return nil
}

// purger is implemented by brokers that can drop a queue's messages.
type purger interface {
	Purge(queue string) int
}

func runPurge(ctx context.Context, args []string, o Options) error {
	fs := newFlags("purge", "[flags]", o)
	var af appFlags
	af.register(fs)
	queues := fs.String("Q", "celery", "comma-separated queues to purge")
	if err := parse(fs, args); err != nil {
		return err
	}
	app, err := af.newApp(o, nil)
	if err != nil {
		return err
	}
	defer app.Close()
	p, ok := app.Broker().(purger)
	if !ok {
		return fmt.Errorf("broker %s cannot purge", app.Config().BrokerURL)
	}
	total := 0
	for _, q := range strings.Split(*queues, ",") {
		total += p.Purge(q)
	}
	fmt.Fprintf(o.Stdout, "purged %d message(s) from %s\n", total, *queues)
	return nil
}
