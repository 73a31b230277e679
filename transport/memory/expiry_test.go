package memory

import (
	"context"
	"fmt"
	"runtime"
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
	b.genStart = 0 // the first generation starts at the test clock's 0
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

// A record reads as missing from the moment it expires, and its memory
// goes when its generation is dropped. Storing a record again restarts its
// time, and an expired SUCCESS record may be replaced.
func TestResultsExpire(t *testing.T) {
	b, clock := expiringBackend(time.Minute)
	storeState(t, b, "a", codec.StateStarted)
	*clock = int64(30 * time.Second)
	storeState(t, b, "a", codec.StateSuccess) // expires at 90s now
	storeState(t, b, "b", codec.StateSuccess) // 90s too
	*clock = int64(61 * time.Second)
	storeState(t, b, "c", codec.StateSuccess) // 121s, in the second generation
	if !found(t, b, "a") || b.Len() != 3 {
		t.Fatalf("at 61s: a found %v, Len %d; want a kept (stored again at 30s), 3 records", found(t, b, "a"), b.Len())
	}
	*clock = int64(90 * time.Second)
	if found(t, b, "a") || found(t, b, "b") || !found(t, b, "c") {
		t.Fatalf("at 90s: a %v, b %v, c %v; want only c", found(t, b, "a"), found(t, b, "b"), found(t, b, "c"))
	}
	if b.Len() != 3 {
		t.Fatalf("Len = %d before the first generation is dropped, want 3", b.Len())
	}
	storeState(t, b, "b", codec.StateFailure) // the expired SUCCESS is replaced
	raw, _, _ := b.GetResult(context.Background(), "b", nil)
	var r codec.Result
	if err := codec.DecodeResultJSON(raw, &r); err != nil || r.State != codec.StateFailure {
		t.Fatalf("b = %s (%v), want the FAILURE stored over the expired SUCCESS", raw, err)
	}
	if b.Len() != 3 {
		t.Fatalf("Len = %d with b stored again, want a, c and the new b", b.Len())
	}
	*clock = int64(120 * time.Second)
	storeState(t, b, "d", codec.StateSuccess) // the first generation (a) goes
	if b.Len() != 3 || !found(t, b, "c") || !found(t, b, "b") {
		t.Fatalf("at 120s: Len %d, c %v, b %v; want a dropped, b, c and d kept", b.Len(), found(t, b, "c"), found(t, b, "b"))
	}
	if err := b.ForgetResult(context.Background(), "c"); err != nil { // c is in the old generation
		t.Fatal(err)
	}
	if found(t, b, "c") || b.Len() != 2 {
		t.Fatalf("after forgetting c: found %v, Len %d; want it gone", found(t, b, "c"), b.Len())
	}
	*clock = int64(500 * time.Second)
	if found(t, b, "d") || b.Len() != 0 {
		t.Fatalf("at 500s: d found %v, Len %d; want everything dropped", found(t, b, "d"), b.Len())
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

// A steady stream of records holds at most two generations of them; one
// of records forgotten as soon as they are read holds nothing.
func TestExpiryHoldsAtMostTwoGenerations(t *testing.T) {
	b, clock := expiringBackend(10 * time.Second)
	for i := range 100_000 {
		*clock = int64(i) * int64(time.Second)
		storeState(t, b, fmt.Sprint(i), codec.StateSuccess)
		if n := b.Len(); n > 20 {
			t.Fatalf("at %ds: %d records held with result_expires 10s, one stored a second; want at most 20", i, n)
		}
	}
	b, _ = expiringBackend(time.Hour)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range 100_000 {
		id := fmt.Sprint(i)
		storeState(t, b, id, codec.StateSuccess)
		if err := b.ForgetResult(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if n := b.Len(); n != 0 {
		t.Fatalf("%d records held after each was forgotten, want 0", n)
	}
	// Nothing else per record either (a list of the records in the order
	// they expire would hold 100 000 entries and their ids, 3 MB).
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 1<<20 {
		t.Fatalf("heap grew %d bytes over 100 000 records stored and forgotten, want under 1 MiB", grown)
	}
	runtime.KeepAlive(b)
}
