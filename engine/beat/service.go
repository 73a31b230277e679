package beat

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec/compress"
	"github.com/celerity-go/celerity/codec/serializer"
	"github.com/celerity-go/celerity/engine"
)

// Defaults of ServiceConfig.
const (
	// DefaultMaxInterval is Celery's default beat_max_loop_interval.
	DefaultMaxInterval = 300 * time.Second
	// DefaultLeaseTTL is how long a lease lasts unless renewed.
	DefaultLeaseTTL = 10 * time.Second
	// DefaultRetryInterval is how often a standby tries to take the lease.
	DefaultRetryInterval = time.Second
)

// releaseTimeout bounds the lease release at shutdown.
const releaseTimeout = 2 * time.Second

// Sender sends one task message. *engine.App implements it; the service
// calls it from its loop goroutine only.
type Sender interface {
	SendRaw(ctx context.Context, name string, args, kwargs []byte, opts ...engine.Option) error
}

var _ Sender = (*engine.App)(nil)

// ServiceConfig configures a Service. Zero values take the defaults.
type ServiceConfig struct {
	// Entries is the schedule (defined in Go, or loaded with
	// LoadConfigFile). Names must be unique. The Service owns the entries
	// from NewService on: their LastRunAt and TotalRunCount are set from
	// the state when Run starts and advance as runs are sent; read them
	// with Service.State.
	Entries []*Entry
	// Location is Celery's timezone: the location the crontabs were
	// parsed in (the loc given to the config loaders), recorded in the
	// state file. Default UTC.
	Location *time.Location
	// StateFile is Celery's beat_schedule_filename: where the last run of
	// each entry is kept across restarts (see WriteStateFile). Empty:
	// no local state, every start begins afresh (or from the Locker's
	// records).
	StateFile string
	// MaxInterval is Celery's beat_max_loop_interval: the longest the
	// loop sleeps between checks. Default DefaultMaxInterval (300s).
	MaxInterval time.Duration
	// Locker is shared by the beat instances that must not double-fire
	// (a RedisLocker on the broker's Redis). Default: a private
	// MemoryLocker, so this instance is always the leader.
	Locker Locker
	// LeaseTTL is how long the lease lasts unless renewed; the leader
	// renews it every LeaseTTL/3. A leader that dies is replaced within
	// about LeaseTTL + RetryInterval. Default DefaultLeaseTTL (10s).
	LeaseTTL time.Duration
	// RetryInterval is how often a standby tries to take the lease, and
	// how soon the leader retries a claim that failed. Default the
	// smaller of DefaultRetryInterval (1s) and LeaseTTL/3.
	RetryInterval time.Duration
	// Name identifies this instance in logs and in the lease token.
	// Default "beat@<host>:<pid>".
	Name string
	// Logger receives the service's logs. Default: the app's logger when
	// the Sender is an *engine.App, else a quiet logger that passes
	// warnings and errors to slog.Default().
	Logger *slog.Logger
	// OnSend, if set, is called by the loop goroutine after each send
	// attempt, before the next one. It must not block for long.
	OnSend func(Sent)
}

// Sent describes one send attempt, for ServiceConfig.OnSend.
type Sent struct {
	Entry, Task string
	ID          string    // the task id: TaskID(Entry, Task, Tick)
	Tick        time.Time // the scheduled time of the run, its identity
	At          time.Time // when it was claimed: the entry's new LastRunAt
	Err         error     // nil once the broker took the message
}

// Service is celerity beat: it sends each entry's task when the entry is
// due, through a Sender, while it holds the Locker's lease; see the
// package documentation for the loop, the lease and shutdown.
//
// Run runs it; cancelling Run's context is a soft stop, Terminate a hard
// stop. IsLeader, State and Terminate are safe for concurrent use with
// Run.
type Service struct {
	cfg    ServiceConfig
	send   Sender
	locker Locker
	token  string
	log    *slog.Logger
	now    func() time.Time
	// opts holds the send options of each entry, with room for the task id.
	opts [][]engine.Option

	hard      context.Context // cancelled by Terminate
	terminate context.CancelFunc
	ran       atomic.Bool
	leader    atomic.Bool

	mu      sync.Mutex // guards the entries' run state for State; only the loop writes it
	entries []*Entry

	// Loop-owned.
	leaseUntil time.Time // the lease is ours until then, by our clock
	renewAt    time.Time
	synced     bool // the entries reflect the Locker's records since we took the lease
	// known[i]: entries[i].LastRunAt is a real last run (from the state
	// file or the records), not Restore's start-time default.
	known []bool
	dirty bool // the state file is behind the entries
	batch []pending
}

