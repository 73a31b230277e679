package engine

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/internal/unsafeconv"
	"github.com/celerity-go/celerity/transport"
)

// embedSigs is a task's embed: what to apply after it (celery-wire §1.4).
type embedSigs struct {
	Callbacks []codec.Signature `json:"callbacks"`
	Errbacks  []codec.Signature `json:"errbacks"`
	Chain     []codec.Signature `json:"chain"`
	Chord     *codec.Signature  `json:"chord"`
}

// hasCanvas reports whether embed carries any signature: the cheap test
// that keeps plain tasks off the canvas path (the default embed is
// compared, not scanned). It compares with defaultEmbed, not with the
// constant codec.DefaultEmbed: a call without arguments gets defaultEmbed
// itself, and the comparison of a string with itself ends at the pointer.
func hasCanvas(embed []byte) bool {
	if string(embed) == unsafeconv.String(defaultEmbed) {
		return false
	}
	return bytes.Contains(embed, []byte(`"task"`))
}

func (w *Worker) decodeEmbed(t *Task) (*embedSigs, bool) {
	if !hasCanvas(t.embed) {
		return nil, false
	}
	var e embedSigs
	if err := json.Unmarshal(t.embed, &e); err != nil {
		w.app.errorf("worker: undecodable embed (callbacks/chain/chord dropped)", "task", t.Name, "id", t.ID, "err", err)
		return nil, false
	}
	return &e, true
}

// applyNext applies the callbacks and the next chain step of a task that
// succeeded, with its result prepended (celery-wire §2.2-2.4), and lists
// each in st's children as Celery does.
func (w *Worker) applyNext(st *slotState, t *Task, e *embedSigs, result []byte) {
	ctx := contextBackground
	ac := applyCtx{parentID: t.ID, rootID: rootOf(t)}
	apply := func(s *codec.Signature, ac applyCtx) {
		id, g, err := w.app.applySig(ctx, s, result, ac)
		if err != nil {
			w.app.errorf("worker: apply callback or next chain step", "task", t.Name, "id", t.ID, "next", s.Task, "err", err)
			return
		}
		ref := resultRef(id, g)
		st.listChild(&ref)
	}
	if len(e.Callbacks) == 1 {
		apply(&e.Callbacks[0], ac)
	} else if len(e.Callbacks) > 1 {
		// As Celery's tracer: group callbacks are applied each, the others
		// together as one group.
		var plain []codec.Signature
		for i := range e.Callbacks {
			if e.Callbacks[i].SubtaskType != "group" {
				plain = append(plain, e.Callbacks[i])
			} else {
				apply(&e.Callbacks[i], ac)
			}
		}
		if len(plain) > 0 {
			g, err := w.app.applyGroup(ctx, &Signature{}, plain, result, ac)
			if err != nil {
				w.app.errorf("worker: apply callbacks", "task", t.Name, "id", t.ID, "err", err)
			} else {
				ref := resultRef("", g)
				st.listChild(&ref)
			}
		}
	}
	if n := len(e.Chain); n > 0 {
		sub := ac
		sub.chain = e.Chain[:n-1]
		apply(&e.Chain[n-1], sub)
	}
}

// rootOf is the root id what t sends inherits: t's own, else t's id
// (Celery's task_request.root_id or uuid).
func rootOf(t *Task) string {
	if t.RootID != "" {
		return t.RootID
	}
	return t.ID
}

// afterFailure sends errbacks (with the failed id prepended), fails every
// remaining chain step with the same exception, and records a chord part.
func (w *Worker) afterFailure(t *Task, exc []byte) {
	e, ok := w.decodeEmbed(t)
	if !ok {
		return
	}
	ctx := contextBackground
	idJSON, _ := json.Marshal(t.ID)
	if len(e.Errbacks) > 0 {
		// As Celery's backend: the errbacks go as one group, even one alone.
		if _, err := w.app.applyGroup(ctx, &Signature{}, e.Errbacks, idJSON, applyCtx{parentID: t.ID, rootID: rootOf(t)}); err != nil {
			w.app.errorf("worker: apply errbacks", "task", t.Name, "id", t.ID, "err", err)
		}
	}
	for i := range e.Chain {
		if id := e.Chain[i].Options.TaskID; id != "" {
			w.storeRaw(id, e.Chain[i].Options.ReplyTo, codec.StateFailure, exc)
		}
	}
	if e.Chord != nil && t.GroupID != "" {
		w.chordPart(t, codec.StateFailure, exc, e.Chord)
	}
}

