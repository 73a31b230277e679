package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/celerity-go/celerity/transport"
	"github.com/celerity-go/celerity/transport/memory"
)

// canvasApp registers the tasks canvas tests use and starts a worker.
func canvasApp(t *testing.T) *App {
	t.Helper()
	app := newApp(t, Config{})
	Register2(app, "c.add", func(_ context.Context, a, b int) (int, error) { return a + b, nil })
	Register2(app, "c.mul", func(_ context.Context, a, b int) (int, error) { return a * b, nil })
	Register1(app, "c.xsum", func(_ context.Context, xs []int) (int, error) {
		s := 0
		for _, x := range xs {
			s += x
		}
		return s, nil
	})
	Register1(app, "c.fail", func(_ context.Context, msg string) (int, error) {
		return 0, &TaskError{Type: "ValueError", Module: "builtins", Args: []any{msg}}
	})
	startWorker(t, app, WorkerConfig{Concurrency: 4})
	return app
}

func getInt(t *testing.T, ctx context.Context, r *AsyncResult[any]) int {
	t.Helper()
	v, err := r.Get(ctx)
	if err != nil {
		t.Fatalf("result %s: %v", r.ID, err)
	}
	f, ok := v.(float64)
	if !ok {
		t.Fatalf("result %s = %#v, want a number", r.ID, v)
	}
	return int(f)
}

func TestChainPassesResultsAlong(t *testing.T) {
	t.Parallel()
	app := canvasApp(t)
	ctx := testCtx(t, 10*time.Second)
	// ((2 + 3) * 4), then xsum of a fixed list (immutable: ignores 20).
	res, err := app.ApplyChain(ctx, Sig("c.add", 2, 3), Sig("c.mul", 4))
	if err != nil {
		t.Fatal(err)
	}
	if got := getInt(t, ctx, res); got != 20 {
		t.Fatalf("chain = %d, want 20", got)
	}
	res, _ = app.ApplyChain(ctx, Sig("c.add", 1, 1), SigI("c.xsum", []int{1, 2, 3}))
	if got := getInt(t, ctx, res); got != 6 {
		t.Fatalf("chain with immutable step = %d, want 6", got)
	}
}

func TestChainFailureMarksLaterSteps(t *testing.T) {
	t.Parallel()
	app := canvasApp(t)
	ctx := testCtx(t, 10*time.Second)
	s2, s3 := Sig("c.add", 1), Sig("c.mul", 2)
	s2.Options.TaskID, s3.Options.TaskID = "step-2-"+t.Name(), "step-3-"+t.Name()
	res, err := app.ApplyChain(ctx, SigI("c.fail", "inchain"), s2, s3)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{res.ID, s2.Options.TaskID} {
		_, err := app.Result(id).Get(ctx)
		if !IsTaskError(err, "ValueError") {
			t.Fatalf("step %s: %v, want ValueError", id, err)
		}
	}
}

func TestGroupResultsInOrderAndSaved(t *testing.T) {
	t.Parallel()
	app := canvasApp(t)
	ctx := testCtx(t, 10*time.Second)
	g, err := app.ApplyGroup(ctx, Sig("c.add", 1, 1), Sig("c.add", 2, 2), Sig("c.mul", 3, 3))
	if err != nil {
		t.Fatal(err)
	}
	got, err := g.Get(ctx)
	if err != nil || fmt.Sprint(got) != "[2 4 9]" {
		t.Fatalf("group = %v, %v", got, err)
	}
	if err := g.Save(ctx); err != nil {
		t.Fatal(err)
	}
	back, err := app.RestoreGroup(ctx, g.ID)
	if err != nil || len(back.Results) != 3 || back.Results[2].ID != g.Results[2].ID {
		t.Fatalf("restored %+v, %v", back, err)
	}
	// Partial failure is visible per member.
	g2, _ := app.ApplyGroup(ctx, Sig("c.add", 1, 1), Sig("c.fail", "x"))
	if _, err := g2.Get(ctx); !IsTaskError(err, "ValueError") {
		t.Fatalf("group with a failure: %v", err)
	}
	if v := getInt(t, ctx, g2.Results[0]); v != 2 {
		t.Fatalf("the good member: %d", v)
	}
}

