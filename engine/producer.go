package engine

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"

	json "github.com/goccy/go-json"
	"github.com/valyala/bytebufferpool"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/codec/compress"
	"github.com/celerity-go/celerity/codec/serializer"
	"github.com/celerity-go/celerity/internal/unsafeconv"
)

// Signature is a task signature as Celery writes it (task, args, kwargs,
// options, subtask_type, immutable); see codec.Signature.
type Signature = codec.Signature

var (
	langGo = []byte("go")
	// origin is this process's node name as a sender ("gen<pid>@<host>").
	origin = func() []byte {
		host, _ := os.Hostname()
		return []byte("gen" + strconv.Itoa(os.Getpid()) + "@" + host)
	}()
)

var onePool = sync.Pool{New: func() any { return new([1]*codec.Message) }}

// appendJSON encodes v as kombu's JSON serializer does.
func appendJSON(dst []byte, v any) ([]byte, error) { return serializer.JSON.Append(dst, v) }

// sendOpts is the parsed form of a call's options.
type sendOpts struct {
	eta, expires             time.Time
	exchange, routingKey     string
	hasExchange, hasRK       bool
	priority                 int
	hasPriority              bool
	headers                  map[string]any
	serializer, compression  string
	taskID, shadow           string
	replyTo                  string
	parentID, rootID, group  string
	groupIndex               int
	hasGroupIndex            bool
	ignoreResult, hasIgnore  bool
	timeLimit, softTimeLimit time.Duration
	retries                  int
	links, linkErrors        []*Signature
}

// noSendOpts is the options of a call that passes none. Nothing writes it.
var noSendOpts sendOpts

func (o *sendOpts) apply(opts []Option, now func() time.Time) {
	for i := range opts {
		op := &opts[i]
		switch op.kind {
		case optCountdown:
			o.eta = now().Add(op.d)
		case optETA:
			o.eta = op.t
		case optExpiresIn:
			o.expires = now().Add(op.d)
		case optExpiresAt:
			o.expires = op.t
		case optQueue:
			o.routingKey, o.hasRK = op.s, true
			o.exchange, o.hasExchange = "", true
		case optRoutingKey:
			o.routingKey, o.hasRK = op.s, true
		case optExchange:
			o.exchange, o.hasExchange = op.s, true
		case optPriority:
			o.priority, o.hasPriority = op.i, true
		case optHeaders:
			o.headers = op.kv
		case optSerializer:
			o.serializer = op.s
		case optCompression:
			o.compression = op.s
		case optTaskID:
			o.taskID = op.s
		case optIgnoreResult:
			o.ignoreResult, o.hasIgnore = op.b, true
		case optTimeLimit:
			o.timeLimit = op.d
		case optSoftTimeLimit:
			o.softTimeLimit = op.d
		case optRetries:
			o.retries = op.i
		case optLink:
			o.links = append(o.links, op.sig)
		case optLinkError:
			o.linkErrors = append(o.linkErrors, op.sig)
		case optShadow:
			o.shadow = op.s
		case optParentID:
			o.parentID = op.s
		case optRootID:
			o.rootID = op.s
		case optGroup:
			o.group = op.s
		case optGroupIndex:
			o.groupIndex, o.hasGroupIndex = op.i, true
		case optReplyTo:
			o.replyTo = op.s
		}
	}
}

// SendRaw sends task name with its positional and keyword arguments
// already encoded as a JSON array and object (nil = none). It is the
// zero-allocation producer path for the default JSON serializer; the
// arguments are copied before it returns.
func (a *App) SendRaw(ctx context.Context, name string, args, kwargs []byte, opts ...Option) error {
	m, from, err := a.newMessage(ctx, name, args, kwargs, nil, opts)
	if err != nil {
		return err
	}
	return a.publish(ctx, m, from)
}

// SendTask sends a task by name (Celery's send_task): args and kwargs are
// encoded with the task serializer. The task need not be registered here,
// so a Go client can call Python tasks.
func (a *App) SendTask(ctx context.Context, name string, args []any, kwargs map[string]any, opts ...Option) (*AsyncResult[any], error) {
	id, err := a.sendValues(ctx, name, args, kwargs, opts)
	if err != nil {
		return nil, err
	}
	return &AsyncResult[any]{ID: id, app: a}, nil
}