// storeRaw stores a ready record for id, a task this worker did not
// receive, with result as its result; replyTo is the task's reply_to.
func (w *Worker) storeRaw(id, replyTo string, state codec.State, result []byte) {
	b := w.app.backend
	if b == nil {
		return
	}
	r := codec.Result{State: state, Result: result, TaskID: []byte(id)}
	if state.Ready() {
		r.DateDone = time.Now()
	}
	rec := transport.ResultRecord{TaskID: r.TaskID, Data: codec.AppendResultJSON(nil, &r), ReplyTo: []byte(replyTo)}
	if err := b.StoreResults(contextBackground, rec); err != nil {
		w.app.errorf("worker: store result", "id", id, "err", err)
	}
}

// chordPart records t as a finished chord header task and, if it is the
// last one, sends the body with the header's results (or fails the body
// with ChordError when a header task failed), as Celery 5.2 does on Redis.
func (w *Worker) chordPart(t *Task, state codec.State, result []byte, body *codec.Signature) {
	cb, ok := w.app.backend.(transport.ChordBackend)
	if !ok {
		w.app.errorf("worker: chord header task finished but the result backend cannot count chords",
			"task", t.Name, "id", t.ID, "group", t.GroupID)
		return
	}
	ctx := contextBackground
	idx := transport.NoGroupIndex
	if t.GroupIndex >= 0 {
		idx = t.GroupIndex
	}
	done, parts, err := cb.ChordPartDone(ctx, t.GroupID, idx, chordPartEntry(t.msg.ID, state, result))
	if err != nil {
		w.app.errorf("worker: chord part", "group", t.GroupID, "index", strIndex(idx), "err", err)
		return
	}
	if !done {
		return
	}
	defer func() {
		if err := cb.ChordCleanup(ctx, t.GroupID); err != nil {
			w.app.warnf("worker: chord cleanup", "group", t.GroupID, "err", err)
		}
	}()
	results := []byte{'['}
	for i, p := range parts {
		var entry [4]json.RawMessage
		if err := json.Unmarshal(p, &entry); err != nil {
			w.chordFailed(body, fmt.Sprintf("Cannot decode chord part %q: %v", p, err))
			return
		}
		var id, st string
		json.Unmarshal(entry[1], &id)
		json.Unmarshal(entry[2], &st)
		if st == codec.StateFailure.String() || st == codec.StateRevoked.String() {
			w.chordFailed(body, fmt.Sprintf("Dependency %s raised %s", id, excRepr(entry[3])))
			return
		}
		if i > 0 {
			results = append(results, ", "...)
		}
		results = append(results, entry[3]...)
	}
	results = append(results, ']')
	if _, _, err := w.app.applySig(ctx, body, results, applyCtx{parentID: t.ID, rootID: t.RootID}); err != nil {
		w.app.errorf("worker: apply chord body", "group", t.GroupID, "body", body.Task, "err", err)
	}
}

// chordFailed stores ChordError under the body's id and runs its errbacks.
func (w *Worker) chordFailed(body *codec.Signature, reason string) {
	exc := codec.AppendExceptionJSON(nil, "ChordError", "celery.exceptions", reason)
	id := body.Options.TaskID
	if id != "" {
		w.storeRaw(id, body.Options.ReplyTo, codec.StateFailure, exc)
	}
	idJSON, _ := json.Marshal(id)
	for i := range body.Options.LinkError {
		if _, _, err := w.app.applySig(contextBackground, &body.Options.LinkError[i], idJSON, applyCtx{parentID: id}); err != nil {
			w.app.errorf("worker: apply chord errback", "err", err)
		}
	}
}

