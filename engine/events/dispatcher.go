package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/engine/control"
)

// Options configures a Dispatcher. Zero fields take the defaults given.
type Options struct {
	// Hostname is the node name events carry (default: the app's
	// worker hostname, set by Attach).
	Hostname string
	// TaskEvents sends the task-* events of workers (Celery's -E,
	// worker_send_task_events). Worker events (online, heartbeat,
	// offline) are always sent, as Celery's workers do.
	TaskEvents bool
	// SendSentEvent sends task-sent when the app publishes a task
	// (task_send_sent_event).
	SendSentEvent bool
	// Clock is the Lamport clock shared with remote control (default: a
	// new one).
	Clock *control.Clock
	// HeartbeatInterval is how often worker-heartbeat is sent; it is
	// also the "freq" monitors use to decide a worker is gone (default 2s,
	// Celery's).
	HeartbeatInterval time.Duration
	// FlushInterval bounds how long a task event waits in a batch
	// (default 100ms).
	FlushInterval time.Duration
	// BufferLimit is the number of task events in one task.multi batch
	// (default 24, Celery's buffer_limit).
	BufferLimit int
	// MaxPending is the number of full batches that may wait for the
	// publisher or be in its hands; beyond it new events are dropped and
	// counted (default
	// 256, i.e. 256 x BufferLimit events, about 2 MB).
	MaxPending int
	// PublishTimeout bounds one publish to the broker (default 5s).
	PublishTimeout time.Duration
	// Logger receives publish failures, at most one report per 10s
	// (default slog.Default()).
	Logger *slog.Logger
}

// Stats counts what a Dispatcher did. Emitted = Sent + Dropped once the
// dispatcher is closed.
type Stats struct {
	// Emitted is the number of events produced.
	Emitted int64
	// Sent is the number of events the broker accepted.
	Sent int64
	// Dropped is the number of events given up: the buffer was full (the
	// broker is slow or away) or their publish failed.
	Dropped int64
	// Batches is the number of messages published.
	Batches int64
	// PublishErrors is the number of failed publishes.
	PublishErrors int64
}

// Dispatcher sends Celery events for a worker (and, optionally, for the
// tasks an app sends) on a control.Bus (celery-wire.md §7).
//
// Emitting never blocks task execution: a hook encodes its event into
// the batch being filled, under a short lock, and returns. Full batches
// wait for the one publisher goroutine, at most MaxPending of them counting
// those it is publishing (so a stuck broker holds at most MaxPending
// batches and the one being filled), which
// publishes them as task.multi JSON arrays (and flushes a partial batch
// every FlushInterval); on Redis the batches it has go out in one round
// trip. It is woken early when half of MaxPending is used. When the
// broker is slow or unreachable the
// pending batches fill up and further events are dropped and counted
// (Stats.Dropped) rather than delaying tasks or growing memory. Worker
// events go through the same queue, one event per message.
//
// Create it with New, Attach it to the app before the worker runs, Start
// it, and Close it after the worker stopped. It is safe for concurrent
// use and implements control.EventSwitch.
type Dispatcher struct {
	bus       control.Bus
	opts      Options
	clock     *control.Clock
	log       *slog.Logger
	pid       int
	utcoffset int
	hostname  string
	hostJSON  []byte // hostname as a JSON string

	taskOn atomic.Bool
	closed atomic.Bool // after Close: events are dropped
	worker atomic.Pointer[engine.Worker]

	mu    sync.Mutex
	cur   *batch   // task events being collected
	ready []*batch // waiting for the publisher
	taken int      // batches the publisher took and has not finished with
	free  []*batch // recycled
	kick  chan struct{}

	emitted, sent, dropped, batches, pubErrors atomic.Int64
	lastErrLog                                 atomic.Int64 // unix nanos of the last failure report

	startOnce, closeOnce sync.Once
	stop                 chan struct{}
	done                 chan struct{}
	hb                   chan struct{}
}

// batch is one message being built: a task.multi array, or one worker
// event.
type batch struct {
	rk    string // routing key
	multi bool
	n     int
	buf   []byte
}

