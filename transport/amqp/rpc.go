package amqp

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp091 "github.com/rabbitmq/amqp091-go"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/codec/serializer"
	"github.com/celerity-go/celerity/internal/unsafeconv"
	"github.com/celerity-go/celerity/transport"
)

// maxRoutes and maxRecords bound the rpc:// backend's memory: the reply
// routes of tasks being worked on and the result records received.
const (
	maxRoutes  = 1 << 16
	maxRecords = 1 << 17
)

// RPCBackend is Celery's rpc:// result backend: a task's states are sent
// as messages to the reply queue of the client that sent it (its
// reply_to, which is the client's oid) with correlation_id = task id, and
// that client alone reads them. It is safe for concurrent use.
//
// Client side, it declares and consumes the queue named by the broker's
// OID (which Broker.Publish puts in reply_to) and keeps the latest record
// of each task id it receives. Worker side, the Broker's consumers note
// the reply_to and correlation_id of each task they deliver, and
// StoreResults publishes the task's records there (transient, not
// mandatory: if the client is gone the result is dropped, as Celery's
// are). A record for a task with no known route, or routed to this very
// backend, is kept locally without a trip through RabbitMQ.
//
// Celery's rpc backend cannot run chords or save groups; neither can
// this one (EnsureChordsAllowed, SaveGroup).
type RPCBackend struct {
	b      *Broker
	cfg    config
	oid    string
	queue  Queue
	routes *routeTable

	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	closed  bool
	conn    *amqp091.Connection
	records map[string][]byte
	order   []string // record ids, oldest first, for eviction (a ring)
	next    int
	subs    transport.Subscribers
}

var _ transport.Backend = (*RPCBackend)(nil)

// NewRPCBackend starts the rpc:// backend on b: it declares the reply
// queue named b.OID() (not durable, auto-delete, x-expires = result
// expiry) and consumes it without acks, as Celery does. A Broker has at
// most one RPCBackend. Options WithResultExpires and WithLogger apply.
func NewRPCBackend(ctx context.Context, b *Broker, opts ...Option) (*RPCBackend, error) {
	cfg := b.cfg
	for _, o := range opts {
		o(&cfg)
	}
	r := &RPCBackend{
		b:       b,
		cfg:     cfg,
		oid:     b.oid,
		queue:   RPCQueue(b.oid, cfg.resultExpires),
		routes:  newRouteTable(maxRoutes),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		records: make(map[string][]byte),
	}
	if !b.routes.CompareAndSwap(nil, r.routes) {
		return nil, errors.New("amqp: the broker already has an rpc:// backend")
	}
	deliveries, err := r.open(ctx)
	if err != nil {
		b.routes.Store(nil)
		return nil, err
	}
	go r.run(deliveries)
	return r, nil
}

// OID is the name of the reply queue (the broker's OID).
func (r *RPCBackend) OID() string { return r.oid }

// open connects, declares the reply queue and consumes it.
func (r *RPCBackend) open(ctx context.Context) (<-chan amqp091.Delivery, error) {
	conn, err := r.cfg.dial(ctx, r.b.url, "rpc")
	if err != nil {
		return nil, err
	}
	ch, err := conn.Channel()
	if err == nil {
		_, err = declareQueue(ch, r.queue)
	}
	var deliveries <-chan amqp091.Delivery
	if err == nil {
		deliveries, err = ch.Consume(r.queue.Name, "", true, false, false, false, nil)
	}
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("amqp: rpc reply queue %s: %w", r.queue.Name, err)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		conn.Close()
		return nil, ErrClosed
	}
	r.conn = conn
	r.mu.Unlock()
	return deliveries, nil
}

// run receives replies and reconnects after a loss until Close.
func (r *RPCBackend) run(deliveries <-chan amqp091.Delivery) {
	defer close(r.done)
	for fails := 0; ; {
		for d := range deliveries {
			r.receive(&d)
		}
		select {
		case <-r.stop:
			return
		default:
		}
		r.cfg.log.Warn("amqp: rpc reply connection lost; reconnecting", "queue", r.queue.Name)
		for {
			if !sleepCtx(context.Background(), r.stop, r.cfg.backoff(fails)) {
				return
			}
			var err error
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.dialTimeout)
			deliveries, err = r.open(ctx)
			cancel()
			if err == nil {
				fails = 0
				break
			}
			if errors.Is(err, ErrClosed) {
				return
			}
			fails++
			r.cfg.log.Warn("amqp: rpc reply reconnect failed", "attempt", fails, "err", err)
		}
	}
}

// receive keeps one reply: the task id is the correlation id (else the
// body's task_id, as Celery falls back to). Replies in msgpack or YAML
// (result_serializer) are transcoded to JSON.
func (r *RPCBackend) receive(d *amqp091.Delivery) {
	body := d.Body
	if ct := d.ContentType; ct != "" && ct != codec.ContentTypeJSON {
		s, ok := serializer.ByContentType(unsafeconv.Bytes(ct))
		var err error
		if ok {
			body, err = s.ToJSON(nil, body)
		}
		if !ok || err != nil {
			r.cfg.log.Warn("amqp: rpc reply cannot be read; dropped",
				"content_type", ct, "correlation_id", d.CorrelationId, "err", err)
			return
		}
	}
	var rec codec.Result
	if err := codec.DecodeResultJSON(body, &rec); err != nil {
		r.cfg.log.Warn("amqp: rpc reply is not a result record; dropped", "correlation_id", d.CorrelationId, "err", err)
		return
	}
	id := d.CorrelationId
	if id == "" {
		id = string(rec.TaskID)
	}
	r.keep(id, body, rec.State)
}

