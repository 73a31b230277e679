package control

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec/serializer"
	"github.com/celerity-go/celerity/engine"
)

// Kind tells Celery's two families of commands apart: Inspect commands
// read state (celery inspect), Control commands change it (celery control).
type Kind uint8

const (
	// KindControl is a command that changes the worker (celery control).
	KindControl Kind = iota
	// KindInspect is a command that reports state (celery inspect).
	KindInspect
)

func (k Kind) String() string {
	if k == KindInspect {
		return "inspect"
	}
	return "control"
}

// Command handles one remote-control command on a worker. Its return
// value, encoded as JSON, is the reply (Celery's convention: {"ok": ...}
// or {"error": ...} for control commands, plain data for inspect
// commands; see OK); an error is replied as {"error": err.Error()}.
type Command func(ctx context.Context, r *Request) (any, error)

// Request is one command as a worker received it. It is valid during the
// Command call.
type Request struct {
	// Method is the command name.
	Method string
	// Args is the "arguments" JSON object ({} when none were sent).
	Args json.RawMessage
	// Worker is the worker the command addresses.
	Worker *engine.Worker
	// Server is the server running the command.
	Server *Server
}

// Decode decodes the arguments into v, a pointer to a struct with json
// tags.
func (r *Request) Decode(v any) error {
	if err := json.Unmarshal(r.Args, v); err != nil {
		return fmt.Errorf("%w: arguments of %s: %v", ErrBadMessage, r.Method, err)
	}
	return nil
}

// OK returns Celery's success reply, {"ok": v}.
func OK(v any) map[string]any { return map[string]any{"ok": v} }

// errNoReply makes the server send no reply (shutdown, as in Celery).
var errNoReply = errors.New("control: no reply")

type commandDef struct {
	kind Kind
	fn   Command
}

// registry holds the commands every Server knows besides the built-ins,
// like Celery's global Panel.
var registry = struct {
	sync.RWMutex
	m map[string]commandDef
}{m: map[string]commandDef{}}

// Register adds a command every Server answers (Celery's
// @control_command / @inspect_command), replacing a built-in or earlier
// command of the same name. Register before starting servers; it is safe
// for concurrent use.
func Register(name string, kind Kind, c Command) {
	registry.Lock()
	registry.m[name] = commandDef{kind, c}
	registry.Unlock()
}

// EventSwitch is what the enable_events, disable_events and heartbeat
// commands act on; *events.Dispatcher implements it.
type EventSwitch interface {
	// EnableTaskEvents turns task events on and reports whether they were off.
	EnableTaskEvents() bool
	// DisableTaskEvents turns task events off and reports whether they were on.
	DisableTaskEvents() bool
	// SendHeartbeat sends a worker-heartbeat event now.
	SendHeartbeat()
}

// ServerOptions configures a Server.
type ServerOptions struct {
	// Clock is the worker's Lamport clock, shared with its event
	// dispatcher (default: a new one).
	Clock *Clock
	// Events is the worker's event dispatcher, for enable_events,
	// disable_events and heartbeat (nil: those commands reply an error).
	Events EventSwitch
	// StateDB is a file that keeps the revoked task ids across restarts,
	// Celery's --statedb (JSON here, not Python's shelve format). Empty:
	// revocations live in memory only.
	StateDB string
	// Mingle asks the other workers for their revoked ids at start, as
	// Celery's mingle does (a hello broadcast, answered within a second).
	Mingle bool
	// Autoscale, if set, is what the autoscale command calls with the new
	// max and min (Celery's autoscaler.update); it returns the bounds in
	// force. With it, pool_grow and pool_shrink reply an error, as
	// Celery's do while autoscaling. Nil: autoscale replies an error, as
	// Celery's does from a worker started without --autoscale.
	Autoscale func(max, min int) (newMax, newMin int, err error)
	// Logger receives the server's log (default: the app's logger).
	Logger *slog.Logger
}