// New returns a dispatcher publishing on bus.
func New(bus control.Bus, opts Options) *Dispatcher {
	if opts.Clock == nil {
		opts.Clock = new(control.Clock)
	}
	if opts.HeartbeatInterval <= 0 {
		opts.HeartbeatInterval = 2 * time.Second
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.BufferLimit <= 0 {
		opts.BufferLimit = 24
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = 256
	}
	if opts.PublishTimeout <= 0 {
		opts.PublishTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := &Dispatcher{bus: bus, opts: opts, clock: opts.Clock, log: opts.Logger, pid: os.Getpid(),
		utcoffset: utcoffset(time.Now()), kick: make(chan struct{}, 1), hb: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{})}
	d.setHostname(opts.Hostname)
	d.taskOn.Store(opts.TaskEvents)
	return d
}

func (d *Dispatcher) setHostname(h string) {
	d.hostname = h
	d.hostJSON = control.AppendString(nil, h)
}

// Attach installs the event hooks on app (engine.App.AddHooks): task
// events, worker-online when a worker is ready, worker-offline when it
// stops, and task-sent for the app's publishes with SendSentEvent. Call
// it before the worker runs and before Start.
func (d *Dispatcher) Attach(app *engine.App) {
	if d.hostname == "" {
		d.setHostname(app.Config().Hostname)
	}
	h := engine.Hooks{
		TaskReceived: d.taskReceived,
		TaskPrerun:   d.taskStarted,
		TaskSuccess:  d.taskSucceeded,
		TaskFailure:  d.taskFailed,
		TaskRetry:    d.taskRetried,
		TaskRevoked:  d.taskRevoked,
		TaskRejected: d.taskRejected,
		WorkerReady: func(w *engine.Worker) {
			d.worker.Store(w)
			d.workerEvent("worker-online", d.opts.HeartbeatInterval)
			d.heartbeatNow()
		},
		WorkerShutdown: func(*engine.Worker) { d.workerEvent("worker-offline", d.opts.HeartbeatInterval) },
	}
	if d.opts.SendSentEvent {
		h.BeforePublish = d.taskSent
	}
	app.AddHooks(h)
}

// Start starts the publisher goroutine (and the heartbeat once a worker
// is ready).
func (d *Dispatcher) Start() {
	d.startOnce.Do(func() { go d.run() })
}

// Close publishes what is pending (bounded by PublishTimeout per
// message) and stops the publisher. Events emitted afterwards are
// dropped.
func (d *Dispatcher) Close() error {
	d.Start() // so that done is closed
	d.closeOnce.Do(func() { close(d.stop) })
	<-d.done
	d.closed.Store(true)
	// Events pushed while the last flush ran.
	d.publishAll(d.take(nil, true))
	return nil
}

// Stats returns the dispatcher's counters.
func (d *Dispatcher) Stats() Stats {
	return Stats{Emitted: d.emitted.Load(), Sent: d.sent.Load(), Dropped: d.dropped.Load(),
		Batches: d.batches.Load(), PublishErrors: d.pubErrors.Load()}
}

// TaskEvents reports whether task events are on.
func (d *Dispatcher) TaskEvents() bool { return d.taskOn.Load() }

// EnableTaskEvents implements control.EventSwitch.
func (d *Dispatcher) EnableTaskEvents() bool { return !d.taskOn.Swap(true) }

// DisableTaskEvents implements control.EventSwitch.
func (d *Dispatcher) DisableTaskEvents() bool { return d.taskOn.Swap(false) }

// SendHeartbeat implements control.EventSwitch: a worker-heartbeat now
// (with freq 5, as Celery's heartbeat command sends).
func (d *Dispatcher) SendHeartbeat() { d.workerEvent("worker-heartbeat", 5*time.Second) }

func (d *Dispatcher) heartbeatNow() {
	select {
	case d.hb <- struct{}{}:
	default:
	}
}

var scratch = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// maxEvent bounds a pooled scratch buffer kept for reuse.
const maxEvent = 64 << 10

// pushTask adds one encoded task event to the current batch, or drops
// it when the pending batches are full. It never blocks.
func (d *Dispatcher) pushTask(ev []byte) {
	d.emitted.Add(1)
	if d.closed.Load() {
		d.dropped.Add(1)
		return
	}
	d.mu.Lock()
	b := d.cur
	if b == nil {
		if len(d.ready)+d.taken >= d.opts.MaxPending {
			d.mu.Unlock()
			d.dropped.Add(1)
			return
		}
		b = d.batchLocked("task.multi", true)
		d.cur = b
	}
	if b.n == 0 {
		b.buf = append(b.buf[:0], '[')
	} else {
		b.buf = append(b.buf, ", "...)
	}
	b.buf = append(b.buf, ev...)
	b.n++
	// Wake the publisher only once half the pending room is used: a
	// wake-up per batch costs more scheduling than the events themselves.
	// Below that, the flush tick collects the batches.
	wake := false
	if b.n >= d.opts.BufferLimit {
		d.ready = append(d.ready, b)
		d.cur = nil
		wake = len(d.ready) == (d.opts.MaxPending+1)/2
	}
	d.mu.Unlock()
	if wake {
		select {
		case d.kick <- struct{}{}:
		default:
		}
	}
}

// pushSingle queues one event as its own message with routing key rk.
func (d *Dispatcher) pushSingle(rk string, ev []byte) {
	d.emitted.Add(1)
	if d.closed.Load() {
		d.dropped.Add(1)
		return
	}
	d.mu.Lock()
	if len(d.ready)+d.taken >= d.opts.MaxPending {
		d.mu.Unlock()
		d.dropped.Add(1)
		return
	}
	b := d.batchLocked(rk, false)
	b.buf = append(b.buf[:0], ev...)
	b.n = 1
	d.ready = append(d.ready, b)
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

func (d *Dispatcher) batchLocked(rk string, multi bool) *batch {
	var b *batch
	if n := len(d.free); n > 0 {
		b, d.free = d.free[n-1], d.free[:n-1]
	} else {
		b = &batch{}
	}
	b.rk, b.multi, b.n = rk, multi, 0
	return b
}

// begin returns a scratch buffer holding the event's head.
func (d *Dispatcher) begin() *[]byte {
	p := scratch.Get().(*[]byte)
	*p = d.appendHead((*p)[:0], d.clock.Forward())
	return p
}

// end closes the event in p, queues it and recycles p.
func (d *Dispatcher) end(p *[]byte, typ string) { d.endAt(p, typ, time.Now()) }

// finished is when t's handler returned, known without reading the
// clock when the engine timed the run (it does while these hooks are
// installed).
func finished(t *engine.Task) time.Time {
	if s := t.Started(); !s.IsZero() {
		return s.Add(t.Runtime())
	}
	return time.Now()
}

// endAt is end with the event's timestamp.
func (d *Dispatcher) endAt(p *[]byte, typ string, ts time.Time) {
	*p = appendTail(*p, ts, typ)
	d.pushTask(*p)
	if cap(*p) <= maxEvent {
		scratch.Put(p)
	}
}

func (d *Dispatcher) taskReceived(m *codec.Message) {
	if !d.taskOn.Load() {
		return
	}
	p := d.begin()
	b := appendBytesOrNull(*p, "uuid", m.ID)
	b = appendBytesOrNull(b, "name", m.Task)
	b = appendBytesOrNull(b, "args", m.ArgsRepr)
	b = appendBytesOrNull(b, "kwargs", m.KwargsRepr)
	b = appendBytesOrNull(b, "root_id", m.RootID)
	b = appendBytesOrNull(b, "parent_id", m.ParentID)
	b = appendInt(b, "retries", int64(m.Retries))
	b = appendTimeOrNull(b, "eta", m.ETA)
	b = appendTimeOrNull(b, "expires", m.Expires)
	*p = b
	d.end(p, "task-received")
}

func (d *Dispatcher) taskSent(m *codec.Message) {
	if !d.opts.SendSentEvent {
		return
	}
	p := d.begin()
	b := appendBytesOrNull(*p, "uuid", m.ID)
	b = appendBytesOrNull(b, "root_id", m.RootID)
	b = appendBytesOrNull(b, "parent_id", m.ParentID)
	b = appendBytesOrNull(b, "name", m.Task)
	b = appendBytesOrNull(b, "args", m.ArgsRepr)
	b = appendBytesOrNull(b, "kwargs", m.KwargsRepr)
	b = appendInt(b, "retries", int64(m.Retries))
	b = appendTimeOrNull(b, "eta", m.ETA)
	b = appendTimeOrNull(b, "expires", m.Expires)
	b = appendBytesOrNull(b, "queue", m.RoutingKey)
	b = appendJSONBytes(appendKey(b, "exchange"), m.Exchange)
	b = appendJSONBytes(appendKey(b, "routing_key"), m.RoutingKey)
	*p = b
	d.end(p, "task-sent")
}

func (d *Dispatcher) taskStarted(t *engine.Task) {
	if !d.taskOn.Load() {
		return
	}
	p := d.begin()
	*p = appendStr(*p, "uuid", t.ID)
	d.end(p, "task-started")
}

func (d *Dispatcher) taskSucceeded(t *engine.Task) {
	if !d.taskOn.Load() {
		return
	}
	p := d.begin()
	b := appendStr(*p, "uuid", t.ID)
	// The result as Python's repr, built in a second scratch buffer.
	r := scratch.Get().(*[]byte)
	*r = engine.AppendPyRepr((*r)[:0], t.Result(), false)
	b = appendJSONBytes(appendKey(b, "result"), *r)
	if cap(*r) <= maxEvent {
		scratch.Put(r)
	}
	b = appendKey(b, "runtime")
	b = control.AppendFloat(b, t.Runtime().Seconds())
	*p = b
	d.endAt(p, "task-succeeded", finished(t))
}

func (d *Dispatcher) taskFailed(t *engine.Task, err error) {
	if !d.taskOn.Load() {
		return
	}
	repr, tb := excRepr(err)
	p := d.begin()
	b := appendStr(*p, "uuid", t.ID)
	b = appendStr(b, "exception", repr)
	b = appendStr(b, "traceback", tb)
	*p = b
	d.endAt(p, "task-failed", finished(t))
}

func (d *Dispatcher) taskRetried(t *engine.Task, err error) {
	if !d.taskOn.Load() {
		return
	}
	repr, tb := "None", ""
	if err != nil {
		repr, tb = excRepr(err)
	}
	p := d.begin()
	b := appendStr(*p, "uuid", t.ID)
	b = appendStr(b, "exception", repr)
	b = appendStr(b, "traceback", tb)
	*p = b
	d.end(p, "task-retried")
}

func (d *Dispatcher) taskRevoked(id []byte, reason string) {
	if !d.taskOn.Load() {
		return
	}
	p := d.begin()
	b := appendBytesOrNull(*p, "uuid", id)
	if reason == "terminated" {
		// revoke(terminate=True): the engine cancelled the task's context,
		// which Celery reports as terminated by SIGTERM.
		b = appendBool(b, "terminated", true)
		b = appendInt(b, "signum", 15)
	} else {
		b = appendBool(b, "terminated", false)
		b = append(appendKey(b, "signum"), "null"...)
	}
	b = appendBool(b, "expired", reason == "expired")
	*p = b
	d.end(p, "task-revoked")
}

func (d *Dispatcher) taskRejected(m *codec.Message, reason error) {
	if !d.taskOn.Load() {
		return
	}
	p := d.begin()
	b := appendBytesOrNull(*p, "uuid", m.ID)
	if errors.Is(reason, engine.ErrNotRegistered) {
		// As Celery's on_unknown_task.
		exc := append([]byte("NotRegistered("), appendPyStr(nil, string(m.Task))...)
		b = appendStr(b, "exception", string(append(exc, ')')))
		*p = b
		d.end(p, "task-failed")
		return
	}
	var rej *engine.RejectError
	requeue := errors.As(reason, &rej) && rej.Requeue
	*p = appendBool(b, "requeue", requeue)
	d.end(p, "task-rejected")
}

// workerEvent queues worker-online, worker-heartbeat or worker-offline.
func (d *Dispatcher) workerEvent(typ string, freq time.Duration) {
	var active, processed int64
	if w := d.worker.Load(); w != nil {
		active = int64(len(w.Active()))
		st := w.Stats()
		processed = st.Succeeded.Load() + st.Failed.Load() + st.Retried.Load()
	}
	now := time.Now()
	b := d.appendHead(nil, d.clock.Forward())
	b = appendKey(b, "freq")
	b = control.AppendFloat(b, freq.Seconds())
	b = appendInt(b, "active", active)
	b = appendInt(b, "processed", processed)
	b = appendKey(b, "loadavg")
	la := loadavg()
	b = append(b, '[')
	for i, v := range la {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = control.AppendFloat(b, v)
	}
	b = append(b, ']')
	b = appendStr(b, "sw_ident", "celerity")
	b = appendStr(b, "sw_ver", control.Version())
	b = appendStr(b, "sw_sys", sysName(runtime.GOOS))
	b = appendTail(b, now, typ)
	d.pushSingle(strings.ReplaceAll(typ, "-", "."), b)
}

// Send publishes a custom event of type typ ("custom-thing"; routing key
// "custom.thing") with extra fields, as Celery's dispatcher.send does;
// values must encode as JSON.
func (d *Dispatcher) Send(typ string, fields map[string]any) error {
	b := d.appendHead(nil, d.clock.Forward())
	for k, v := range fields {
		switch k {
		case "hostname", "utcoffset", "pid", "clock", "timestamp", "type":
			continue
		}
		enc, err := json.Marshal(v)
		if err != nil {
			return fmt.Errorf("events: field %s of %s: %w", k, typ, err)
		}
		b = append(appendKey(b, k), enc...)
	}
	b = appendTail(b, time.Now(), typ)
	d.pushSingle(strings.ReplaceAll(typ, "-", "."), b)
	return nil
}

// run is the publisher goroutine.
func (d *Dispatcher) run() {
	defer close(d.done)
	flush := time.NewTicker(d.opts.FlushInterval)
	defer flush.Stop()
	var beat <-chan time.Time
	var beatTicker *time.Ticker
	defer func() {
		if beatTicker != nil {
			beatTicker.Stop()
		}
	}()
	var out []*batch
	for {
		partial := false
		select {
		case <-d.kick:
		case <-flush.C:
			partial = true
		case <-d.hb:
			if beatTicker == nil {
				beatTicker = time.NewTicker(d.opts.HeartbeatInterval)
				beat = beatTicker.C
			}
		case <-beat:
			d.workerEvent("worker-heartbeat", d.opts.HeartbeatInterval)
		case <-d.stop:
			out = d.take(out[:0], true)
			d.publishAll(out)
			return
		}
		out = d.take(out[:0], partial)
		d.publishAll(out)
	}
}

// take moves the ready batches (and, with partial, the current one) to out.
func (d *Dispatcher) take(out []*batch, partial bool) []*batch {
	d.mu.Lock()
	defer d.mu.Unlock()
	if partial && d.cur != nil && d.cur.n > 0 {
		d.ready = append(d.ready, d.cur)
		d.cur = nil
	}
	out = append(out, d.ready...)
	d.taken += len(d.ready)
	clear(d.ready)
	d.ready = d.ready[:0]
	return out
}

// multiPublisher is a bus that sends several events in one round trip
// (control.RedisBus).
type multiPublisher interface {
	PublishEvents(ctx context.Context, rks []string, msgs []*control.Message) error
}

// maxPipeline bounds the batches sent in one round trip.
const maxPipeline = 64

func (d *Dispatcher) publishAll(bs []*batch) {
	if mp, ok := d.bus.(multiPublisher); ok && len(bs) > 1 {
		for rest := bs; len(rest) > 0; {
			n := min(len(rest), maxPipeline)
			d.publishMulti(mp, rest[:n])
			rest = rest[n:]
		}
	} else {
		for _, b := range bs {
			d.publish(b)
		}
	}
	d.mu.Lock()
	d.taken -= len(bs)
	for _, b := range bs {
		if cap(b.buf) <= 1<<20 {
			d.free = append(d.free, b)
		}
	}
	d.mu.Unlock()
	clear(bs)
}

func (d *Dispatcher) message(b *batch) control.Message {
	if b.multi {
		b.buf = append(b.buf, ']')
	}
	return control.Message{Body: b.buf, Transient: true, Headers: control.Headers{Hostname: d.hostname}}
}

func (d *Dispatcher) publish(b *batch) {
	m := d.message(b)
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.PublishTimeout)
	err := d.bus.PublishEvent(ctx, b.rk, &m)
	cancel()
	d.account(err, 1, b.n)
}

// publishMulti sends bs in one round trip; a failure drops them all.
func (d *Dispatcher) publishMulti(mp multiPublisher, bs []*batch) {
	rks := make([]string, len(bs))
	msgs := make([]control.Message, len(bs))
	ptrs := make([]*control.Message, len(bs))
	n := 0
	for i, b := range bs {
		rks[i], msgs[i], ptrs[i] = b.rk, d.message(b), &msgs[i]
		n += b.n
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.opts.PublishTimeout)
	err := mp.PublishEvents(ctx, rks, ptrs)
	cancel()
	d.account(err, len(bs), n)
}

// account counts a publish of batches messages holding events events.
func (d *Dispatcher) account(err error, batches, events int) {
	if err != nil {
		d.pubErrors.Add(1)
		d.dropped.Add(int64(events))
		now := time.Now().UnixNano()
		if last := d.lastErrLog.Load(); now-last > int64(10*time.Second) && d.lastErrLog.CompareAndSwap(last, now) {
			d.log.Warn("events: publish failed; events dropped", "err", err, "dropped_total", d.dropped.Load())
		}
		return
	}
	d.batches.Add(int64(batches))
	d.sent.Add(int64(events))
}

// loadavg returns the 1, 5 and 15 minute load averages rounded to two
// decimals, as Celery reports them (zeros where the system has none).
func loadavg() [3]float64 {
	var out [3]float64
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return out
	}
	for i, f := range strings.Fields(string(data)) {
		if i >= 3 {
			break
		}
		v, err := strconv.ParseFloat(f, 64)
		if err == nil {
			out[i] = float64(int64(v*100+0.5)) / 100
		}
	}
	return out
}
