package redis

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/redis/rueidis"

	"github.com/celerity-go/celerity/internal/unsafeconv"
	"github.com/celerity-go/celerity/transport"
)

// Key prefixes of Celery's key/value result backends (celery-wire.md §5.1).
const (
	TaskKeyPrefix  = "celery-task-meta-"
	GroupKeyPrefix = "celery-taskset-meta-"
)

// Backend is Celery's Redis result backend: records under
// celery-task-meta-<id> written with SETEX and published on a channel of
// the same name, groups under celery-taskset-meta-<id>, and Celery 5.2's
// chord counters. Python's AsyncResult reads what it writes and the
// reverse. Create it with NewBackend. It is safe for concurrent use.
type Backend struct {
	cfg    *config
	client rueidis.Client
	log    *slog.Logger
	ttl    string // result_expires in seconds, "0" for none
	closed atomic.Bool

	hubOnce sync.Once
	hub     *hub
}

var (
	_ transport.Backend      = (*Backend)(nil)
	_ transport.ChordBackend = (*Backend)(nil)
	_ transport.GroupStore   = (*Backend)(nil)
)

// NewBackend connects to the Redis server at url and returns a result
// backend. Options that matter: WithResultExpires (default 1 day),
// WithResultKeyPrefix, WithLogger, WithRetryTimeout.
func NewBackend(ctx context.Context, url string, opts ...Option) (*Backend, error) {
	cfg, client, err := newClient(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	ttl := "0"
	if cfg.resultExpires > 0 {
		ttl = strconv.FormatInt(max(int64(cfg.resultExpires.Seconds()), 1), 10)
	}
	return &Backend{cfg: cfg, client: client, log: cfg.logger, ttl: ttl}, nil
}

// Client returns the underlying rueidis client. It is closed by Close.
func (b *Backend) Client() rueidis.Client { return b.client }

// TaskKey returns the key (and channel) of taskID's record.
func (b *Backend) TaskKey(taskID string) string {
	return b.cfg.resultPrefix + TaskKeyPrefix + taskID
}

// GroupKey returns the key of a saved group, plus suffix (".j", ".s",
// ".t" for the chord counters).
func (b *Backend) GroupKey(groupID, suffix string) string {
	return b.cfg.resultPrefix + GroupKeyPrefix + groupID + suffix
}

// StoreResults implements transport.Backend. Each record is written by one
// script (GET; unless SUCCESS: SETEX/SET and PUBLISH), all pipelined in
// one round trip. A connection error is retried for up to the retry
// timeout.
func (b *Backend) StoreResults(ctx context.Context, recs ...transport.ResultRecord) error {
	if b.closed.Load() {
		return ErrClosed
	}
	if len(recs) == 0 {
		return nil
	}
	st := storePool.Get().(*storeState)
	defer st.release()
	for _, r := range recs {
		st.keys = append(st.keys, b.cfg.resultPrefix+TaskKeyPrefix+string(r.TaskID))
	}
	useEval := false
	build := func(i int) rueidis.Completed {
		// The record is a view: every reply is awaited (context bg).
		data := unsafeconv.String(recs[i].Data)
		if useEval {
			return b.client.B().Eval().Script(luaStoreResult.src).Numkeys(1).Key(st.keys[i]).Arg(data, b.ttl).Build()
		}
		return b.client.B().Evalsha().Sha1(luaStoreResult.sha).Numkeys(1).Key(st.keys[i]).Arg(data, b.ttl).Build()
	}
	// Fast path: one round trip, no retry machinery.
	failed := false
	if len(recs) == 1 {
		failed = b.client.Do(bg, build(0)).Error() != nil
	} else {
		for i := range recs {
			st.cmds = append(st.cmds, build(i))
		}
		if failed = !allOK(b.client.DoMulti(bg, st.cmds...)); failed {
			st.cmds = nil // rueidis may still hold the slice
		}
	}
	if !failed {
		return nil
	}
	// Slow path: everything again (the script is idempotent), with
	// retries, EVAL after a NOSCRIPT.
	return doAll(ctx, b.client, b.cfg.retryTimeout, b.log, &b.closed, "store results", len(recs), build,
		func(err error) bool {
			if isNoScript(err) {
				useEval = true
				return true
			}
			return false
		})
}

// storeState is StoreResults' scratch space, pooled.
type storeState struct {
	keys []string
	cmds rueidis.Commands
}

var storePool = sync.Pool{New: func() any { return new(storeState) }}

func (st *storeState) release() {
	if cap(st.keys) > 4096 {
		*st = storeState{}
	}
	clear(st.keys)
	clear(st.cmds)
	st.keys, st.cmds = st.keys[:0], st.cmds[:0]
	storePool.Put(st)
}

// GetResult implements transport.Backend.
func (b *Backend) GetResult(ctx context.Context, taskID string, dst []byte) ([]byte, bool, error) {
	return b.get(ctx, b.TaskKey(taskID), dst)
}

func (b *Backend) get(ctx context.Context, key string, dst []byte) ([]byte, bool, error) {
	if b.closed.Load() {
		return dst, false, ErrClosed
	}
	v, err := b.client.Do(ctx, b.client.B().Get().Key(key).Build()).ToString()
	if err != nil && retriable(err) {
		err = retry(ctx, b.cfg.retryTimeout, b.log, "get", func() error {
			var err error
			v, err = b.client.Do(ctx, b.client.B().Get().Key(key).Build()).ToString()
			return err
		})
	}
	if rueidis.IsRedisNil(err) {
		return dst, false, nil
	}
	if err != nil {
		return dst, false, fmt.Errorf("redis: GET %s: %w", key, err)
	}
	return append(dst, v...), true, nil
}

// ForgetResult implements transport.Backend: the record is deleted.
func (b *Backend) ForgetResult(ctx context.Context, taskID string) error {
	return b.del(ctx, b.TaskKey(taskID))
}

func (b *Backend) del(ctx context.Context, keys ...string) error {
	return doAll(ctx, b.client, b.cfg.retryTimeout, b.log, &b.closed, "delete", 1, func(int) rueidis.Completed {
		return b.client.B().Del().Key(keys...).Build()
	}, nil)
}

// set is Celery's generic set: SETEX (or SET) then PUBLISH on the key.
func (b *Backend) set(ctx context.Context, key string, value []byte) error {
	if b.closed.Load() {
		return ErrClosed
	}
	v := unsafeconv.String(value)
	return doAll(ctx, b.client, b.cfg.retryTimeout, b.log, &b.closed, "set", 2, func(i int) rueidis.Completed {
		if i == 1 {
			return b.client.B().Publish().Channel(key).Message(v).Build()
		}
		if b.ttl == "0" {
			return b.client.B().Set().Key(key).Value(v).Build()
		}
		ttl, _ := strconv.ParseInt(b.ttl, 10, 64)
		return b.client.B().Setex().Key(key).Seconds(ttl).Value(v).Build()
	}, nil)
}

// SaveGroup stores a group record (celery-taskset-meta-<groupID>), as
// GroupResult.save() does: rec is the encoded {"result": <GroupResult
// tuple>} document. The caller keeps rec.
func (b *Backend) SaveGroup(ctx context.Context, groupID string, rec []byte) error {
	return b.set(ctx, b.GroupKey(groupID, ""), rec)
}

// GetGroup appends the saved record of groupID to dst; found is false
// when there is none.
func (b *Backend) GetGroup(ctx context.Context, groupID string, dst []byte) ([]byte, bool, error) {
	return b.get(ctx, b.GroupKey(groupID, ""), dst)
}

// ForgetGroup deletes the saved record of groupID.
func (b *Backend) ForgetGroup(ctx context.Context, groupID string) error {
	return b.del(ctx, b.GroupKey(groupID, ""))
}

// SetChordSize stores the chord size (celery-taskset-meta-<groupID>.s, a
// decimal) as Celery's apply_async of a chord does before sending its
// last header task: through the generic set, so SETEX and a PUBLISH.
func (b *Backend) SetChordSize(ctx context.Context, groupID string, size int) error {
	if size < 0 {
		return fmt.Errorf("redis: chord %s: negative size %d", groupID, size)
	}
	return b.set(ctx, b.GroupKey(groupID, ".s"), strconv.AppendInt(nil, int64(size), 10))
}

// AddToChord counts one more header task for the chord (INCR of .t), as
// Celery's add_to_chord does when a header task replaces itself.
func (b *Backend) AddToChord(ctx context.Context, groupID string) error {
	return doAll(ctx, b.client, b.cfg.retryTimeout, b.log, &b.closed, "add to chord", 1, func(int) rueidis.Completed {
		return b.client.B().Incr().Key(b.GroupKey(groupID, ".t")).Build()
	}, nil)
}

// ChordPartDone records that the chord header task at index (its
// group_index header, or transport.NoGroupIndex) finished, as Celery 5.2's
// on_chord_part_return does with a sorted set: part is the encoded
// [1, "<task id>", "<state>", <encoded result>] entry. When this part
// completes the chord (the number of parts reaches .s + .t), done is true
// and parts holds every part's entry ordered by group index: the caller
// decodes them, sends the body (or marks it failed) and then calls
// ChordCleanup. Only one caller sees done for a chord unless a part is
// recorded twice (a redelivered header task), as in Celery.
//
// The recording is one atomic script; it is not retried after a lost
// connection (a retry could complete the chord twice), so an error means
// the part may or may not have been recorded.
func (b *Backend) ChordPartDone(ctx context.Context, groupID string, index int, part []byte) (done bool, parts [][]byte, err error) {
	if b.closed.Load() {
		return false, nil, ErrClosed
	}
	score := "+inf"
	if index >= 0 {
		score = strconv.Itoa(index)
	}
	keys := []string{b.GroupKey(groupID, ".j"), b.GroupKey(groupID, ".t"), b.GroupKey(groupID, ".s")}
	res := luaChordPart.exec(context.WithoutCancel(ctx), b.client, keys, []string{score, unsafeconv.String(part), b.ttl})
	arr, err := res.ToArray()
	if err != nil {
		return false, nil, fmt.Errorf("redis: chord %s part: %w", groupID, err)
	}
	if len(arr) < 2 {
		return false, nil, nil
	}
	list, err := arr[1].ToArray()
	if err != nil {
		return false, nil, fmt.Errorf("redis: chord %s parts: %w", groupID, err)
	}
	parts = make([][]byte, len(list))
	for i := range list {
		s, _ := list[i].ToString()
		parts[i] = []byte(s)
	}
	return true, parts, nil
}

// ChordCleanup deletes the chord counters of groupID (.j, .t, .s), as
// Celery does once the body has been sent.
func (b *Backend) ChordCleanup(ctx context.Context, groupID string) error {
	return b.del(ctx, b.GroupKey(groupID, ".j"), b.GroupKey(groupID, ".t"), b.GroupKey(groupID, ".s"))
}

// Subscribe implements transport.Backend with Redis pub/sub on the
// record's key (the channel Celery publishes on). All subscriptions share
// one connection; it returns once the server has confirmed the
// subscription, so every record stored afterwards is delivered. After a
// lost connection the subscriptions are renewed and each current record
// is delivered again, as Celery's client re-reads its keys.
func (b *Backend) Subscribe(ctx context.Context, taskID string) (transport.Subscription, error) {
	if b.closed.Load() {
		return nil, ErrClosed
	}
	b.hubOnce.Do(func() { b.hub = newHub(b) })
	return b.hub.subscribe(ctx, b.TaskKey(taskID))
}

// Close ends every subscription and closes the connections.
func (b *Backend) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.hubOnce.Do(func() {})
	if b.hub != nil {
		b.hub.close()
	}
	b.client.Close()
	return nil
}
