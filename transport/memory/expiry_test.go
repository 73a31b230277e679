package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

// expiringBackend returns a backend whose records expire after ttl of the
// clock it returns.
func expiringBackend(ttl time.Duration) (*Backend, *int64) {
	b := NewBackend(ResultExpires(ttl))
	clock := new(int64)
	b.now = func() int64 { return *clock }
	return b, clock
}

func storeState(t *testing.T, b *Backend, id string, state codec.State) {
	t.Helper()
	rec := codec.AppendResultJSON(nil, &codec.Result{State: state, Result: []byte("1"), TaskID: []byte(id)})
	if err := b.StoreResults(context.Background(), transport.ResultRecord{TaskID: []byte(id), Data: rec}); err != nil {
		t.Fatal(err)
	}
}

func found(t *testing.T, b *Backend, id string) bool {
	t.Helper()
	_, ok, err := b.GetResult(context.Background(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// A record reads as missing from the moment it expires; a later store
// frees it. Storing a record again restarts its time, and an expired
// SUCCESS record may be replaced.
func TestResultsExpire(t *testing.T) {
	b, clock := expiringBackend(time.Minute)
	storeState(t, b, "a", codec.StateStarted)
	*clock = int64(30 * time.Second)
	storeState(t, b, "a", codec.StateSuccess) // expires at 90s now
	storeState(t, b, "b", codec.StateSuccess) // 90s too
	*clock = int64(61 * time.Second)
	storeState(t, b, "c", codec.StateSuccess) // 121s
	if !found(t, b, "a") || b.Len() != 3 {
		t.Fatalf("at 61s: a found %v, Len %d; want a kept (stored again at 30s), 3 records", found(t, b, "a"), b.Len())
	}
	*clock = int64(90 * time.Second)
	if found(t, b, "a") || found(t, b, "b") || !found(t, b, "c") {
		t.Fatalf("at 90s: a %v, b %v, c %v; want only c", found(t, b, "a"), found(t, b, "b"), found(t, b, "c"))
	}
	if b.Len() != 3 {
		t.Fatalf("Len = %d before any store frees the expired records, want 3", b.Len())
	}
	storeState(t, b, "b", codec.StateFailure) // the expired SUCCESS is replaced
	if b.Len() != 2 || !found(t, b, "b") {
		t.Fatalf("after a store at 90s: Len %d, b found %v; want a freed and b stored again", b.Len(), found(t, b, "b"))
	}
	raw, _, _ := b.GetResult(context.Background(), "b", nil)
	var r codec.Result
	if err := codec.DecodeResultJSON(raw, &r); err != nil || r.State != codec.StateFailure {
		t.Fatalf("b = %s (%v), want the FAILURE stored over the expired SUCCESS", raw, err)
	}
}

// Records never expire without ResultExpires.
func TestResultsKeptWithoutResultExpires(t *testing.T) {
	b := NewBackend()
	b.now = func() int64 { return int64(1000 * time.Hour) }
	storeState(t, b, "a", codec.StateSuccess)
	if b.now = func() int64 { return int64(2000 * time.Hour) }; !found(t, b, "a") {
		t.Fatal("a record expired without ResultExpires")
	}
}

// One store frees at most expireBatch expired records; the stores after
// it free the rest.
func TestExpiryIsSpreadOverStores(t *testing.T) {
	b, clock := expiringBackend(time.Second)
	for i := range 3 * expireBatch {
		storeState(t, b, fmt.Sprint(i), codec.StateSuccess)
	}
	*clock = int64(2 * time.Second)
	storeState(t, b, "x", codec.StateSuccess)
	if n := b.Len(); n != 2*expireBatch+1 {
		t.Fatalf("Len = %d after one store, want %d", n, 2*expireBatch+1)
	}
	// An expired SUCCESS not freed yet is replaced all the same.
	last := fmt.Sprint(3*expireBatch - 1)
	storeState(t, b, last, codec.StateFailure)
	raw, ok, _ := b.GetResult(context.Background(), last, nil)
	var r codec.Result
	if err := codec.DecodeResultJSON(raw, &r); !ok || err != nil || r.State != codec.StateFailure {
		t.Fatalf("%s = %s (%v), want the FAILURE stored over the expired SUCCESS", last, raw, err)
	}
	storeState(t, b, "y", codec.StateSuccess)
	if n := b.Len(); n != 3 {
		t.Fatalf("Len = %d after three stores, want 3: x, y and the %s stored again", n, last)
	}
}

// In a steady state of stores and expiries, the list of stored records
// stops growing.
func TestExpiryListStaysBounded(t *testing.T) {
	b, clock := expiringBackend(10 * time.Second)
	for i := range 100_000 {
		*clock = int64(i) * int64(time.Second)
		storeState(t, b, fmt.Sprint(i), codec.StateSuccess)
	}
	if b.Len() > 11 || b.stored.len() > 11+expireBatch || len(b.stored.chunks) > 2 {
		t.Fatalf("Len %d, %d listed in %d chunks after 100000 stores living 10 each; want at most 11 records, %d listed in 2 chunks",
			b.Len(), b.stored.len(), len(b.stored.chunks), 11+expireBatch)
	}
}

// The expiry list is FIFO across its chunks, reuses an emptied chunk and
// keeps one chunk when it empties.
func TestExpiryQueueOrder(t *testing.T) {
	var q expiryQueue
	next, want := int64(0), int64(0)
	for round := range 3 {
		for range 2*expiryChunk + 3 {
			q.push(expiring{id: fmt.Sprint(next), expires: next})
			next++
		}
		for q.len() > round {
			e, ok := q.front()
			if !ok || e.expires != want || e.id != fmt.Sprint(want) {
				t.Fatalf("round %d: front = %+v, %v; want %d", round, e, ok, want)
			}
			q.pop()
			want++
		}
	}
	if len(q.chunks) != 1 || q.spare == nil {
		t.Fatalf("%d chunks, spare %v after emptying; want 1 chunk and a spare", len(q.chunks), q.spare != nil)
	}
}