func sendTyped[R any](ctx context.Context, r ref, opts []Option, args ...any) (*AsyncResult[R], error) {
	id, err := r.app.sendValues(ctx, r.name, args, nil, opts)
	if err != nil {
		return nil, err
	}
	return &AsyncResult[R]{ID: id, app: r.app}, nil
}

func (a *App) sendValues(ctx context.Context, name string, args []any, kwargs map[string]any, opts []Option) (string, error) {
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	if args == nil {
		args = []any{}
	}
	b, err := appendJSON(buf.B[:0], args)
	if err != nil {
		return "", fmt.Errorf("engine: send %s: encode args: %w", name, err)
	}
	split := len(b)
	if kwargs != nil {
		if b, err = appendJSON(b, kwargs); err != nil {
			return "", fmt.Errorf("engine: send %s: encode kwargs: %w", name, err)
		}
	}
	buf.B = b
	m, from, err := a.newMessage(ctx, name, b[:split], b[split:], nil, opts)
	if err != nil {
		return "", err
	}
	id := string(m.ID) // m belongs to the broker once published
	return id, a.publish(ctx, m, from)
}

// sentFrom is the handler run a message is sent from (see
// slotState.inherit), whose result lists the message once it is published.
type sentFrom struct {
	st  *slotState
	run uint64
}

// publish hands m to the broker, running the publish hooks, and lists it
// among the children of the run it was sent from.
func (a *App) publish(ctx context.Context, m *codec.Message, from sentFrom) error {
	if h := a.hooks.BeforePublish; h != nil {
		h(m)
	}
	var id, name string
	after := a.hooks.AfterPublish
	if after != nil { // the broker owns m once published: copy first
		id, name = string(m.ID), string(m.Task)
	}
	var childBuf [64]byte
	var child []byte
	if from.st != nil {
		child = append(childBuf[:0], m.ID...)
	}
	var err error
	if a.one != nil {
		err = a.one.PublishOne(ctx, m)
	} else {
		// A variadic argument to an interface method escapes: hand over
		// a pooled one-element array instead of allocating one per
		// message.
		one := onePool.Get().(*[1]*codec.Message)
		one[0] = m
		err = a.broker.Publish(ctx, one[:]...)
		one[0] = nil
		onePool.Put(one)
	}
	if err != nil {
		return fmt.Errorf("engine: publish: %w", err)
	}
	if from.st != nil {
		from.list(&codec.ResultRef{ID: child})
	}
	if after != nil {
		after(id, name)
	}
	return nil
}

// newMessage builds a protocol v2 message. args is a JSON array, kwargs a
// JSON object, embed the embed object (nil = built from link options).
// A message sent from inside a handler comes with the run to list it in.
func (a *App) newMessage(ctx context.Context, name string, args, kwargs, embed []byte, opts []Option) (*codec.Message, sentFrom, error) {
	m := codec.AcquireMessageToOverwrite()
	from, err := a.fillMessage(m, ctx, name, args, kwargs, embed, opts)
	if err != nil {
		codec.ReleaseMessage(m)
		return nil, sentFrom{}, err
	}
	return m, from, nil
}

