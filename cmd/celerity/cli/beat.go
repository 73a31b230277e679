package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/beat"
	"github.com/celerity-go/celerity/transport/redis"
)

// defaultStateFile is Celery's beat_schedule_filename default, with the
// extension of our JSON state file.
const defaultStateFile = "celerybeat-schedule.json"

// beatFlags are the options of `celerity beat`, and of the beat that
// `celerity worker -B` embeds (there with a "beat-" prefix).
type beatFlags struct {
	enabled                      bool // worker -B
	schedule, state, tz, lockKey string
	leaseTTL, maxInterval        time.Duration
}

func (f *beatFlags) register(fs *flag.FlagSet, prefix string) {
	fs.StringVar(&f.schedule, prefix+"schedule", "", "schedule file (.json/.yaml) shaped like Celery's beat_schedule")
	fs.StringVar(&f.state, prefix+"state", defaultStateFile,
		"state file keeping each entry's last run (beat_schedule_filename); empty: none")
	fs.StringVar(&f.tz, prefix+"timezone", "", "timezone of the crontabs (timezone; default the app's, UTC)")
	fs.StringVar(&f.lockKey, prefix+"lock-key", "",
		"Redis key of the leader lease, on the broker's Redis or else the result backend's\n(default <global_keyprefix>celerity.beat); beats sharing it never double-fire")
	fs.DurationVar(&f.leaseTTL, prefix+"lease-ttl", beat.DefaultLeaseTTL, "leader lease duration; a dead leader is replaced after it")
	fs.DurationVar(&f.maxInterval, prefix+"max-interval", beat.DefaultMaxInterval, "longest sleep between checks (beat_max_loop_interval)")
}

// embeddedBeatFlags registers worker's -B and --beat-* flags.
func embeddedBeatFlags(fs *flag.FlagSet) *beatFlags {
	f := new(beatFlags)
	fs.BoolVar(&f.enabled, "B", false, "also run beat in this worker (needs --beat-schedule)")
	f.register(fs, "beat-")
	return f
}

// service builds the beat service of app: entries from the schedule file,
// the state file checked, and a RedisLocker when the broker is Redis (an
// in-process lease otherwise).
func (f *beatFlags) service(app *engine.App) (*beat.Service, string, error) {
	tz := f.tz
	if tz == "" {
		tz = app.Config().Timezone
	}
	loc, err := beat.Location(tz, true)
	if err != nil {
		return nil, "", err
	}
	entries, err := beat.LoadConfigFile(f.schedule, loc)
	if err != nil {
		return nil, "", err
	}
	if f.state != "" {
		if _, err := beat.ReadStateFile(f.state); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, "", fmt.Errorf("%w (delete the file to start afresh)", err)
		}
	}
	cfg := beat.ServiceConfig{Entries: entries, Location: loc, StateFile: f.state,
		LeaseTTL: f.leaseTTL, MaxInterval: f.maxInterval}
	// The lease lives in the broker's Redis, else in the result
	// backend's; with neither, only this process is covered.
	lock := "in-process (run a single beat)"
	client, keyURL := rueidis.Client(nil), ""
	if rb, ok := app.Broker().(*redis.Broker); ok {
		client, keyURL = rb.Client(), app.Config().BrokerURL
	} else if rb, ok := app.Backend().(*redis.Backend); ok {
		client, keyURL = rb.Client(), app.Config().ResultBackend
	}
	if client != nil {
		key := f.lockKey
		if key == "" {
			key = keyPrefix(keyURL) + "celerity.beat"
		}
		cfg.Locker = beat.NewRedisLocker(client, key)
		lock = "redis key " + key
	}
	s, err := beat.NewService(app, cfg)
	if err != nil {
		return nil, "", err
	}
	return s, fmt.Sprintf("%d entries from %s, lease %s, state %q, timezone %s", len(entries), f.schedule, lock, f.state, loc), nil
}

// keyPrefix returns the global_keyprefix of a Redis broker URL.
func keyPrefix(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Query().Get("global_keyprefix")
}

// start runs the embedded beat of `worker -B` until ctx ends or the
// returned stop is called; stop waits for it to save and release.
func (f *beatFlags) start(ctx context.Context, app *engine.App, o Options) (stop func(), err error) {
	if !f.enabled {
		return func() {}, nil
	}
	if f.schedule == "" {
		return nil, errors.New("-B needs --beat-schedule FILE")
	}
	s, banner, err := f.service(app)
	if err != nil {
		return nil, fmt.Errorf("beat: %w", err)
	}
	fmt.Fprintf(o.Stderr, "celerity beat (embedded): %s\n", banner)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			fmt.Fprintf(o.Stderr, "celerity worker: beat: %v\n", err)
		}
	}()
	return func() { cancel(); <-done }, nil
}

func runBeat(ctx context.Context, args []string, o Options) error {
	fs := newFlags("beat", "--schedule FILE [flags]", o)
	var af appFlags
	af.register(fs)
	var bf beatFlags
	bf.register(fs, "")
	if err := parse(fs, args); err != nil {
		return err
	}
	if bf.schedule == "" || fs.NArg() != 0 {
		fmt.Fprintln(o.Stderr, "celerity beat: --schedule FILE is required; no arguments")
		fs.Usage()
		return errUsage
	}
	app, err := af.newApp(o, nil)
	if err != nil {
		return err
	}
	defer app.Close()
	s, banner, err := bf.service(app)
	if err != nil {
		return err
	}
	fmt.Fprintf(o.Stderr, "celerity beat ready: %s\n", banner)
	// A second SIGINT/SIGTERM during the soft stop makes it hard.
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
		case <-done:
			return
		}
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(sig)
		select {
		case <-sig:
			fmt.Fprintln(o.Stderr, "hard stop: cancelling the send in flight")
			s.Terminate()
		case <-done:
		}
	}()
	return s.Run(ctx)
}
