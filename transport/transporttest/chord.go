package transporttest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

// chordPart returns the [1, id, state, result] entry the engine records
// for header task id.
func chordPart(id, result string) []byte {
	return []byte(fmt.Sprintf(`[1, %q, "SUCCESS", %s]`, id, result))
}

// chordBackend returns h's new backend as a transport.ChordBackend, or skips t
// when it does not count chords (the engine refuses chords on it with
// ErrChordUnsupported, as AMQP's rpc:// backend).
func chordBackend(t *testing.T, h Harness) transport.ChordBackend {
	t.Helper()
	b := h.NewBackend(t)
	c, ok := b.(transport.ChordBackend)
	if !ok {
		t.Skipf("%T does not count chords", b)
	}
	return c
}

// report records part at index and returns what ChordPartDone said,
// failing t on an error.
func report(t *testing.T, c transport.ChordBackend, groupID string, index int, part []byte) (bool, [][]byte) {
	t.Helper()
	done, parts, err := c.ChordPartDone(context.Background(), groupID, index, part)
	if err != nil {
		t.Fatalf("ChordPartDone(%s, %d): %v", groupID, index, err)
	}
	return done, parts
}

func setSize(t *testing.T, c transport.ChordBackend, groupID string, size int) {
	t.Helper()
	if err := c.SetChordSize(context.Background(), groupID, size); err != nil {
		t.Fatalf("SetChordSize(%s, %d): %v", groupID, size, err)
	}
}

func wantParts(t *testing.T, got [][]byte, want ...[]byte) {
	t.Helper()
	if !slices.EqualFunc(got, want, func(a, b []byte) bool { return string(a) == string(b) }) {
		t.Fatalf("parts %q, want %q", got, want)
	}
}