// pending is one claimed run about to be sent.
type pending struct {
	i    int
	tick time.Time
}

// NewService returns a beat service sending through send (normally the
// *engine.App) on the schedule of cfg. It checks the entries (names,
// tasks, JSON arguments, options the engine accepts) and the durations;
// errors wrap ErrServiceConfig.
func NewService(send Sender, cfg ServiceConfig) (*Service, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrServiceConfig, fmt.Sprintf(format, a...))
	}
	if send == nil {
		return nil, bad("no Sender")
	}
	for name, d := range map[string]time.Duration{"MaxInterval": cfg.MaxInterval, "LeaseTTL": cfg.LeaseTTL, "RetryInterval": cfg.RetryInterval} {
		if d < 0 {
			return nil, bad("%s %v is negative", name, d)
		}
	}
	if cfg.LeaseTTL > 0 && cfg.LeaseTTL < time.Millisecond {
		return nil, bad("LeaseTTL %v is under a millisecond", cfg.LeaseTTL)
	}
	if cfg.MaxInterval == 0 {
		cfg.MaxInterval = DefaultMaxInterval
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.RetryInterval == 0 {
		cfg.RetryInterval = min(DefaultRetryInterval, cfg.LeaseTTL/3)
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Name == "" {
		host, _ := os.Hostname()
		cfg.Name = "beat@" + host + ":" + strconv.Itoa(os.Getpid())
	}
	if cfg.Logger == nil {
		if app, ok := send.(*engine.App); ok {
			cfg.Logger = app.Config().Logger
		} else {
			cfg.Logger = slog.New(quietHandler{slog.Default().Handler()})
		}
	}
	s := &Service{cfg: cfg, send: send, locker: cfg.Locker, log: cfg.Logger, now: time.Now,
		entries: cfg.Entries, opts: make([][]engine.Option, len(cfg.Entries)), known: make([]bool, len(cfg.Entries))}
	if s.locker == nil {
		s.locker = NewMemoryLocker()
	}
	seen := make(map[string]bool, len(cfg.Entries))
	for i, e := range cfg.Entries {
		if e == nil {
			return nil, bad("entry %d is nil", i)
		}
		if e.Name == "" {
			return nil, bad("entry %d has no name", i)
		}
		if seen[e.Name] {
			return nil, bad("entry %s appears twice", quote(e.Name))
		}
		seen[e.Name] = true
		opts, err := sendOptions(e)
		if err != nil {
			return nil, bad("entry %s: %v", quote(e.Name), err)
		}
		s.opts[i] = opts
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("beat: lease token: %w", err)
	}
	s.token = cfg.Name + "/" + hex.EncodeToString(rnd[:])
	s.hard, s.terminate = context.WithCancel(context.Background())
	return s, nil
}

// sendOptions checks e and returns its apply_async options as engine
// options, with capacity for one more (the task id).
func sendOptions(e *Entry) ([]engine.Option, error) {
	if e.Task == "" {
		return nil, errors.New("no task")
	}
	if e.Schedule == nil {
		return nil, errors.New("no schedule")
	}
	if err := rawJSON(e.Args, '[', "args", "array"); err != nil {
		return nil, err
	}
	if err := rawJSON(e.Kwargs, '{', "kwargs", "object"); err != nil {
		return nil, err
	}
	o := e.Options
	var opts []engine.Option
	if o.Queue != "" {
		opts = append(opts, engine.Queue(o.Queue))
	}
	if o.Exchange != "" {
		opts = append(opts, engine.Exchange(o.Exchange))
	}
	if o.RoutingKey != "" {
		opts = append(opts, engine.RoutingKey(o.RoutingKey))
	}
	if o.HasPriority {
		if o.Priority > 9 {
			return nil, fmt.Errorf("priority %d: the engine sends priorities 0-9", o.Priority)
		}
		opts = append(opts, engine.Priority(int(o.Priority)))
	}
	if o.Expires < 0 || o.TimeLimit < 0 || o.SoftTimeLimit < 0 {
		return nil, errors.New("negative expires, time_limit or soft_time_limit")
	}
	if o.Expires > 0 {
		opts = append(opts, engine.ExpiresIn(o.Expires))
	}
	if o.TimeLimit > 0 {
		opts = append(opts, engine.TimeLimit(o.TimeLimit))
	}
	if o.SoftTimeLimit > 0 {
		opts = append(opts, engine.SoftTimeLimit(o.SoftTimeLimit))
	}
	if o.Serializer != "" {
		if _, ok := serializer.ByName(o.Serializer); !ok {
			return nil, fmt.Errorf("unknown serializer %s", quote(o.Serializer))
		}
		opts = append(opts, engine.Serializer(o.Serializer))
	}
	if o.Compression != "" {
		if _, ok := compress.Lookup(o.Compression); !ok {
			return nil, fmt.Errorf("unknown compression %s", quote(o.Compression))
		}
		opts = append(opts, engine.Compression(o.Compression))
	}
	if len(o.Headers) > 0 {
		if err := rawJSON(o.Headers, '{', "headers", "object"); err != nil {
			return nil, err
		}
		var h map[string]any
		if err := json.Unmarshal(o.Headers, &h); err != nil {
			return nil, fmt.Errorf("headers: %v", err)
		}
		opts = append(opts, engine.Headers(h))
	}
	return append(make([]engine.Option, 0, len(opts)+1), opts...), nil
}

// rawJSON checks that raw is empty or valid JSON starting with open.
func rawJSON(raw []byte, open byte, what, kind string) error {
	if len(raw) == 0 {
		return nil
	}
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || t[0] != open || !json.Valid(t) {
		return fmt.Errorf("%s: want a JSON %s", what, kind)
	}
	return nil
}

// TaskID returns the task id of the run of entry (sending task) scheduled
// at tick: a UUID (version 5 layout) from a SHA-1 of the three. A run has
// the same id whichever instance sends it, so a message sent twice for one
// run would be visible as such (beat never does); two runs never share an
// id. Separate beat deployments with the same entry, task and crontab
// produce the same ids for the same minutes.
func TaskID(entry, task string, tick time.Time) string {
	h := sha1.New()
	var b []byte
	b = append(b, "celerity.beat\x00"...)
	b = binary.AppendUvarint(b, uint64(len(entry)))
	b = append(b, entry...)
	b = binary.AppendUvarint(b, uint64(len(task)))
	b = append(b, task...)
	b = tick.UTC().AppendFormat(b, time.RFC3339Nano)
	h.Write(b)
	var sum [sha1.Size]byte
	u := h.Sum(sum[:0])[:16]
	u[6] = u[6]&0x0f | 0x50
	u[8] = u[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], u[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], u[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], u[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], u[8:10])
	out[23] = '-'
	hex.Encode(out[24:], u[10:])
	return string(out[:])
}