// Server is a worker's mailbox: it answers the remote-control commands
// broadcast to it (Celery's pidbox Node), replying to those that want a
// reply. Commands run one at a time on the server's goroutine; a command
// that arrives while 64 are waiting is dropped with a warning. Create it
// with NewServer before the worker runs, then Start it. It is safe for
// concurrent use.
type Server struct {
	bus      Bus
	w        *engine.Worker
	app      *engine.App
	hostname string
	opts     ServerOptions
	clock    *Clock
	log      *slog.Logger
	started  time.Time

	mu       sync.Mutex
	handlers map[string]commandDef
	listener Listener
	queue    chan *Message
	stop     context.CancelFunc
	done     chan struct{}

	totals   counters
	scaleMin atomic.Int64 // autoscale's min, for stats
}

// NewServer returns the mailbox of worker w on bus. It installs hooks on
// w's app (per-task totals for stats), so call it before w.Run.
func NewServer(bus Bus, w *engine.Worker, opts ServerOptions) *Server {
	if opts.Clock == nil {
		opts.Clock = new(Clock)
	}
	if opts.Logger == nil {
		opts.Logger = w.App().Config().Logger
	}
	s := &Server{bus: bus, w: w, app: w.App(), hostname: w.Hostname(), opts: opts, clock: opts.Clock,
		log: opts.Logger, handlers: map[string]commandDef{}}
	s.totals.init()
	s.app.AddHooks(engine.Hooks{TaskPrerun: func(t *engine.Task) { s.totals.inc(t.Name) }})
	return s
}

// Handle adds a command to this server only, replacing any of the same
// name.
func (s *Server) Handle(name string, kind Kind, c Command) {
	s.mu.Lock()
	s.handlers[name] = commandDef{kind, c}
	s.mu.Unlock()
}

// Hostname returns the node name the server answers to.
func (s *Server) Hostname() string { return s.hostname }

// Clock returns the server's Lamport clock.
func (s *Server) Clock() *Clock { return s.clock }

// queueSize bounds the commands waiting to run.
const queueSize = 64