func TestChordRunsBodyOnceWithOrderedResults(t *testing.T) {
	t.Parallel()
	app := canvasApp(t)
	var bodies atomic.Int32
	var mu sync.Mutex
	var seen []int
	Register1(app, "c.collect", func(_ context.Context, xs []int) (int, error) {
		bodies.Add(1)
		mu.Lock()
		seen = xs
		mu.Unlock()
		return len(xs), nil
	})
	ctx := testCtx(t, 10*time.Second)
	header := []*Signature{}
	for i := range 10 {
		header = append(header, Sig("c.mul", i, 10))
	}
	res, err := app.ApplyChord(ctx, header, Sig("c.collect"))
	if err != nil {
		t.Fatal(err)
	}
	if n := getInt(t, ctx, res); n != 10 {
		t.Fatalf("body saw %d results", n)
	}
	if !slices.Equal(seen, []int{0, 10, 20, 30, 40, 50, 60, 70, 80, 90}) {
		t.Fatalf("body args %v, want header results in group_index order", seen)
	}
	time.Sleep(50 * time.Millisecond)
	if bodies.Load() != 1 {
		t.Fatalf("body ran %d times", bodies.Load())
	}
}

func TestChordHeaderFailureGivesChordError(t *testing.T) {
	t.Parallel()
	app := canvasApp(t)
	ctx := testCtx(t, 10*time.Second)
	var errbackArgs atomic.Value
	RegisterRaw(app, "c.onerr", func(_ context.Context, task *Task) error {
		errbackArgs.Store(string(task.Args()))
		return nil
	})
	body := Sig("c.xsum")
	eb := Sig("c.onerr")
	body.Options.LinkError = append(body.Options.LinkError, *eb)
	res, err := app.ApplyChord(ctx, []*Signature{Sig("c.add", 1, 1), SigI("c.fail", "inchord")}, body)
	if err != nil {
		t.Fatal(err)
	}
	_, err = res.Get(ctx)
	var te *TaskError
	if !errors.As(err, &te) || te.Type != "ChordError" || te.Module != "celery.exceptions" ||
		!slicesContainsSub(fmt.Sprint(te.Args), "raised ValueError('inchord')") {
		t.Fatalf("chord body: %v", err)
	}
	eventually(t, "chord errback", func() bool {
		v, _ := errbackArgs.Load().(string)
		return v == `["`+res.ID+`"]`
	})
}

func slicesContainsSub(s, sub string) bool { return len(s) >= len(sub) && contains(s, sub) }

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestLinkAndLinkErrorAreApplied(t *testing.T) {
	t.Parallel()
	app := canvasApp(t)
	ctx := testCtx(t, 10*time.Second)
	cb := Sig("c.mul", 10)
	cb.Options.TaskID = "cb-" + t.Name()
	res, err := app.SendTask(ctx, "c.add", []any{2, 3}, nil, Link(cb))
	if err != nil {
		t.Fatal(err)
	}
	if getInt(t, ctx, res) != 5 || getInt(t, ctx, app.Result(cb.Options.TaskID)) != 50 {
		t.Fatal("link callback did not get the result prepended")
	}
	var got atomic.Value
	RegisterRaw(app, "c.errback", func(_ context.Context, task *Task) error {
		got.Store(string(task.Args()) + " parent=" + task.ParentID)
		return nil
	})
	bad, _ := app.SendTask(ctx, "c.fail", []any{"boom"}, nil, LinkError(Sig("c.errback")))
	bad.Get(ctx)
	eventually(t, "errback", func() bool {
		v, _ := got.Load().(string)
		return v == `["`+bad.ID+`"] parent=`+bad.ID
	})
}