// IsLeader reports whether the service holds the lease and sends.
func (s *Service) IsLeader() bool { return s.leader.Load() }

// State returns a snapshot of the entries' run state, as the state file
// records it.
func (s *Service) State() *State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Snapshot(s.entries, s.cfg.Location)
}

// Terminate makes Run stop hard: a send or Locker call in flight is
// cancelled (a run claimed but not sent is then lost, never sent twice)
// and Run returns after saving the state and releasing the lease. It
// may be called before, during or after Run.
func (s *Service) Terminate() { s.terminate() }

// Run restores the state file, then loops until ctx is cancelled (soft
// stop: the runs being sent are sent) or Terminate is called (hard stop).
// Either way it then saves the state file and releases the lease, in
// that order. It returns an error only if the state file cannot be read
// (ErrState, or an I/O error); later failures (broker, Locker, state
// writes) are logged and retried. A Service runs once: a second Run
// returns ErrRunning.
func (s *Service) Run(ctx context.Context) error {
	if s.ran.Swap(true) {
		return ErrRunning
	}
	ioCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(s.hard, cancel)()
	if err := s.restore(); err != nil {
		return err
	}
	s.log.Info("beat: starting", "name", s.cfg.Name, "entries", len(s.entries), "max_interval", s.cfg.MaxInterval)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for ctx.Err() == nil && ioCtx.Err() == nil {
		wake := s.step(ioCtx, s.now())
		d := wake.Sub(s.now())
		if d <= 0 {
			continue
		}
		timer.Reset(d)
		select {
		case <-timer.C:
		case <-ctx.Done():
		case <-ioCtx.Done():
		}
	}
	s.save()
	if s.leader.Load() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), releaseTimeout)
		if err := s.locker.Release(rctx, s.token); err != nil {
			s.log.Warn("beat: release lease", "err", err)
		}
		cancel()
		s.leader.Store(false)
	}
	s.log.Info("beat: stopped", "name", s.cfg.Name)
	return nil
}