// Start loads the state file (if any), subscribes to the mailbox and
// starts answering; it returns once commands can be received. With
// Mingle, the hello exchange runs in the background.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	if s.listener != nil {
		s.mu.Unlock()
		return errors.New("control: server already started")
	}
	s.mu.Unlock()
	if s.opts.StateDB != "" {
		if err := s.loadState(); err != nil {
			return err
		}
	}
	s.started = time.Now()
	s.queue = make(chan *Message, queueSize)
	l, err := s.bus.ListenCommands(ctx, s.hostname, s.enqueue)
	if err != nil {
		return fmt.Errorf("control: listen for commands as %s: %w", s.hostname, err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	s.mu.Lock()
	s.listener, s.stop, s.done = l, stop, make(chan struct{})
	s.mu.Unlock()
	go s.run(runCtx)
	if s.opts.Mingle {
		go s.mingle(runCtx)
	}
	return nil
}

// Close stops answering and, with a state file, saves the revoked ids.
func (s *Server) Close() error {
	s.mu.Lock()
	l, stop, done := s.listener, s.stop, s.done
	s.listener = nil
	s.mu.Unlock()
	if l == nil {
		return nil
	}
	l.Close()
	stop()
	<-done
	if s.opts.StateDB != "" {
		return s.saveState()
	}
	return nil
}

// enqueue runs on the bus's goroutine: it copies the message and queues
// it for run.
func (s *Server) enqueue(m *Message) {
	c := *m
	c.Body = append([]byte(nil), m.Body...)
	select {
	case s.queue <- &c:
	default:
		s.log.Warn("control: command queue full; dropping a command", "hostname", s.hostname)
	}
}

func (s *Server) run(ctx context.Context) {
	defer close(s.done)
	var saveTick <-chan time.Time
	if s.opts.StateDB != "" {
		t := time.NewTicker(time.Minute)
		defer t.Stop()
		saveTick = t.C
	}
	for {
		select {
		case m := <-s.queue:
			s.handle(ctx, m)
		case <-saveTick:
			if err := s.saveState(); err != nil {
				s.log.Warn("control: saving state", "err", err)
			}
		case <-ctx.Done():
			return
		}
	}
}

// commandBody is kombu's mailbox message (celery-wire.md §8.2).
type commandBody struct {
	Method      string          `json:"method"`
	Arguments   json.RawMessage `json:"arguments"`
	Destination []string        `json:"destination"`
	Pattern     *string         `json:"pattern"`
	Matcher     *string         `json:"matcher"`
	Ticket      string          `json:"ticket,omitempty"`
	ReplyTo     *replyTo        `json:"reply_to,omitempty"`
}

type replyTo struct {
	Exchange   string `json:"exchange"`
	RoutingKey string `json:"routing_key"`
}

// BodyJSON returns m's body as JSON, transcoding msgpack and YAML as
// Celery's accept_content allows; pickle is refused (ErrBadMessage). The
// result may alias m.Body.
func BodyJSON(m *Message) ([]byte, error) {
	ct := m.ContentType
	if ct == "" || ct == "application/json" {
		return m.Body, nil
	}
	ser, ok := serializer.ByContentType([]byte(ct))
	if !ok {
		return nil, fmt.Errorf("%w: content type %q", ErrBadMessage, ct)
	}
	out, err := ser.ToJSON(nil, m.Body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s body: %v", ErrBadMessage, ct, err)
	}
	return out, nil
}

// handle decodes, selects, runs and answers one command.
func (s *Server) handle(ctx context.Context, m *Message) {
	if m.Headers.Clock > 0 {
		s.clock.Adjust(m.Headers.Clock)
	}
	raw, err := BodyJSON(m)
	if err != nil {
		s.log.Warn("control: dropping command", "err", err)
		return
	}
	var body commandBody
	if err := json.Unmarshal(raw, &body); err != nil || body.Method == "" {
		s.log.Warn("control: dropping undecodable command", "err", err, "body", truncate(raw, 200))
		return
	}
	if !s.selected(&body) {
		return
	}
	value, err := s.Dispatch(ctx, body.Method, body.Arguments)
	if errors.Is(err, errNoReply) || body.ReplyTo == nil || body.ReplyTo.RoutingKey == "" {
		return
	}
	if err != nil {
		value = map[string]any{"error": err.Error()}
	}
	out, err := json.Marshal(map[string]any{s.hostname: value})
	if err != nil {
		out, _ = json.Marshal(map[string]any{s.hostname: map[string]any{"error": "cannot encode reply: " + err.Error()}})
	}
	reply := Message{Body: out, Transient: true, Headers: Headers{Ticket: body.Ticket, Clock: s.clock.Forward()}}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.bus.PublishReply(pctx, body.ReplyTo.RoutingKey, &reply); err != nil {
		s.log.Warn("control: reply failed", "method", body.Method, "err", err)
	}
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// selected applies kombu's destination, pattern and matcher rules.
func (s *Server) selected(b *commandBody) bool {
	switch {
	case len(b.Destination) > 0:
		return slices.Contains(b.Destination, s.hostname)
	case b.Pattern != nil && *b.Pattern != "" && b.Matcher != nil && *b.Matcher != "":
		ok, err := Match(s.hostname, *b.Pattern, *b.Matcher)
		if err != nil {
			s.log.Warn("control: bad command pattern", "err", err)
		}
		return ok
	}
	return true
}

// Match reports whether node matches pattern with kombu's matcher "glob"
// (fnmatch) or "pcre" (a regular expression matched at the start, as
// Python's re.match).
func Match(node, pattern, matcher string) (bool, error) {
	var expr string
	switch matcher {
	case "glob":
		expr = globRegexp(pattern)
	case "pcre":
		expr = `^(?:` + pattern + `)`
	default:
		return false, fmt.Errorf("control: unknown matcher %q (want glob or pcre)", matcher)
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return false, fmt.Errorf("control: pattern %q: %w", pattern, err)
	}
	return re.MatchString(node), nil
}

// globRegexp translates an fnmatch pattern into a whole-string regexp
// (fnmatch.translate: '*' and '?' also match '/', [!...] negates).
func globRegexp(p string) string {
	var b strings.Builder
	b.WriteString(`^(?s:`)
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '*':
			b.WriteString(`.*`)
		case '?':
			b.WriteString(`.`)
		case '[':
			j := i + 1
			if j < len(p) && p[j] == '!' {
				j++
			}
			if j < len(p) && p[j] == ']' {
				j++
			}
			for j < len(p) && p[j] != ']' {
				j++
			}
			if j >= len(p) {
				b.WriteString(`\[`)
				continue
			}
			set := p[i+1 : j]
			i = j
			b.WriteByte('[')
			if strings.HasPrefix(set, "!") {
				b.WriteByte('^')
				set = set[1:]
			}
			b.WriteString(strings.ReplaceAll(set, `\`, `\\`))
			b.WriteByte(']')
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString(`)$`)
	return b.String()
}

// Dispatch runs command method with the JSON arguments object args (nil:
// none) and returns its reply value, as if it had been broadcast to this
// server (without selection). Unknown methods return ErrUnknownCommand.
func (s *Server) Dispatch(ctx context.Context, method string, args json.RawMessage) (any, error) {
	def, ok := s.lookup(method)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownCommand, method)
	}
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	r := &Request{Method: method, Args: args, Worker: s.w, Server: s}
	return runCommand(ctx, def.fn, r)
}

// runCommand calls fn, turning a panic into an error reply.
func runCommand(ctx context.Context, fn Command, r *Request) (v any, err error) {
	defer func() {
		if p := recover(); p != nil {
			v, err = nil, fmt.Errorf("command %s panicked: %v", r.Method, p)
		}
	}()
	return fn(ctx, r)
}

func (s *Server) lookup(method string) (commandDef, bool) {
	s.mu.Lock()
	def, ok := s.handlers[method]
	s.mu.Unlock()
	if ok {
		return def, true
	}
	registry.RLock()
	def, ok = registry.m[method]
	registry.RUnlock()
	if ok {
		return def, true
	}
	def, ok = builtins[method]
	return def, ok
}

// Commands returns the names of the commands this server answers, with
// their kinds.
func (s *Server) Commands() map[string]Kind {
	out := map[string]Kind{}
	for k, d := range builtins {
		out[k] = d.kind
	}
	registry.RLock()
	for k, d := range registry.m {
		out[k] = d.kind
	}
	registry.RUnlock()
	s.mu.Lock()
	for k, d := range s.handlers {
		out[k] = d.kind
	}
	s.mu.Unlock()
	return out
}

// counters counts the tasks started per name (stats' "total") without a
// lock on the hot path: a copy-on-write map of atomic counters.
type counters struct {
	m   atomic.Pointer[map[string]*atomic.Int64]
	mu  sync.Mutex
	all atomic.Int64
}

func (c *counters) init() {
	m := map[string]*atomic.Int64{}
	c.m.Store(&m)
}

func (c *counters) inc(name string) {
	c.all.Add(1)
	if p := (*c.m.Load())[name]; p != nil {
		p.Add(1)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	p := old[name]
	if p == nil {
		next := make(map[string]*atomic.Int64, len(old)+1)
		for k, v := range old {
			next[k] = v
		}
		p = new(atomic.Int64)
		next[strings.Clone(name)] = p
		c.m.Store(&next)
	}
	p.Add(1)
}

func (c *counters) snapshot() map[string]int64 {
	m := *c.m.Load()
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v.Load()
	}
	return out
}