// TestLinksGoAsGroups: as in Celery, several link callbacks are sent as
// one group (one group id), a single one alone, and errbacks always as a
// group; all with the linking task as parent.
func TestLinksGoAsGroups(t *testing.T) {
	t.Parallel()
	app := canvasApp(t)
	ctx := testCtx(t, 10*time.Second)
	var mu sync.Mutex
	seen := map[string][2]string{} // id -> group, parent
	RegisterRaw(app, "c.record", func(_ context.Context, task *Task) error {
		mu.Lock()
		seen[strings.Clone(task.ID)] = [2]string{strings.Clone(task.GroupID), strings.Clone(task.ParentID)} // views die with the task
		mu.Unlock()
		return nil
	})
	sig := func(id string) *Signature {
		s := Sig("c.record")
		s.Options.TaskID = id + "-" + t.Name()
		return s
	}
	two, err := app.SendTask(ctx, "c.add", []any{1, 2}, nil, Link(sig("cb1")), Link(sig("cb2")))
	if err != nil {
		t.Fatal(err)
	}
	one, err := app.SendTask(ctx, "c.add", []any{1, 2}, nil, Link(sig("cb3")))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := app.SendTask(ctx, "c.fail", []any{"boom"}, nil, LinkError(sig("eb1")))
	if err != nil {
		t.Fatal(err)
	}
	get := func(id string) [2]string {
		var v [2]string
		eventually(t, id+" to run", func() bool {
			mu.Lock()
			defer mu.Unlock()
			var ok bool
			v, ok = seen[id+"-"+t.Name()]
			return ok
		})
		return v
	}
	cb1, cb2, cb3, eb1 := get("cb1"), get("cb2"), get("cb3"), get("eb1")
	if cb1[0] == "" || cb1[0] != cb2[0] || cb1[1] != two.ID || cb2[1] != two.ID {
		t.Errorf("two callbacks: group/parent %v and %v, want one group, parent %s", cb1, cb2, two.ID)
	}
	if cb3 != [2]string{"", one.ID} {
		t.Errorf("single callback: group/parent %v, want no group, parent %s", cb3, one.ID)
	}
	if eb1[0] == "" || eb1[1] != bad.ID {
		t.Errorf("errback: group/parent %v, want a group, parent %s", eb1, bad.ID)
	}
}

func TestNestedCanvas(t *testing.T) {
	t.Parallel()
	app := canvasApp(t)
	ctx := testCtx(t, 15*time.Second)
	// A group in the middle of a chain becomes a chord: (1+1) -> [2+10, 2*10] -> xsum = 32.
	res, err := app.ApplyChain(ctx, Sig("c.add", 1, 1), GroupSig(Sig("c.add", 10), Sig("c.mul", 10)), Sig("c.xsum"))
	if err != nil {
		t.Fatal(err)
	}
	if got := getInt(t, ctx, res); got != 32 {
		t.Fatalf("chain(add, group, xsum) = %d, want 32", got)
	}
	// A group of chains.
	g, err := app.ApplyGroup(ctx, ChainSig(Sig("c.add", 1, 2), Sig("c.mul", 3)), ChainSig(Sig("c.add", 2, 2), Sig("c.mul", 5)))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := g.Get(ctx); err != nil || fmt.Sprint(got) != "[9 20]" {
		t.Fatalf("group of chains = %v, %v", got, err)
	}
	// A chord inside a chain, continued after the body: (1+2) -> chord[3+1, 3*2] -> xsum=10 -> *3 = 30.
	res, err = app.ApplyChain(ctx, Sig("c.add", 1, 2),
		ChordSig([]*Signature{Sig("c.add", 1), Sig("c.mul", 2)}, Sig("c.xsum")), Sig("c.mul", 3))
	if err != nil {
		t.Fatal(err)
	}
	if got := getInt(t, ctx, res); got != 30 {
		t.Fatalf("chain(add, chord, mul) = %d, want 30", got)
	}
}

func TestChunksMapStarmap(t *testing.T) {
	t.Parallel()
	app := canvasApp(t)
	ctx := testCtx(t, 10*time.Second)
	m, err := app.Map(ctx, Sig("c.xsum"), []any{[]int{1, 2}, []int{3, 4}})
	if err != nil {
		t.Fatal(err)
	}
	if v, err := m.Get(ctx); err != nil || fmt.Sprint(v) != "[3 7]" {
		t.Fatalf("map = %v, %v", v, err)
	}
	sm, _ := app.Starmap(ctx, Sig("c.add"), [][]any{{1, 2}, {3, 4}})
	if v, err := sm.Get(ctx); err != nil || fmt.Sprint(v) != "[3 7]" {
		t.Fatalf("starmap = %v, %v", v, err)
	}
	items := [][]any{{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}}
	g, err := app.Chunks(ctx, Sig("c.add"), items, 2)
	if err != nil {
		t.Fatal(err)
	}
	if v, err := g.Get(ctx); err != nil || fmt.Sprint(v) != "[[2 4] [6 8] [10]]" {
		t.Fatalf("chunks = %v, %v", v, err)
	}
}