// restore applies the state file to the entries (State.Restore).
func (s *Service) restore() error {
	var st *State
	if s.cfg.StateFile != "" {
		var err error
		st, err = ReadStateFile(s.cfg.StateFile)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	s.mu.Lock()
	reset := st.Restore(s.entries, s.cfg.Location, s.now())
	s.mu.Unlock()
	s.known = make([]bool, len(s.entries))
	if st != nil && !reset {
		for i, e := range s.entries {
			es, ok := st.Entries[e.Name]
			s.known[i] = ok && !es.LastRunAt.IsZero()
		}
	}
	if reset {
		s.log.Warn("beat: the timezone changed since the state was saved; every entry starts afresh",
			"state_timezone", st.Timezone, "timezone", s.cfg.Location.String())
	}
	return nil
}

// step is one iteration of the loop at now: take or renew the lease,
// claim and send what is due, and return when to wake up next.
func (s *Service) step(ctx context.Context, now time.Time) time.Time {
	wake := now.Add(s.cfg.MaxInterval)
	soon := func(d time.Duration) {
		if d < wake.Sub(now) {
			wake = now.Add(d)
		}
	}
	if !s.lease(ctx, now) {
		soon(s.cfg.RetryInterval)
		return wake
	}
	soon(s.renewAt.Sub(now))
	if !s.synced {
		if err := s.sync(ctx); err != nil {
			s.fail("beat: load the shared schedule state", err)
			soon(s.cfg.RetryInterval)
			return wake
		}
	}
	s.batch = s.batch[:0]
claims:
	for i, e := range s.entries {
		due, next := e.IsDue(now)
		if !due {
			soon(next)
			continue
		}
		tick := e.Schedule.Next(e.LastRunAt)
		err := s.claim(ctx, e.Name, Record{Tick: tick, LastRunAt: now, TotalRunCount: e.TotalRunCount + 1})
		switch {
		case err == nil:
			s.mu.Lock()
			e.Advance(now)
			s.mu.Unlock()
			s.dirty = true
			s.batch = append(s.batch, pending{i, tick})
			_, next = e.IsDue(now)
			soon(next)
		case errors.Is(err, ErrLeaseLost):
			s.stepDown(err)
			soon(s.cfg.RetryInterval)
			break claims
		case errors.Is(err, ErrTickClaimed):
			// Someone else advanced the entry: reload the records.
			s.log.Warn("beat: run already claimed; reloading the shared state", "entry", e.Name, "err", err)
			s.synced = false
			soon(s.cfg.RetryInterval)
		default:
			s.fail("beat: claim", err, "entry", e.Name)
			soon(s.cfg.RetryInterval)
		}
	}
	// The state file is written before sending: a crash in between loses
	// these runs rather than repeating them after a restart.
	if len(s.batch) > 0 {
		s.save()
	}
	for _, p := range s.batch {
		s.sendRun(ctx, p)
	}
	if floor := now.Add(time.Millisecond); wake.Before(floor) {
		wake = floor // never spin
	}
	return wake
}

// lease takes or renews the lease when due and reports whether this
// instance is the leader.
func (s *Service) lease(ctx context.Context, now time.Time) bool {
	leader := s.leader.Load()
	if leader && now.Before(s.renewAt) {
		return true
	}
	lctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseTTL)
	held, err := s.locker.Acquire(lctx, s.token, s.cfg.LeaseTTL)
	cancel()
	switch {
	case err != nil && leader && now.Before(s.leaseUntil):
		// Claims are fenced by the lease, so carry on until it would
		// have expired and retry the renewal sooner.
		s.fail("beat: renew lease", err)
		s.renewAt = minTime(now.Add(s.cfg.RetryInterval), s.leaseUntil)
		return true
	case err != nil:
		if leader {
			s.stepDown(err)
		} else {
			s.fail("beat: acquire lease", err)
		}
		return false
	case !held:
		if leader {
			s.stepDown(errors.New("another instance holds the lease"))
		}
		return false
	}
	if !leader || !now.Before(s.leaseUntil) {
		// A fresh lease: another instance may have sent in between.
		s.synced = false
		s.leader.Store(true)
		s.log.Info("beat: leader", "name", s.cfg.Name)
	}
	s.leaseUntil = now.Add(s.cfg.LeaseTTL)
	s.renewAt = now.Add(s.cfg.LeaseTTL / 3)
	return true
}