// fillMessage sets every exported field of m, a message from
// codec.AcquireMessageToOverwrite that may hold an earlier message's
// fields, writing only those that change (codec.SetView, codec.SetValue).
// TestFillMessageOverwritesEveryField checks that no field keeps an
// earlier value. Sent from inside a handler, m inherits its task's ids and
// fillMessage returns the run to list m in.
func (a *App) fillMessage(m *codec.Message, ctx context.Context, name string, args, kwargs, embed []byte, opts []Option) (sentFrom, error) {
	o := &noSendOpts // read only: a call without options zeroes nothing
	if len(opts) > 0 {
		var parsed sendOpts
		parsed.apply(opts, time.Now)
		o = &parsed
	}
	// Every view set below is a constant, a name, or storage of m (Own,
	// NewID): the worker that releases m need not clear it.
	m.MarkSelfContained()
	codec.SetValue(&m.Protocol, 2)
	codec.SetView(&m.Lang, langGo)
	codec.SetView(&m.Task, unsafeconv.Bytes(name))
	if o.taskID != "" {
		codec.SetView(&m.ID, m.OwnString(o.taskID))
	} else {
		m.NewID()
	}
	codec.SetView(&m.CorrelationID, m.ID)
	root, parent := m.ID, []byte(nil)
	inheritRoot, inheritParent := &root, &parent
	if o.rootID != "" {
		root, inheritRoot = m.OwnString(o.rootID), nil
	}
	if o.parentID != "" {
		parent, inheritParent = m.OwnString(o.parentID), nil
	}
	// Sent from inside a handler, m is its task's child even when the
	// options name its parent and root (Celery's add_to_parent).
	var from sentFrom
	if st := runningSlot(ctx); st != nil {
		if run := st.inherit(m, inheritRoot, inheritParent); run != 0 {
			from = sentFrom{st, run}
		}
	}
	codec.SetView(&m.RootID, root)
	codec.SetView(&m.ParentID, parent)
	codec.SetView(&m.Group, ownOrNil(m, o.group))
	codec.SetValue(&m.GroupIndex, o.groupIndex)
	codec.SetValue(&m.HasGroupIndex, o.hasGroupIndex)
	codec.SetView(&m.Shadow, ownOrNil(m, o.shadow))
	codec.SetView(&m.Origin, origin)
	codec.SetValue(&m.Retries, o.retries)
	codec.SetValue(&m.ETA, o.eta)
	codec.SetValue(&m.Expires, o.expires)
	var expiration int64
	if !o.expires.IsZero() {
		expiration = max(0, time.Until(o.expires).Milliseconds())
	}
	codec.SetValue(&m.Expiration, expiration)
	codec.SetValue(&m.HasExpiration, !o.expires.IsZero())
	var tl codec.TimeLimit
	if o.timeLimit > 0 {
		tl.Hard, tl.HasHard = o.timeLimit.Seconds(), true
	}
	if o.softTimeLimit > 0 {
		tl.Soft, tl.HasSoft = o.softTimeLimit.Seconds(), true
	}
	codec.SetValue(&m.TimeLimit, tl)
	ignore := a.cfg.TaskIgnoreResult
	if o.hasIgnore {
		ignore = o.ignoreResult
	}
	codec.SetValue(&m.IgnoreResult, ignore)

	// Routing: explicit options, then task_routes, then the default queue.
	ex, rk, prio, hasPrio := a.route(name)
	if o.hasExchange {
		ex = o.exchange
	}
	if o.hasRK {
		rk = o.routingKey
	}
	if !hasPrio {
		prio = a.cfg.TaskDefaultPriority
	}
	if o.hasPriority {
		prio = o.priority
	}
	if prio < 0 || prio > 9 {
		return sentFrom{}, fmt.Errorf("engine: send %s: priority %d is outside 0-9", name, prio)
	}
	codec.SetView(&m.Exchange, unsafeconv.Bytes(ex))
	codec.SetView(&m.RoutingKey, unsafeconv.Bytes(rk))
	codec.SetValue(&m.Priority, uint8(prio))
	codec.SetValue(&m.DeliveryMode, 2)
	// Empty reply_to: the transport puts its client's oid.
	codec.SetView(&m.ReplyTo, ownOrNil(m, o.replyTo))
	// Set by transports: none yet.
	codec.SetView(&m.DeliveryTag, nil)
	codec.SetValue(&m.Tag, 0)
	codec.SetValue(&m.Redelivered, false)

	return from, a.encodeBody(m, name, args, kwargs, embed, o)
}

// ownOrNil returns a copy of s in m's storage, or nil for "".
func ownOrNil(m *codec.Message, s string) []byte {
	if s == "" {
		return nil
	}
	return m.OwnString(s)
}

