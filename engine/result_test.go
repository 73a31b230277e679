package engine

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
)

// subscribeCounter is a memory backend that counts subscriptions and runs
// beforeSubscribe, if set, as each one starts (before it is live).
type subscribeCounter struct {
	*memory.Backend
	subscribes      atomic.Int64
	beforeSubscribe func()
}

func (b *subscribeCounter) Subscribe(ctx context.Context, taskID string) (transport.Subscription, error) {
	b.subscribes.Add(1)
	if b.beforeSubscribe != nil {
		b.beforeSubscribe()
	}
	return b.Backend.Subscribe(ctx, taskID)
}

// storeSuccess stores a SUCCESS record of task id with the JSON result.
func storeSuccess(t *testing.T, b transport.Backend, id, result string) {
	t.Helper()
	rec := codec.AppendResultJSON(nil, &codec.Result{State: codec.StateSuccess, Result: []byte(result), TaskID: []byte(id)})
	if err := b.StoreResults(context.Background(), transport.ResultRecord{TaskID: []byte(id), Data: rec}); err != nil {
		t.Error(err)
	}
}

// sendAdd starts a worker on an app made with cfg and sends it a
// Register2 task adding 2 and 3.
func sendAdd(t *testing.T, cfg Config) (*AsyncResult[int], context.Context) {
	t.Helper()
	app := newApp(t, cfg)
	add := Register2(app, "t.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	startWorker(t, app, WorkerConfig{Concurrency: 1})
	ctx := testCtx(t, 10*time.Second)
	r, err := add.Delay(ctx, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	return r, ctx
}

// remoteBackend is a memory backend that says its reads leave the process,
// as a networked backend's do, and logs the reads and subscriptions of
// the task id it watches.
type remoteBackend struct {
	*memory.Backend
	watch string
	mu    sync.Mutex
	calls []string
}

func (b *remoteBackend) ReadsLocally() bool { return false }

func (b *remoteBackend) log(id, call string) {
	if id == b.watch {
		b.mu.Lock()
		b.calls = append(b.calls, call)
		b.mu.Unlock()
	}
}

func (b *remoteBackend) GetResult(ctx context.Context, id string, dst []byte) ([]byte, bool, error) {
	b.log(id, "get")
	return b.Backend.GetResult(ctx, id, dst)
}

func (b *remoteBackend) Subscribe(ctx context.Context, id string) (transport.Subscription, error) {
	b.log(id, "subscribe")
	return b.Backend.Subscribe(ctx, id)
}

// On a backend whose reads are round trips, Get subscribes first and then
// reads, as Celery does, finished task or not: one read, not two, before
// it waits for a task not yet finished.
func TestGetSubscribesFirstOnARemoteBackend(t *testing.T) {
	t.Parallel()
	const id = "00000000-0000-4000-8000-000000000009"
	backend := &remoteBackend{Backend: memory.NewBackend(), watch: id}
	app := newApp(t, Config{Backend: backend})
	ctx := testCtx(t, 10*time.Second)
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := ResultOf[int](app, id).Get(short); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Get of a pending task = %v, want ErrTimeout", err)
	}
	storeSuccess(t, backend, id, "9")
	if v, err := ResultOf[int](app, id).Get(ctx); err != nil || v != 9 {
		t.Fatalf("Get = %v, %v; want 9", v, err)
	}
	backend.mu.Lock()
	defer backend.mu.Unlock()
	if want := []string{"subscribe", "get", "subscribe", "get"}; !slices.Equal(backend.calls, want) {
		t.Fatalf("calls %v, want %v", backend.calls, want)
	}
}

// Get of a finished task reads its record and returns; only a task not
// yet finished is subscribed to.
func TestGetReadsAFinishedResultWithoutSubscribing(t *testing.T) {
	t.Parallel()
	backend := &subscribeCounter{Backend: memory.NewBackend()}
	r, ctx := sendAdd(t, Config{Backend: backend})
	eventually(t, "the task finishes", func() bool { ok, _ := r.Ready(ctx); return ok })
	if v, err := r.Get(ctx); err != nil || v != 5 {
		t.Fatalf("Get = %v, %v; want 5", v, err)
	}
	if n := backend.subscribes.Load(); n != 0 {
		t.Fatalf("%d subscriptions to read a finished task's result, want 0", n)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := ResultOf[int](r.app, "no-such-task").Get(short); !errors.Is(err, ErrTimeout) {
		t.Fatalf("Get of a task that never ran = %v, want ErrTimeout", err)
	}
	if n := backend.subscribes.Load(); n != 1 {
		t.Fatalf("%d subscriptions to wait for a pending task, want 1", n)
	}
}

// A record stored after Get's first read but before its subscription is
// live is not published to it; Get reads the record again once
// subscribed, and finds it.
func TestGetFindsARecordStoredAsItSubscribes(t *testing.T) {
	t.Parallel()
	backend := &subscribeCounter{Backend: memory.NewBackend()}
	const id = "00000000-0000-4000-8000-000000000007"
	backend.beforeSubscribe = func() { storeSuccess(t, backend, id, "7") }
	app := newApp(t, Config{Backend: backend})
	ctx := testCtx(t, 10*time.Second)
	if v, err := ResultOf[int](app, id).Get(ctx); err != nil || v != 7 {
		t.Fatalf("Get = %v, %v; want 7", v, err)
	}
}

// The engine's default memory backend lets results expire after
// Config.ResultExpires, as Celery's result backends do.
func TestDefaultBackendExpiresResults(t *testing.T) {
	t.Parallel()
	r, ctx := sendAdd(t, Config{ResultExpires: time.Second})
	if v, err := r.Get(ctx); err != nil || v != 5 {
		t.Fatalf("Get = %v, %v; want 5", v, err)
	}
	eventually(t, "the result expires", func() bool {
		s, err := r.State(ctx)
		return err == nil && s == "PENDING"
	})
}