// excRepr renders an encoded exception as Python's repr would:
// ValueError('boom').
func excRepr(raw []byte) string {
	info, ok := codec.DecodeException(raw)
	if !ok {
		return string(raw)
	}
	var args []any
	json.Unmarshal(info.Message, &args)
	parts := make([]string, len(args))
	for i, a := range args {
		if s, ok := a.(string); ok {
			parts[i] = "'" + s + "'"
		} else {
			b, _ := json.Marshal(a)
			parts[i] = string(b)
		}
	}
	return string(info.Type) + "(" + strings.Join(parts, ", ") + ")"
}

// registerBuiltins adds Celery's built-in tasks that clients send as
// messages: map, starmap, chunks (run in the worker, calling the named
// task in-process as Celery does) and the composite signatures.
func registerBuiltins(a *App) {
	RegisterRaw(a, "celery.map", func(ctx context.Context, t *Task) error {
		return t.w.runMap(ctx, t, false)
	})
	RegisterRaw(a, "celery.starmap", func(ctx context.Context, t *Task) error {
		return t.w.runMap(ctx, t, true)
	})
	RegisterRaw(a, "celery.chunks", func(ctx context.Context, t *Task) error {
		var kw struct {
			Task Signature `json:"task"`
			It   [][]any   `json:"it"`
			N    int       `json:"n"`
		}
		if err := builtinArgs(t, &kw, "task", "it", "n"); err != nil {
			return err
		}
		g, err := t.w.app.Chunks(ctx, &kw.Task, kw.It, kw.N)
		if err != nil {
			return err
		}
		return t.ReturnValue(g.ID)
	})
	for _, name := range []string{"celery.chain", "celery.group", "celery.chord"} {
		RegisterRaw(a, name, func(ctx context.Context, t *Task) error {
			var s Signature
			s.Task, s.Args, s.Kwargs = t.Name, append([]byte(nil), t.args...), append([]byte(nil), t.kwargs...)
			s.SubtaskType = strings.TrimPrefix(t.Name, "celery.")
			id, _, err := t.w.app.applySig(ctx, &s, nil, applyCtx{parentID: t.ID, rootID: t.RootID})
			if err != nil {
				return err
			}
			return t.ReturnValue(id)
		})
	}
}

// builtinArgs decodes a built-in's kwargs, or its positional args in the
// order names gives, into dst.
func builtinArgs(t *Task, dst any, names ...string) error {
	kw := map[string]json.RawMessage{}
	if len(t.kwargs) > 0 {
		if err := json.Unmarshal(t.kwargs, &kw); err != nil {
			return fmt.Errorf("%w: %s kwargs: %v", ErrBadArgs, t.Name, err)
		}
	}
	var pos []json.RawMessage
	if len(t.args) > 0 {
		if err := json.Unmarshal(t.args, &pos); err != nil {
			return fmt.Errorf("%w: %s args: %v", ErrBadArgs, t.Name, err)
		}
	}
	for i, p := range pos {
		if i < len(names) {
			kw[names[i]] = p
		}
	}
	b, _ := json.Marshal(kw)
	if err := json.Unmarshal(b, dst); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadArgs, t.Name, err)
	}
	return nil
}

// runMap is celery.map / celery.starmap: call the named task in this
// worker on every item and return the list of results.
func (w *Worker) runMap(ctx context.Context, t *Task, star bool) error {
	var kw struct {
		Task Signature         `json:"task"`
		It   []json.RawMessage `json:"it"`
	}
	if err := builtinArgs(t, &kw, "task", "it"); err != nil {
		return err
	}
	def := w.app.lookup([]byte(kw.Task.Task))
	if def == nil {
		return &TaskError{Type: "NotRegistered", Module: "celery.exceptions", Args: []any{kw.Task.Task}}
	}
	out := []byte{'['}
	for i, item := range kw.It {
		args := append(append([]byte{'['}, item...), ']')
		if star {
			args = item
		}
		sub := &Task{ID: t.ID, Name: def.name, RootID: t.RootID, ParentID: t.ParentID, GroupIndex: -1,
			Hostname: t.Hostname, msg: t.msg, def: def, w: w, args: args, kwargs: emptyObject}
		if err := call(def.handler, ctx, sub); err != nil {
			return err
		}
		if i > 0 {
			out = append(out, ", "...)
		}
		if sub.hasResult {
			out = append(out, sub.result...)
		} else {
			out = append(out, jsonNull...)
		}
	}
	t.Return(append(out, ']'))
	return nil
}