// sync brings the entries up to the Locker's records: an entry takes its
// record unless its own last run is a real one (from the state file or
// an earlier lease) and later. Entries with no record get one (their
// last run as the tick), so that a successor schedules from the same
// point rather than from its own start.
func (s *Service) sync(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseTTL)
	recs, err := s.locker.Load(lctx)
	cancel()
	if err != nil {
		return err
	}
	s.mu.Lock()
	for i, e := range s.entries {
		r, ok := recs[e.Name]
		if ok && !(s.known[i] && e.LastRunAt.After(r.LastRunAt)) {
			e.LastRunAt, e.TotalRunCount = r.LastRunAt, r.TotalRunCount
			s.dirty = true
		}
	}
	s.mu.Unlock()
	for i, e := range s.entries {
		s.known[i] = true
		if _, ok := recs[e.Name]; ok {
			continue
		}
		err := s.claim(ctx, e.Name, Record{Tick: e.LastRunAt, LastRunAt: e.LastRunAt, TotalRunCount: e.TotalRunCount})
		if errors.Is(err, ErrLeaseLost) {
			s.stepDown(err)
			return err
		}
		if err != nil {
			return err
		}
	}
	s.synced = true
	return nil
}

// claim claims rec for entry name. Like every Locker call it is bounded
// by LeaseTTL: past that, the lease it relies on may be gone anyway.
func (s *Service) claim(ctx context.Context, name string, rec Record) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.LeaseTTL)
	defer cancel()
	return s.locker.Claim(ctx, s.token, name, rec)
}

func (s *Service) stepDown(why error) {
	if s.leader.Swap(false) {
		s.log.Warn("beat: no longer the leader", "name", s.cfg.Name, "why", why)
	}
	s.synced = false
}

// fail logs err unless it comes from a hard stop.
func (s *Service) fail(msg string, err error, args ...any) {
	if errors.Is(err, context.Canceled) && s.hard.Err() != nil {
		return
	}
	s.log.Error(msg, append(args, "err", err)...)
}

// sendRun sends one claimed run.
func (s *Service) sendRun(ctx context.Context, p pending) {
	e := s.entries[p.i]
	id := TaskID(e.Name, e.Task, p.tick)
	opts := append(s.opts[p.i], engine.TaskID(id))
	err := s.send.SendRaw(ctx, e.Task, e.Args, e.Kwargs, opts...)
	if err != nil {
		s.fail("beat: send", err, "entry", e.Name, "task", e.Task, "id", id)
	} else {
		s.log.Info("beat: sent due task", "entry", e.Name, "task", e.Task, "id", id, "tick", p.tick)
	}
	if s.cfg.OnSend != nil {
		s.cfg.OnSend(Sent{Entry: e.Name, Task: e.Task, ID: id, Tick: p.tick, At: e.LastRunAt, Err: err})
	}
}

// save writes the state file if the entries changed since the last write.
func (s *Service) save() {
	if s.cfg.StateFile == "" || !s.dirty {
		return
	}
	st := s.State()
	if err := WriteStateFile(s.cfg.StateFile, st); err != nil {
		s.log.Error("beat: save state", "err", err)
		return
	}
	s.dirty = false
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// quietHandler passes on warnings and errors only.
type quietHandler struct{ slog.Handler }

func (h quietHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}