// runChords runs the chord and group cases of RunBackend.
func runChords(t *testing.T, h Harness) {
	t.Run("ChordDoneOnLastPartInIndexOrder", func(t *testing.T) {
		// Header tasks finish in any order; the body gets their results
		// in header order, once, when the last one is recorded.
		c := chordBackend(t, h)
		setSize(t, c, "ch-order", 3)
		p0, p1, p2 := chordPart("t0", "10"), chordPart("t1", `"eleven"`), chordPart("t2", `[12]`)
		for _, p := range []struct {
			i    int
			part []byte
		}{{2, p2}, {0, p0}} {
			if done, _ := report(t, c, "ch-order", p.i, p.part); done {
				t.Fatalf("done after part %d of 3", p.i)
			}
		}
		done, parts := report(t, c, "ch-order", 1, p1)
		if !done {
			t.Fatal("the last part did not complete the chord")
		}
		wantParts(t, parts, p0, p1, p2)
	})
	t.Run("ChordPartWithoutIndexSortsLast", func(t *testing.T) {
		// Header tasks without group_index (scored +inf by Celery) come
		// after those with one, among themselves in the order of their
		// bytes, as members of equal score in a Redis sorted set.
		c := chordBackend(t, h)
		setSize(t, c, "ch-noindex", 4)
		pn2, pn1 := chordPart("tn2", "0"), chordPart("tn1", "3")
		p0, p1 := chordPart("t0", "1"), chordPart("t1", "2")
		for i, p := range []struct {
			index int
			part  []byte
		}{{transport.NoGroupIndex, pn2}, {1, p1}, {transport.NoGroupIndex, pn1}} {
			if done, _ := report(t, c, "ch-noindex", p.index, p.part); done {
				t.Fatalf("done after %d parts of 4", i+1)
			}
		}
		done, parts := report(t, c, "ch-noindex", 0, p0)
		if !done {
			t.Fatal("the last part did not complete the chord")
		}
		wantParts(t, parts, p0, p1, pn1, pn2)
	})
	t.Run("ChordRepeatedPartCountsOnce", func(t *testing.T) {
		// A redelivered header task run again reports its part again,
		// with the same or another result: it must neither complete the
		// chord early nor complete it a second time.
		c := chordBackend(t, h)
		setSize(t, c, "ch-repeat", 3)
		p0, p1, p2 := chordPart("t0", "10"), chordPart("t1", "11"), chordPart("t2", "12")
		for _, p := range []struct {
			i    int
			part []byte
		}{{0, p0}, {1, p1}, {1, p1}, {1, chordPart("t1", "99")}} {
			if done, _ := report(t, c, "ch-repeat", p.i, p.part); done {
				t.Fatalf("part %d %s completed the chord before every part was recorded", p.i, p.part)
			}
		}
		done, parts := report(t, c, "ch-repeat", 2, p2)
		if !done {
			t.Fatal("the last part did not complete the chord")
		}
		wantParts(t, parts, p0, p1, p2)
		for _, p := range []struct {
			i    int
			part []byte
		}{{2, p2}, {0, p0}} {
			if done, _ := report(t, c, "ch-repeat", p.i, p.part); done {
				t.Fatalf("a repeated part %s completed the chord twice", p.part)
			}
		}
	})
	t.Run("ChordDoneOnceAmongConcurrentParts", func(t *testing.T) {
		// Header tasks finishing at once on several workers, some of them
		// twice: exactly one report completes the chord, with every part.
		c := chordBackend(t, h)
		const n = 16
		setSize(t, c, "ch-race", n)
		want := make([][]byte, n)
		for i := range want {
			want[i] = chordPart(fmt.Sprintf("t%02d", i), fmt.Sprint(i))
		}
		var mu sync.Mutex
		var completions [][][]byte
		var errs []error
		var wg sync.WaitGroup
		for i := range 2 * n {
			wg.Go(func() {
				done, parts, err := c.ChordPartDone(context.Background(), "ch-race", i%n, want[i%n])
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
				}
				if done {
					completions = append(completions, parts)
				}
			})
		}
		wg.Wait()
		if len(errs) > 0 {
			t.Fatalf("ChordPartDone: %v", errs)
		}
		if len(completions) != 1 {
			t.Fatalf("%d reports completed the chord, want exactly 1", len(completions))
		}
		wantParts(t, completions[0], want...)
	})
	t.Run("ChordsCountApart", func(t *testing.T) {
		// Two chords under way at once count their own parts.
		c := chordBackend(t, h)
		setSize(t, c, "ch-a", 2)
		setSize(t, c, "ch-b", 1)
		a0, a1, b0 := chordPart("a0", "1"), chordPart("a1", "2"), chordPart("b0", "3")
		if done, _ := report(t, c, "ch-a", 0, a0); done {
			t.Fatal("ch-a done after 1 part of 2")
		}
		done, parts := report(t, c, "ch-b", 0, b0)
		if !done {
			t.Fatal("ch-b's only part did not complete it")
		}
		wantParts(t, parts, b0)
		done, parts = report(t, c, "ch-a", 1, a1)
		if !done {
			t.Fatal("ch-a's last part did not complete it")
		}
		wantParts(t, parts, a0, a1)
	})
	t.Run("ChordCleanupForgetsTheCounts", func(t *testing.T) {
		// Once the body is sent the engine calls ChordCleanup: the parts
		// and size are gone, so the id counts from nothing again.
		c := chordBackend(t, h)
		ctx := context.Background()
		setSize(t, c, "ch-clean", 1)
		if done, _ := report(t, c, "ch-clean", 0, chordPart("old", "1")); !done {
			t.Fatal("the only part did not complete the chord")
		}
		if err := c.ChordCleanup(ctx, "ch-clean"); err != nil {
			t.Fatal(err)
		}
		if err := c.ChordCleanup(ctx, "ch-never"); err != nil {
			t.Fatalf("ChordCleanup of an unknown chord: %v", err)
		}
		fresh := chordPart("new", "2")
		if done, _ := report(t, c, "ch-clean", 0, fresh); done {
			t.Fatal("a part completed a cleaned-up chord whose size was not set again")
		}
		if err := c.ChordCleanup(ctx, "ch-clean"); err != nil {
			t.Fatal(err)
		}
		setSize(t, c, "ch-clean", 1)
		done, parts := report(t, c, "ch-clean", 0, fresh)
		if !done {
			t.Fatal("after ChordCleanup, index 0 still counted as recorded")
		}
		wantParts(t, parts, fresh)
	})
	t.Run("GroupSaveAndGet", func(t *testing.T) {
		// GroupResult.save / restore: the record comes back byte for byte,
		// appended to dst; a second save replaces it; a group record is
		// not a task record.
		b := h.NewBackend(t)
		g, ok := b.(transport.GroupStore)
		if !ok {
			t.Skipf("%T does not save groups", b)
		}
		ctx := context.Background()
		prefix := []byte("dst:")
		got, found, err := g.GetGroup(ctx, "grp-1", prefix)
		if err != nil || found || string(got) != string(prefix) {
			t.Fatalf("GetGroup of an unsaved group = %q %v %v", got, found, err)
		}
		member := func(id string) codec.ResultRef { return codec.ResultRef{ID: []byte(id)} }
		rec := codec.AppendGroupRecord(nil, &codec.ResultRef{ID: []byte("grp-1"), IsGroup: true,
			Children: []codec.ResultRef{member("m-1"), member("m-2")}})
		if err := g.SaveGroup(ctx, "grp-1", rec); err != nil {
			t.Fatal(err)
		}
		got, found, err = g.GetGroup(ctx, "grp-1", prefix)
		if err != nil || !found || string(got) != string(prefix)+string(rec) {
			t.Fatalf("GetGroup = %q %v %v, want %q", got, found, err, string(prefix)+string(rec))
		}
		rec2 := codec.AppendGroupRecord(nil, &codec.ResultRef{ID: []byte("grp-1"), IsGroup: true,
			Children: []codec.ResultRef{member("m-3")}})
		if err := g.SaveGroup(ctx, "grp-1", rec2); err != nil {
			t.Fatal(err)
		}
		if got, _, err := g.GetGroup(ctx, "grp-1", nil); err != nil || string(got) != string(rec2) {
			t.Fatalf("GetGroup after a second save = %q %v, want %q", got, err, rec2)
		}
		if _, found, err := b.GetResult(ctx, "grp-1", nil); err != nil || found {
			t.Fatalf("GetResult of a group id: found=%v err=%v, want no task record", found, err)
		}
	})
}