// encodeBody fills the body, its content type and the repr headers.
func (a *App) encodeBody(m *codec.Message, name string, args, kwargs, embed []byte, o *sendOpts) error {
	if len(args) == 0 || string(args) == "[]" {
		args = emptyArray
	}
	if len(kwargs) == 0 || string(kwargs) == "{}" {
		kwargs = emptyObject
	}
	if embed == nil && len(o.links) == 0 && len(o.linkErrors) == 0 && o.headers == nil &&
		len(args) == 2 && len(kwargs) == 2 && o.serializer == "" && a.cfg.TaskSerializer == "json" &&
		o.compression == "" && a.cfg.TaskCompression == "" {
		// No arguments, default format: every part is a constant.
		codec.SetView(&m.ArgsRepr, emptyArgsRepr)
		codec.SetView(&m.KwargsRepr, emptyKwargsRepr)
		codec.SetView(&m.ExtraHeaders, nil)
		codec.SetView(&m.Body, emptyBody)
		codec.SetView(&m.ContentType, contentTypeJSON)
		codec.SetView(&m.ContentEncoding, contentEncodingUTF8)
		codec.SetView(&m.Compression, nil)
		return nil
	}
	buf := bytebufferpool.Get()
	defer bytebufferpool.Put(buf)
	b := buf.B[:0]
	if embed == nil && (len(o.links) > 0 || len(o.linkErrors) > 0) {
		var err error
		if embed, err = appendEmbed(nil, o.links, o.linkErrors); err != nil {
			return fmt.Errorf("engine: send %s: %w", name, err)
		}
	}
	b = appendPyRepr(b, args, true)
	codec.SetView(&m.ArgsRepr, m.Own(b))
	b = appendPyRepr(b[:0], kwargs, false)
	codec.SetView(&m.KwargsRepr, m.Own(b))
	var extra []byte
	if o.headers != nil {
		h, err := appendJSON(b[:0], o.headers)
		if err != nil {
			return fmt.Errorf("engine: send %s: headers: %w", name, err)
		}
		extra = m.Own(h)
	}
	codec.SetView(&m.ExtraHeaders, extra)
	b = codec.AppendJSONBody(b[:0], args, kwargs, embed)

	ser := o.serializer
	if ser == "" {
		ser = a.cfg.TaskSerializer
	}
	s, ok := serializer.ByName(ser)
	if !ok {
		return fmt.Errorf("engine: send %s: unknown serializer %q", name, ser)
	}
	if s.Name != serializer.JSON.Name {
		out, err := serializer.FromJSON(nil, s, b)
		if err != nil {
			return fmt.Errorf("engine: send %s: %s body: %w", name, s.Name, err)
		}
		b = append(b[:0], out...)
	}
	codec.SetView(&m.ContentType, unsafeconv.Bytes(s.ContentType))
	codec.SetView(&m.ContentEncoding, unsafeconv.Bytes(s.ContentEncoding))

	comp := o.compression
	if comp == "" {
		comp = a.cfg.TaskCompression
	}
	var mime []byte
	if comp != "" {
		c, ok := compress.Lookup(comp)
		if !ok {
			return fmt.Errorf("engine: send %s: unknown compression %q", name, comp)
		}
		z, err := c.Append(nil, b)
		if err != nil {
			return fmt.Errorf("engine: send %s: compress: %w", name, err)
		}
		b = append(b[:0], z...)
		mime = unsafeconv.Bytes(c.Mime)
	}
	codec.SetView(&m.Compression, mime)
	codec.SetView(&m.Body, m.Own(b))
	buf.B = b
	return nil
}

var (
	emptyArray          = []byte("[]")
	emptyObject         = []byte("{}")
	emptyArgsRepr       = []byte("()")
	emptyKwargsRepr     = []byte("{}")
	defaultEmbed        = []byte(codec.DefaultEmbed)
	emptyBody           = codec.AppendJSONBody(nil, emptyArray, emptyObject, defaultEmbed)
	contentTypeJSON     = []byte(serializer.JSON.ContentType)
	contentEncodingUTF8 = []byte(serializer.JSON.ContentEncoding)
)

// appendEmbed writes the embed object for link/link_error callbacks.
func appendEmbed(dst []byte, links, linkErrors []*Signature) ([]byte, error) {
	cb, err := json.Marshal(nilIfEmpty(links))
	if err != nil {
		return nil, fmt.Errorf("link: %w", err)
	}
	eb, err := json.Marshal(nilIfEmpty(linkErrors))
	if err != nil {
		return nil, fmt.Errorf("link_error: %w", err)
	}
	dst = append(dst, `{"callbacks": `...)
	dst = append(dst, cb...)
	dst = append(dst, `, "errbacks": `...)
	dst = append(dst, eb...)
	return append(dst, `, "chain": null, "chord": null}`...), nil
}

func nilIfEmpty(s []*Signature) []*Signature {
	if len(s) == 0 {
		return nil
	}
	return s
}