// plainBackend hides the memory backend's chord and group methods, as the
// rpc:// backend has none.
type plainBackend struct{ transport.Backend }

func TestChordRefusedWithoutChordBackend(t *testing.T) {
	t.Parallel()
	app := newApp(t, Config{Broker: memory.NewBroker(), Backend: plainBackend{memory.NewBackend()}})
	ctx := testCtx(t, 5*time.Second)
	_, err := app.ApplyChord(ctx, []*Signature{Sig("c.add", 1, 1)}, Sig("c.xsum"))
	if !errors.Is(err, ErrChordUnsupported) {
		t.Fatalf("chord on a backend without chord counting: %v, want ErrChordUnsupported", err)
	}
	g, err := app.ApplyGroup(ctx, Sig("c.add", 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Save(ctx); err == nil {
		t.Fatal("GroupResult.Save on a backend without group records succeeded")
	}
}

// leafRun is a run of leafApp's task n.leaf: its id (without
// leafIDSuffix) and group id.
type leafRun struct{ id, group string }

// leafIDSuffix ends the task ids leafApp's signatures are given.
func leafIDSuffix(t *testing.T) string { return "-" + t.Name() }

// leafApp returns an app, run by a worker, whose task n.leaf reports each
// run on runs and returns 1; leaf returns its signature with the task id
// id + leafIDSuffix(t). Tasks registered right after it are served too.
func leafApp(t *testing.T) (app *App, runs <-chan leafRun, leaf func(id string) *Signature) {
	app = newApp(t, Config{})
	ch := make(chan leafRun, 16)
	RegisterRaw(app, "n.leaf", func(_ context.Context, task *Task) error {
		ch <- leafRun{strings.Clone(strings.TrimSuffix(task.ID, leafIDSuffix(t))), strings.Clone(task.GroupID)}
		task.Return([]byte("1"))
		return nil
	})
	startWorker(t, app, WorkerConfig{Concurrency: 2})
	return app, ch, func(id string) *Signature {
		s := Sig("n.leaf")
		s.Options.TaskID = id + leafIDSuffix(t)
		return s
	}
}

// A group nested in a group or in a chord header is unrolled into the
// outer one, as Celery's group._prepared does: its members run under the
// outer group's id, the GroupResult lists them flat, and the chord counts
// each of them. Checked against Celery 5.2.6: group(group(a, b), c) sends
// three messages carrying the outer group's id, and its as_tuple lists
// three results.
func TestNestedGroupsAreUnrolled(t *testing.T) {
	t.Parallel()
	app, leaves, leaf := leafApp(t)
	Register1(app, "n.count", func(_ context.Context, xs []int) (int, error) { return len(xs), nil })
	ctx := testCtx(t, 10*time.Second)
	key := func(r leafRun) string { return r.id }

	g, err := app.ApplyGroup(ctx, GroupSig(leaf("a"), GroupSig(leaf("b"), leaf("c"))), leaf("d"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range g.Results {
		ids = append(ids, strings.TrimSuffix(r.ID, leafIDSuffix(t)))
	}
	if fmt.Sprint(ids) != "[a b c d]" {
		t.Errorf("group(group(a, group(b, c)), d) results %v, want [a b c d]", ids)
	}
	if got, err := g.Get(ctx); err != nil || fmt.Sprint(got) != "[1 1 1 1]" {
		t.Errorf("group Get = %v, %v; want [1 1 1 1]", got, err)
	}
	for id, r := range receiveN(t, ctx, leaves, 4, key) {
		if r.group != g.ID {
			t.Errorf("%s ran in group %q, want the outer group %q", id, r.group, g.ID)
		}
	}

	res, err := app.ApplyChord(ctx, []*Signature{GroupSig(leaf("e"), leaf("f")), leaf("g")}, Sig("n.count"))
	if err != nil {
		t.Fatal(err)
	}
	if got := getInt(t, ctx, res); got != 3 {
		t.Errorf("chord(group(e, f), g) body got %d header results, want 3", got)
	}
	runs := receiveN(t, ctx, leaves, 3, key)
	chordID := runs["e"].group
	for id, r := range runs {
		if r.group == "" || r.group != chordID {
			t.Errorf("%s ran in group %q, want the chord's %q like the others", id, r.group, chordID)
		}
	}
}

// Canvases nested in canvases give what Celery 5.2.6 gives (checked
// against it):
//   - a chain nested in a chain is spliced into it (prepare_steps);
//   - a chain or a chord in a chord header belongs to it by the task that
//     gives its result, the chain's last step or the chord's body
//     (prepare_steps, chord.freeze), so the chord counts it once, when
//     that result is ready;
//   - applying a group, or a chain that ends in one, gives a handle whose
//     Group is that group and whose Get returns the members' results (a
//     GroupResult in Celery): the chain's group gets its member ids when
//     the chain is sent.
func TestNestedCanvasesGiveCeleryResults(t *testing.T) {
	t.Parallel()
	app := canvasApp(t)
	ctx := testCtx(t, 10*time.Second)
	for _, c := range []struct {
		name  string
		sig   *Signature
		want  string
		group bool // the final result is a group's
	}{
		// ((1+1)*3+1)*2
		{"chain(add, chain(mul, add), mul)", ChainSig(Sig("c.add", 1, 1), ChainSig(Sig("c.mul", 3), Sig("c.add", 1)), Sig("c.mul", 2)), "14", false},
		// xsum([(1+1)*3, 2+2])
		{"chord([chain(add, mul), add], xsum)", ChordSig([]*Signature{ChainSig(Sig("c.add", 1, 1), Sig("c.mul", 3)), Sig("c.add", 2, 2)}, Sig("c.xsum")), "10", false},
		// xsum([xsum([1+1, 2+2]), 2+2])
		{"chord([chord([add, add], xsum), add], xsum)", ChordSig([]*Signature{ChordSig([]*Signature{Sig("c.add", 1, 1), Sig("c.add", 2, 2)}, Sig("c.xsum")), Sig("c.add", 2, 2)}, Sig("c.xsum")), "10", false},
		{"group(add, add)", GroupSig(Sig("c.add", 1, 1), Sig("c.add", 2, 2)), "[2 4]", true},
		{"chain(add, group(mul, add))", ChainSig(Sig("c.add", 1, 1), GroupSig(Sig("c.mul", 3), Sig("c.add", 1))), "[6 3]", true},
	} {
		res, err := app.Apply(ctx, c.sig)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if g := res.Group(); c.group && (g == nil || g.ID != res.ID || len(g.Results) != 2) || !c.group && g != nil {
			t.Fatalf("%s: Group() = %+v, want the group of 2 under the handle's id: %v", c.name, g, c.group)
		}
		got, err := res.Get(ctx)
		if err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("%s: Get = %v, %v; want %s", c.name, got, err, c.want)
		}
	}
}

// In a group, a chain's last step carries the group id; its first step
// does not (Celery's prepare_steps freezes only the last one with it).
func TestChainInGroupJoinsByItsLastStep(t *testing.T) {
	t.Parallel()
	app, leaves, leaf := leafApp(t)
	ctx := testCtx(t, 10*time.Second)
	g, err := app.ApplyGroup(ctx, ChainSig(leaf("first"), leaf("last")), leaf("other"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := g.Get(ctx); err != nil || fmt.Sprint(got) != "[1 1]" {
		t.Fatalf("group(chain(first, last), other) = %v, %v; want [1 1]", got, err)
	}
	runs := receiveN(t, ctx, leaves, 3, func(r leafRun) string { return r.id })
	for id, want := range map[string]string{"first": "", "last": g.ID, "other": g.ID} {
		if runs[id].group != want {
			t.Errorf("%s ran in group %q, want %q", id, runs[id].group, want)
		}
	}
}
