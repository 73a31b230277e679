package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
	"github.com/celerity-go/celerity/engine/events"
)

func runControl(ctx context.Context, args []string, o Options) error {
	return runRemote(ctx, args, o, control.KindControl)
}

// workerRemoteFlags are the worker's flags for events and remote control.
type workerRemoteFlags struct {
	taskEvents    bool
	withoutMingle bool
	statedb       string
}

// workerRemote registers them on the worker's flag set.
func workerRemote(fs *flag.FlagSet) *workerRemoteFlags {
	f := &workerRemoteFlags{}
	fs.BoolVar(&f.taskEvents, "E", false, "send task events (worker_send_task_events); worker heartbeats are always sent")
	fs.BoolVar(&f.taskEvents, "events", false, "same as -E")
	fs.BoolVar(&f.withoutMingle, "without-mingle", false, "do not ask other workers for their revoked ids at start")
	fs.StringVar(&f.statedb, "statedb", "", "file keeping revoked task ids across restarts (JSON)")
	return f
}

// start runs the worker's event dispatcher and remote-control server
// (Celery's are always on; task events only with -E), and gives the app a
// control client as its Revoker, so that a task revoking another
// (AsyncResult.Revoke) reaches every worker, as in Celery. On the memory
// transport there is no bus and nothing starts. Call it before w.Run and
// the returned stop after it.
func (f *workerRemoteFlags) start(ctx context.Context, app *engine.App, w *engine.Worker, o Options) (func(), error) {
	cfg := app.Config()
	bus, err := control.Open(ctx, app.Broker(), cfg.BrokerURL, control.WithLogger(cfg.Logger))
	if errors.Is(err, control.ErrUnsupported) {
		if f.taskEvents || f.statedb != "" {
			fmt.Fprintf(o.Stderr, "celerity worker: %v; -E and --statedb are ignored\n", errNoBus)
		}
		return func() {}, nil
	}
	if err != nil {
		return nil, err
	}
	clock := new(control.Clock)
	d := events.New(bus, events.Options{TaskEvents: f.taskEvents, Clock: clock, Logger: cfg.Logger})
	d.Attach(app)
	d.Start()
	srv := control.NewServer(bus, w, control.ServerOptions{Clock: clock, Events: d, StateDB: f.statedb,
		Mingle: !f.withoutMingle, Logger: cfg.Logger})
	if err := srv.Start(ctx); err != nil {
		d.Close()
		bus.Close()
		return nil, err
	}
	revoker := control.NewClient(bus, control.ClientOptions{Clock: clock, Logger: cfg.Logger})
	app.SetRevoker(revoker)
	return func() {
		app.SetRevoker(nil)
		revoker.Close()
		if err := srv.Close(); err != nil {
			fmt.Fprintf(o.Stderr, "celerity worker: %v\n", err)
		}
		d.Close()
		if st := d.Stats(); st.Dropped > 0 {
			fmt.Fprintf(o.Stderr, "celerity worker: %d of %d events dropped (broker slow or unreachable)\n", st.Dropped, st.Emitted)
		}
		bus.Close()
	}, nil
}
