package redis_test

import (
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/redis"
)

func rec(id string, state codec.State, result string) transport.ResultRecord {
	r := codec.Result{State: state, Result: []byte(result), TaskID: []byte(id)}
	if state.Ready() {
		r.DateDone = time.Date(2026, 11, 24, 2, 14, 49, 489844000, time.UTC)
	}
	return transport.ResultRecord{TaskID: []byte(id), Data: codec.AppendResultJSON(nil, &r)}
}

func TestStoreResultsWritesCeleryKeys(t *testing.T) {
	t.Parallel()
	b, prefix := newBackend(t, redis.WithResultExpires(90*time.Second))
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	// Batch of several records, one round trip.
	var recs []transport.ResultRecord
	for i := range 5 {
		recs = append(recs, rec("task-"+strconv.Itoa(i), codec.StateSuccess, strconv.Itoa(i)))
	}
	if err := b.StoreResults(ctx, recs...); err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		key := prefix + "celery-task-meta-task-" + strconv.Itoa(i)
		if key != b.TaskKey("task-"+strconv.Itoa(i)) {
			t.Fatalf("TaskKey = %q, want %q", b.TaskKey("task-"+strconv.Itoa(i)), key)
		}
		v, err := c.Do(ctx, c.B().Get().Key(key).Build()).ToString()
		if err != nil || v != string(r.Data) {
			t.Fatalf("GET %s = %q, %v", key, v, err)
		}
		ttl, _ := c.Do(ctx, c.B().Ttl().Key(key).Build()).AsInt64()
		if ttl <= 0 || ttl > 90 {
			t.Fatalf("TTL %d, want <= 90 (result_expires)", ttl)
		}
	}
}

func TestResultNeverExpires(t *testing.T) {
	t.Parallel()
	b, prefix := newBackend(t, redis.WithResultExpires(0))
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	if err := b.StoreResults(ctx, rec("forever", codec.StateSuccess, "1")); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := c.Do(ctx, c.B().Ttl().Key(prefix+"celery-task-meta-forever").Build()).AsInt64(); ttl != -1 {
		t.Fatalf("TTL %d, want -1 (no expiry)", ttl)
	}
}

// TestSuccessIsKeptAgainstAnyWriter covers SUCCESS records written by
// others: Python's JSON with another key order, and msgpack.
func TestSuccessIsKeptAgainstAnyWriter(t *testing.T) {
	t.Parallel()
	b, prefix := newBackend(t)
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	for name, stored := range map[string]string{
		"python-json":  `{"status": "SUCCESS", "result": 5, "traceback": null, "children": [], "date_done": "2026-11-24T02:14:49.489844", "task_id": "x"}`,
		"other-order":  `{"task_id": "x", "result": {"status": "FAILURE"}, "status": "SUCCESS"}`,
		"msgpack":      "\x86\xa6status\xa7SUCCESS\xa6result\x05\xa9traceback\xc0\xa8children\x90\xa9date_done\xc0\xa7task_id\xa1x",
		"started-only": `{"status": "STARTED", "result": {"pid": 1, "hostname": "h"}, "task_id": "x"}`,
	} {
		key := prefix + "celery-task-meta-" + name
		if err := c.Do(ctx, c.B().Set().Key(key).Value(stored).Build()).Error(); err != nil {
			t.Fatal(err)
		}
		if err := b.StoreResults(ctx, rec(name, codec.StateFailure, `{"exc_type": "ValueError", "exc_message": ["late"], "exc_module": "builtins"}`)); err != nil {
			t.Fatal(err)
		}
		v, _ := c.Do(ctx, c.B().Get().Key(key).Build()).ToString()
		replaced := v != stored
		if want := name == "started-only"; replaced != want {
			t.Errorf("%s: replaced=%v, want %v", name, replaced, want)
		}
	}
}

