package control

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine"
)

// Client sends remote-control commands to workers, Go or Python, and
// collects their replies (Celery's app.control / kombu's Mailbox client).
// Its reply queue is set up on the first call that wants replies and
// removed by Close. It is safe for concurrent use.
type Client struct {
	bus   Bus
	clock *Clock
	oid   string
	ns    string
	log   *slog.Logger

	mu       sync.Mutex
	listener Listener
	pending  map[string]chan Reply // ticket -> replies
	closed   bool
}

// ClientOptions configures a Client.
type ClientOptions struct {
	// Clock is the Lamport clock to use (default: a new one).
	Clock *Clock
	// OID is the client's id, the routing key of its replies (default: a
	// new UUID).
	OID string
	// Namespace is Celery's control_exchange (default "celery"); it must
	// match the bus's WithNamespace.
	Namespace string
	// Logger receives reports of undecodable replies (default slog.Default()).
	Logger *slog.Logger
}

// NewClient returns a client on bus. The bus stays the caller's.
func NewClient(bus Bus, opts ClientOptions) *Client {
	if opts.Clock == nil {
		opts.Clock = new(Clock)
	}
	if opts.OID == "" {
		opts.OID = NewUUID()
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Namespace == "" {
		opts.Namespace = "celery"
	}
	return &Client{bus: bus, clock: opts.Clock, oid: opts.OID, ns: opts.Namespace, log: opts.Logger,
		pending: map[string]chan Reply{}}
}

// Call is one command to broadcast.
type Call struct {
	// Method is the command name ("ping", "active", "revoke", ...).
	Method string
	// Args are the command's arguments, a value that encodes as a JSON
	// object (a map or a struct); nil means {}.
	Args any
	// Destination lists the node names that should run the command; nil
	// means every worker.
	Destination []string
	// Pattern and Matcher ("glob" or "pcre") select nodes by name
	// instead of Destination.
	Pattern, Matcher string
	// Timeout is how long to wait for the next reply (Celery's timeout:
	// collection ends when none came for this long). Default 1s.
	Timeout time.Duration
	// Limit ends the collection after this many replies (default: the
	// number of destinations, or none).
	Limit int
	// OnReply, if set, is called with each reply as it arrives.
	OnReply func(Reply)
}

// Reply is one node's answer.
type Reply struct {
	// Node is the replying node's name.
	Node string
	// Value is the JSON reply value.
	Value json.RawMessage
}

// Error returns the "error" text of a Celery-style {"error": ...} reply,
// or "".
func (r Reply) Error() string {
	var v struct {
		Error any `json:"error"`
	}
	if json.Unmarshal(r.Value, &v) != nil || v.Error == nil {
		return ""
	}
	if s, ok := v.Error.(string); ok {
		return s
	}
	return fmt.Sprint(v.Error)
}

type commandOut struct {
	Method      string   `json:"method"`
	Arguments   any      `json:"arguments"`
	Destination []string `json:"destination"`
	Pattern     *string  `json:"pattern"`
	Matcher     *string  `json:"matcher"`
	Ticket      string   `json:"ticket,omitempty"`
	ReplyTo     *replyTo `json:"reply_to,omitempty"`
}

func (c *Client) message(call *Call, ticket string) (*Message, error) {
	args := call.Args
	if args == nil {
		args = map[string]any{}
	}
	out := commandOut{Method: call.Method, Arguments: args, Destination: call.Destination, Ticket: ticket}
	if call.Pattern != "" && call.Matcher != "" {
		out.Pattern, out.Matcher = &call.Pattern, &call.Matcher
	}
	if ticket != "" {
		out.ReplyTo = &replyTo{Exchange: "reply." + c.ns + ".pidbox", RoutingKey: c.oid}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("control: encode %s arguments: %w", call.Method, err)
	}
	expires := float64(time.Now().Add(call.timeout()).UnixNano()) / 1e9
	return &Message{Body: body, Headers: Headers{Clock: c.clock.Forward(), Expires: expires, HasExpires: true}}, nil
}

func (call *Call) timeout() time.Duration {
	if call.Timeout <= 0 {
		return time.Second
	}
	return call.Timeout
}

// Cast broadcasts call without asking for replies.
func (c *Client) Cast(ctx context.Context, call Call) error {
	m, err := c.message(&call, "")
	if err != nil {
		return err
	}
	return c.bus.PublishCommand(ctx, m)
}

// Call broadcasts call and returns the replies that came before the
// collection ended (see Call.Timeout and Call.Limit), in arrival order.
// No reply is not an error here; the CLI reports it as ErrNoReply.
func (c *Client) Call(ctx context.Context, call Call) ([]Reply, error) {
	ticket := NewUUID()
	ch := make(chan Reply, 256)
	if err := c.register(ctx, ticket, ch); err != nil {
		return nil, err
	}
	defer c.unregister(ticket)
	m, err := c.message(&call, ticket)
	if err != nil {
		return nil, err
	}
	if err := c.bus.PublishCommand(ctx, m); err != nil {
		return nil, err
	}
	limit := call.Limit
	if limit == 0 {
		limit = len(call.Destination)
	}
	var out []Reply
	timer := time.NewTimer(call.timeout())
	defer timer.Stop()
	for limit == 0 || len(out) < limit {
		select {
		case r := <-ch:
			out = append(out, r)
			if call.OnReply != nil {
				call.OnReply(r)
			}
			if !timer.Stop() {
				<-timer.C
			}
			timer.Reset(call.timeout())
		case <-timer.C:
			return out, nil
		case <-ctx.Done():
			return out, ctx.Err()
		}
	}
	return out, nil
}

func (c *Client) register(ctx context.Context, ticket string, ch chan Reply) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.listener == nil {
		l, err := c.bus.ListenReplies(ctx, c.oid, c.onReply)
		if err != nil {
			return fmt.Errorf("control: listen for replies: %w", err)
		}
		c.listener = l
	}
	c.pending[ticket] = ch
	return nil
}

