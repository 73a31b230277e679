package engine

import "time"

// Option changes how one task is sent (apply_async's keyword arguments).
// Options are small values (no allocation); build them with the functions
// below.
type Option struct {
	kind optKind
	d    time.Duration
	t    time.Time
	s    string
	i    int
	b    bool
	kv   map[string]any
	sig  *Signature
}

type optKind uint8

const (
	optCountdown optKind = iota + 1
	optETA
	optExpiresIn
	optExpiresAt
	optQueue
	optRoutingKey
	optExchange
	optPriority
	optHeaders
	optSerializer
	optCompression
	optTaskID
	optIgnoreResult
	optTimeLimit
	optSoftTimeLimit
	optRetries
	optLink
	optLinkError
	optShadow
	optParentID
	optRootID
	optGroup
	optGroupIndex
	optReplyTo
)

// Countdown runs the task no earlier than d from now (eta = now + d).
func Countdown(d time.Duration) Option { return Option{kind: optCountdown, d: d} }

// ETA runs the task no earlier than t.
func ETA(t time.Time) Option { return Option{kind: optETA, t: t} }

// ExpiresIn revokes the task if it has not started d from now.
func ExpiresIn(d time.Duration) Option { return Option{kind: optExpiresIn, d: d} }

// ExpiresAt revokes the task if it has not started by t.
func ExpiresAt(t time.Time) Option { return Option{kind: optExpiresAt, t: t} }

// Queue sends the task to queue q (default exchange, routing key q).
func Queue(q string) Option { return Option{kind: optQueue, s: q} }

// RoutingKey sets the routing key.
func RoutingKey(rk string) Option { return Option{kind: optRoutingKey, s: rk} }

// Exchange sets the exchange.
func Exchange(ex string) Option { return Option{kind: optExchange, s: ex} }

// Priority sets the message priority, 0-9.
func Priority(p int) Option { return Option{kind: optPriority, i: p} }

// Headers merges custom headers into the message (apply_async(headers=...)).
func Headers(h map[string]any) Option { return Option{kind: optHeaders, kv: h} }

// Serializer picks the body serializer: "json" (default), "msgpack", "yaml".
func Serializer(name string) Option { return Option{kind: optSerializer, s: name} }

// Compression compresses the body: "zlib", "bzip2", "zstd", ...
func Compression(name string) Option { return Option{kind: optCompression, s: name} }

// TaskID sets the task id instead of a fresh UUID.
func TaskID(id string) Option { return Option{kind: optTaskID, s: id} }

// IgnoreResult tells the worker to store no result.
func IgnoreResult(ignore bool) Option { return Option{kind: optIgnoreResult, b: ignore} }

// TimeLimit sets the hard time limit for this call.
func TimeLimit(d time.Duration) Option { return Option{kind: optTimeLimit, d: d} }

// SoftTimeLimit sets the soft time limit for this call.
func SoftTimeLimit(d time.Duration) Option { return Option{kind: optSoftTimeLimit, d: d} }

// Retries sets the retries counter (normally only the worker does).
func Retries(n int) Option { return Option{kind: optRetries, i: n} }

// Link adds a success callback, applied with the result prepended.
func Link(s *Signature) Option { return Option{kind: optLink, sig: s} }

// LinkError adds an error callback, applied with the failed task's id.
func LinkError(s *Signature) Option { return Option{kind: optLinkError, sig: s} }

// Shadow sets the name used for the task in logs.
func Shadow(name string) Option { return Option{kind: optShadow, s: name} }

// ParentID sets the parent task id (set by the worker for subtasks).
func ParentID(id string) Option { return Option{kind: optParentID, s: id} }

// RootID sets the workflow's root task id.
func RootID(id string) Option { return Option{kind: optRootID, s: id} }

// Group sets the id of the group the task belongs to.
func Group(id string) Option { return Option{kind: optGroup, s: id} }

// GroupIndex sets the task's position in its group.
func GroupIndex(i int) Option { return Option{kind: optGroupIndex, i: i} }

// ReplyTo sets the message's reply_to: the queue of the client that waits
// for the task's results on an rpc:// backend. Celery sets it to the
// sending client's oid, which is also the default here (the broker's);
// the worker applying the next step of a chain passes the reply_to the
// client froze into the step's options.
func ReplyTo(queue string) Option { return Option{kind: optReplyTo, s: queue} }