func TestConcurrentWritersKeepSuccess(t *testing.T) {
	t.Parallel()
	b, _ := newBackend(t)
	ctx := ctxT(t, 20*time.Second)
	for i := range 20 {
		id := "race-" + strconv.Itoa(i)
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				state := codec.StateFailure
				if w == 0 {
					state = codec.StateSuccess
				}
				b.StoreResults(ctx, rec(id, state, `{"exc_type": "E", "exc_message": [], "exc_module": "m"}`))
			}()
		}
		wg.Wait()
		v, found, err := b.GetResult(ctx, id, nil)
		if err != nil || !found {
			t.Fatal(err)
		}
		var r codec.Result
		codec.DecodeResultJSON(v, &r)
		// The SUCCESS writer may have come last or first; either way a
		// FAILURE written after it must not have replaced it.
		if r.State != codec.StateSuccess {
			// Only possible if every FAILURE came before the SUCCESS,
			// in which case SUCCESS replaced them: check it is there.
			t.Fatalf("%s ended as %v", id, r.State)
		}
	}
}

func TestGroupRecords(t *testing.T) {
	t.Parallel()
	b, prefix := newBackend(t)
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	doc := []byte(`{"result": [["g-1", null], [[["c-1", null], null], [["c-2", null], null]]]}`)
	if err := b.SaveGroup(ctx, "g-1", doc); err != nil {
		t.Fatal(err)
	}
	v, err := c.Do(ctx, c.B().Get().Key(prefix+"celery-taskset-meta-g-1").Build()).ToString()
	if err != nil || v != string(doc) {
		t.Fatalf("stored %q %v", v, err)
	}
	got, found, err := b.GetGroup(ctx, "g-1", nil)
	if err != nil || !found || string(got) != string(doc) {
		t.Fatalf("GetGroup = %q %v %v", got, found, err)
	}
	if err := b.ForgetGroup(ctx, "g-1"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := b.GetGroup(ctx, "g-1", nil); found {
		t.Fatal("group still there")
	}
}

// TestChordCounters follows Celery 5.2's native chord counting: the size
// in .s, parts in the sorted set .j scored by group index, .t for extra
// parts; only the part that completes the count gets the parts, ordered.
func TestChordCounters(t *testing.T) {
	t.Parallel()
	b, prefix := newBackend(t, redis.WithResultExpires(time.Hour))
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	const gid = "chord-1"
	sub, err := b.Subscribe(ctx, "") // channel of an unrelated key: subscribing works
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	if err := b.SetChordSize(ctx, gid, 3); err != nil {
		t.Fatal(err)
	}
	if v, _ := c.Do(ctx, c.B().Get().Key(prefix+"celery-taskset-meta-chord-1.s").Build()).ToString(); v != "3" {
		t.Fatalf(".s = %q, want \"3\"", v)
	}
	part := func(i int, state string, result string) []byte {
		return fmt.Appendf(nil, `[1, "t-%d", "%s", %s]`, i, state, result)
	}
	// Parts arrive out of order.
	for _, i := range []int{2, 0} {
		done, parts, err := b.ChordPartDone(ctx, gid, i, part(i, "SUCCESS", strconv.Itoa(i*10)))
		if err != nil || done || parts != nil {
			t.Fatalf("part %d: done=%v parts=%q err=%v", i, done, parts, err)
		}
	}
	// One more header task added at run time (Celery's add_to_chord).
	if err := b.AddToChord(ctx, gid); err != nil {
		t.Fatal(err)
	}
	done, _, err := b.ChordPartDone(ctx, gid, 1, part(1, "SUCCESS", "10"))
	if err != nil || done {
		t.Fatalf("3 of 4: done=%v err=%v", done, err)
	}
	done, parts, err := b.ChordPartDone(ctx, gid, transport.NoGroupIndex, part(3, "FAILURE", `{"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"}`))
	if err != nil || !done {
		t.Fatalf("4 of 4: done=%v err=%v", done, err)
	}
	want := []string{
		`[1, "t-0", "SUCCESS", 0]`, `[1, "t-1", "SUCCESS", 10]`, `[1, "t-2", "SUCCESS", 20]`,
		`[1, "t-3", "FAILURE", {"exc_type": "ValueError", "exc_message": ["x"], "exc_module": "builtins"}]`,
	}
	var got []string
	for _, p := range parts {
		got = append(got, string(p))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("parts\n%q\nwant\n%q", got, want)
	}
	for _, k := range []string{".j", ".t", ".s"} {
		ttl, _ := c.Do(ctx, c.B().Ttl().Key(prefix+"celery-taskset-meta-chord-1"+k).Build()).AsInt64()
		if ttl <= 0 || ttl > 3600 {
			t.Errorf("TTL of %s = %d", k, ttl)
		}
	}
	if err := b.ChordCleanup(ctx, gid); err != nil {
		t.Fatal(err)
	}
	n, _ := c.Do(ctx, c.B().Exists().Key(prefix+"celery-taskset-meta-chord-1.j", prefix+"celery-taskset-meta-chord-1.t", prefix+"celery-taskset-meta-chord-1.s").Build()).AsInt64()
	if n != 0 {
		t.Fatalf("%d chord keys left after cleanup", n)
	}
}

// TestSubscriptionsShareAndRelease checks reference counting: two
// subscribers of one id both receive, closing one keeps the other, and
// after both close the server has no subscription left.
func TestSubscriptionsShareAndRelease(t *testing.T) {
	t.Parallel()
	b, prefix := newBackend(t)
	c := b.Client()
	ctx := ctxT(t, 10*time.Second)
	s1, err := b.Subscribe(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := b.Subscribe(ctx, "shared")
	if err != nil {
		t.Fatal(err)
	}
	if err := b.StoreResults(ctx, rec("shared", codec.StateStarted, `{"pid": 1, "hostname": "h"}`)); err != nil {
		t.Fatal(err)
	}
	for _, s := range []transport.Subscription{s1, s2} {
		if r, err := s.Next(ctx, nil); err != nil || len(r) == 0 {
			t.Fatalf("Next: %q %v", r, err)
		}
	}
	s1.Close()
	if err := b.StoreResults(ctx, rec("shared", codec.StateSuccess, "1")); err != nil {
		t.Fatal(err)
	}
	if r, err := s2.Next(ctx, nil); err != nil || len(r) == 0 {
		t.Fatalf("Next after the other closed: %q %v", r, err)
	}
	s2.Close()
	channel := prefix + "celery-task-meta-shared"
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := c.Do(ctx, c.B().PubsubNumsub().Channel(channel).Build()).AsIntMap()
		if err != nil {
			t.Fatal(err)
		}
		if n[channel] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("channel still has %d subscribers after every subscription closed", n[channel])
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := s2.Next(ctx, nil); err == nil {
		t.Fatal("Next on a closed subscription succeeded")
	}
}

func TestManyConcurrentSubscriptions(t *testing.T) {
	t.Parallel()
	b, _ := newBackend(t)
	ctx := ctxT(t, 20*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "many-" + strconv.Itoa(i%50) // several subscribers per id
			sub, err := b.Subscribe(ctx, id)
			if err != nil {
				errs <- err
				return
			}
			defer sub.Close()
			if got, found, err := b.GetResult(ctx, id, nil); err == nil && found {
				_ = got
				return // already stored: the read after subscribe catches it
			}
			if _, err := sub.Next(ctx, nil); err != nil {
				errs <- fmt.Errorf("%s: %w", id, err)
			}
		}()
	}
	for i := range 50 {
		if err := b.StoreResults(ctx, rec("many-"+strconv.Itoa(i), codec.StateSuccess, "1")); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestBackendClosed(t *testing.T) {
	t.Parallel()
	b, _ := newBackend(t)
	ctx := ctxT(t, 10*time.Second)
	sub, err := b.Subscribe(ctx, "closing")
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if _, err := sub.Next(ctx, nil); err == nil {
		t.Fatal("Next after Close succeeded")
	}
	if err := b.StoreResults(ctx, rec("x", codec.StateSuccess, "1")); err == nil {
		t.Fatal("StoreResults after Close succeeded")
	}
	if _, err := b.Subscribe(ctx, "again"); err == nil {
		t.Fatal("Subscribe after Close succeeded")
	}
}