func (c *Client) unregister(ticket string) {
	c.mu.Lock()
	delete(c.pending, ticket)
	c.mu.Unlock()
}

// onReply runs on the bus's goroutine: decode and hand to the waiting
// call, never blocking.
func (c *Client) onReply(m *Message) {
	if m.Headers.Clock > 0 {
		c.clock.Adjust(m.Headers.Clock)
	}
	raw, err := BodyJSON(m)
	if err != nil {
		c.log.Warn("control: dropping reply", "err", err)
		return
	}
	var body map[string]json.RawMessage
	if err := json.Unmarshal(raw, &body); err != nil {
		c.log.Warn("control: dropping undecodable reply", "err", err)
		return
	}
	c.mu.Lock()
	ch := c.pending[m.Headers.Ticket]
	c.mu.Unlock()
	if ch == nil {
		return // late or not ours
	}
	for node, v := range body {
		select {
		case ch <- Reply{Node: node, Value: append(json.RawMessage(nil), v...)}:
		default:
		}
	}
}

// Close removes the reply queue. The bus stays open.
func (c *Client) Close() error {
	c.mu.Lock()
	l := c.listener
	c.listener, c.closed = nil, true
	c.mu.Unlock()
	if l != nil {
		return l.Close()
	}
	return nil
}

// Ping asks the selected workers (nil: all) for "pong".
func (c *Client) Ping(ctx context.Context, timeout time.Duration, destination ...string) ([]Reply, error) {
	return c.Call(ctx, Call{Method: "ping", Destination: destination, Timeout: timeout})
}

// A Client is what engine.App.SetRevoker takes.
var _ engine.Revoker = (*Client)(nil)

// Revoke tells every worker to revoke ids (and, with terminate, to
// cancel them if they run), without waiting for replies, as Celery's
// app.control.revoke does.
func (c *Client) Revoke(ctx context.Context, terminate bool, ids ...string) error {
	return c.Cast(ctx, Call{Method: "revoke", Args: map[string]any{"task_id": ids, "terminate": terminate, "signal": "SIGTERM"}})
}