// keep stores data (which it owns from now on) as id's latest record and
// hands it to the subscribers. A SUCCESS record is never replaced.
func (r *RPCBackend) keep(id string, data []byte, st codec.State) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	old, had := r.records[id]
	if had && stateOf(old) == codec.StateSuccess && st != codec.StateSuccess {
		return
	}
	if !had {
		r.remember(id)
	}
	r.records[id] = data
	r.subs.Publish(id, data)
}

// remember notes id in the eviction ring, evicting the oldest record
// when full. r.mu is held.
func (r *RPCBackend) remember(id string) {
	if len(r.order) < maxRecords {
		r.order = append(r.order, id)
		return
	}
	delete(r.records, r.order[r.next])
	r.order[r.next] = id
	r.next = (r.next + 1) % maxRecords
}

func stateOf(rec []byte) codec.State {
	var r codec.Result
	if codec.DecodeResultJSON(rec, &r) != nil {
		return codec.StatePending
	}
	return r.State
}

// StoreResults implements transport.Backend: each record goes to the
// reply queue of the client that sent the task, as the message this
// worker delivered named it or else the record's ReplyTo, or is kept here
// (see RPCBackend).
func (r *RPCBackend) StoreResults(ctx context.Context, recs ...transport.ResultRecord) error {
	var remote []rawPub
	for _, rec := range recs {
		st := stateOf(rec.Data)
		rt, ok := r.routes.lookup(rec.TaskID, st.Ready())
		if !ok && len(rec.ReplyTo) > 0 { // a task this worker did not receive
			rt, ok = route{replyTo: string(rec.ReplyTo), correlationID: string(rec.TaskID)}, true
		}
		if !ok || rt.replyTo == r.oid {
			r.keep(string(rec.TaskID), append([]byte(nil), rec.Data...), st)
			continue
		}
		remote = append(remote, rawPub{
			key: rt.replyTo,
			pub: amqp091.Publishing{
				ContentType:     codec.ContentTypeJSON,
				ContentEncoding: "utf-8",
				DeliveryMode:    amqp091.Transient,
				CorrelationId:   rt.correlationID,
				Body:            rec.Data, // written before send returns
			},
		})
	}
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return ErrClosed
	}
	if len(remote) == 0 {
		return nil
	}
	if err := r.b.pub.send(ctx, &rawSource{items: remote}); err != nil {
		return fmt.Errorf("amqp: rpc: store results: %w", err)
	}
	return nil
}

// GetResult implements transport.Backend with the latest record received
// for taskID.
func (r *RPCBackend) GetResult(_ context.Context, taskID string, dst []byte) ([]byte, bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return dst, false, ErrClosed
	}
	rec, ok := r.records[taskID]
	return append(dst, rec...), ok, nil
}

// ForgetResult implements transport.Backend: the record is dropped here
// (Celery's rpc backend has nothing to delete on the server either).
func (r *RPCBackend) ForgetResult(_ context.Context, taskID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.records, taskID)
	return nil
}

// Subscribe implements transport.Backend.
func (r *RPCBackend) Subscribe(_ context.Context, taskID string) (transport.Subscription, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	return r.subs.Subscribe(taskID)
}

// EnsureChordsAllowed returns ErrChordsUnsupported, as Celery's rpc
// backend refuses chords.
func (r *RPCBackend) EnsureChordsAllowed() error { return ErrChordsUnsupported }

// SaveGroup returns ErrGroupsUnsupported, as Celery's rpc backend refuses
// to save group results.
func (r *RPCBackend) SaveGroup(context.Context, string, []byte) error { return ErrGroupsUnsupported }

// Close stops receiving replies, ends the subscriptions and detaches the
// backend from its broker.
func (r *RPCBackend) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.stop)
	conn := r.conn
	r.mu.Unlock()
	r.subs.Close()
	if conn != nil {
		conn.Close()
	}
	<-r.done
	r.b.routes.CompareAndSwap(r.routes, nil)
	return nil
}

// routeTable remembers, for the tasks a worker is running, where their
// results go. It is safe for concurrent use.
type routeTable struct {
	mu    sync.Mutex
	m     map[string]route
	order []string // ring of ids, oldest first, for eviction
	next  int
	max   int
}

type route struct{ replyTo, correlationID string }

func newRouteTable(n int) *routeTable { return &routeTable{m: make(map[string]route), max: n} }

// put notes the reply route of task message m.
func (t *routeTable) put(m *codec.Message) {
	id := string(m.ID)
	rt := route{replyTo: string(m.ReplyTo), correlationID: id}
	if len(m.CorrelationID) != 0 && string(m.CorrelationID) != id {
		rt.correlationID = string(m.CorrelationID)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.m[id]; !ok {
		if len(t.order) < t.max {
			t.order = append(t.order, id)
		} else {
			delete(t.m, t.order[t.next])
			t.order[t.next] = id
			t.next = (t.next + 1) % t.max
		}
	}
	t.m[id] = rt
}

// lookup returns the route of task id, forgetting it when done (its
// result is final).
func (t *routeTable) lookup(id []byte, done bool) (route, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rt, ok := t.m[string(id)]
	if ok && done {
		delete(t.m, string(id))
	}
	return rt, ok
}
