package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

// Canvas: Celery's work-flow primitives, written on the wire exactly as
// Celery writes them (celery-wire.md §2), so that Python workers run what
// Go builds and the reverse.

// ErrChordUnsupported: the result backend cannot count chord parts (rpc://
// and no backend), as Celery refuses chords there.
var ErrChordUnsupported = errors.New("engine: the result backend does not support chords")

// Sig returns the signature of task name with partial positional args
// (encoded as JSON now; Celery's task.s(*args)).
func Sig(name string, args ...any) *Signature {
	s := &Signature{Task: name, Args: json.RawMessage("[]"), Kwargs: json.RawMessage("{}")}
	if len(args) > 0 {
		b, err := appendJSON(nil, args)
		if err != nil {
			b = mustErrArgs(err)
		}
		s.Args = b
	}
	return s
}

// mustErrArgs keeps a signature whose args failed to encode sendable as
// a clear failure rather than a panic: the JSON string names the error.
func mustErrArgs(err error) []byte {
	b, _ := json.Marshal([]string{"celerity: unencodable args: " + err.Error()})
	return b
}

// SigI is Sig for an immutable signature (task.si()): the parent's result
// is not prepended to its args.
func SigI(name string, args ...any) *Signature {
	s := Sig(name, args...)
	s.Immutable = true
	return s
}

// WithKwargs sets a signature's keyword arguments and returns it.
func WithKwargs(s *Signature, kwargs map[string]any) *Signature {
	b, err := appendJSON(nil, kwargs)
	if err != nil {
		b = []byte("{}")
	}
	s.Kwargs = b
	return s
}

// ChainSig returns the signature of a chain (celery.chain): each task's
// result is prepended to the next one's args unless it is immutable.
func ChainSig(steps ...*Signature) *Signature { return composite("celery.chain", "chain", steps) }

// GroupSig returns the signature of a group (celery.group).
func GroupSig(members ...*Signature) *Signature { return composite("celery.group", "group", members) }

// ChordSig returns the signature of a chord (celery.chord): body runs
// with the list of the header's results once all of them succeeded.
func ChordSig(header []*Signature, body *Signature) *Signature {
	var b bytes.Buffer
	b.WriteString(`{"header": `)
	b.Write(GroupSig(header...).AppendJSON(nil))
	b.WriteString(`, "body": `)
	b.Write(body.AppendJSON(nil))
	b.WriteString(`, "kwargs": {}}`)
	return &Signature{Task: "celery.chord", Args: json.RawMessage("[]"), Kwargs: b.Bytes(), SubtaskType: "chord"}
}

func composite(task, kind string, members []*Signature) *Signature {
	var b bytes.Buffer
	b.WriteString(`{"tasks": [`)
	for i, m := range members {
		if i > 0 {
			b.WriteString(", ")
		}
		b.Write(m.AppendJSON(nil))
	}
	b.WriteString(`]}`)
	return &Signature{Task: task, Args: json.RawMessage("[]"), Kwargs: b.Bytes(), SubtaskType: kind}
}

// GroupResult is the handle of an applied group (Celery's GroupResult).
type GroupResult struct {
	ID      string
	Results []*AsyncResult[any]
	app     *App
}

// Get waits for every member and returns their results in order; the
// first failure is returned as error (with the results gathered so far).
func (g *GroupResult) Get(ctx context.Context) ([]any, error) {
	out := make([]any, len(g.Results))
	for i, r := range g.Results {
		v, err := r.Get(ctx)
		if err != nil {
			return out, fmt.Errorf("group %s member %d (%s): %w", g.ID, i, r.ID, err)
		}
		out[i] = v
	}
	return out, nil
}

// Save stores the group record (GroupResult.save()) so that RestoreGroup
// (or Python's GroupResult.restore) can find the members by group id.
func (g *GroupResult) Save(ctx context.Context) error {
	gb, ok := g.app.backend.(transport.GroupStore)
	if !ok {
		return fmt.Errorf("engine: save group %s: the result backend cannot store groups", g.ID)
	}
	ref := resultRef("", g)
	return gb.SaveGroup(ctx, g.ID, codec.AppendGroupRecord(nil, &ref))
}

// resultRef is the result tuple of what applySig applied: the group g, or
// else the task id.
func resultRef(id string, g *GroupResult) codec.ResultRef {
	if g == nil {
		return codec.ResultRef{ID: []byte(id)}
	}
	ref := codec.ResultRef{ID: []byte(g.ID), IsGroup: true}
	for _, r := range g.Results {
		ref.Children = append(ref.Children, codec.ResultRef{ID: []byte(r.ID)})
	}
	return ref
}

// RestoreGroup loads a saved group record.
func (a *App) RestoreGroup(ctx context.Context, groupID string) (*GroupResult, error) {
	gb, ok := a.backend.(transport.GroupStore)
	if !ok {
		return nil, fmt.Errorf("engine: restore group %s: the result backend cannot store groups", groupID)
	}
	raw, found, err := gb.GetGroup(ctx, groupID, nil)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("engine: group %s: not saved", groupID)
	}
	ref, err := codec.DecodeGroupRecord(raw)
	if err != nil {
		return nil, err
	}
	g := &GroupResult{ID: groupID, app: a}
	for _, c := range ref.Children {
		g.Results = append(g.Results, a.Result(string(c.ID)))
	}
	return g, nil
}

// Apply sends a signature, plain or composite, and returns the handle of
// its final result: the task itself, a chain's last task, a chord's body.
// For a group, or a chain that ends in one, the handle's Group is that
// group's GroupResult, and Get returns its members' results as []any (as
// Celery's apply_async returns a GroupResult there).
func (a *App) Apply(ctx context.Context, s *Signature) (*AsyncResult[any], error) {
	id, g, err := a.applySig(ctx, s, nil, applyCtx{})
	if err != nil {
		return nil, err
	}
	r := a.Result(id)
	r.group = g
	return r, nil
}

// ApplyGroup sends the members of a group and returns its GroupResult.
func (a *App) ApplyGroup(ctx context.Context, members ...*Signature) (*GroupResult, error) {
	_, g, err := a.applySig(ctx, GroupSig(members...), nil, applyCtx{})
	return g, err
}

// ApplyChain sends a chain and returns its last task's handle (see Apply
// for a chain that ends in a group).
func (a *App) ApplyChain(ctx context.Context, steps ...*Signature) (*AsyncResult[any], error) {
	return a.Apply(ctx, ChainSig(steps...))
}

// ApplyChord sends a chord and returns its body's handle.
func (a *App) ApplyChord(ctx context.Context, header []*Signature, body *Signature) (*AsyncResult[any], error) {
	return a.Apply(ctx, ChordSig(header, body))
}

// applyCtx is what a signature inherits when it is applied: the parent's
// ids (from a worker) and the rest of a chain.
type applyCtx struct {
	parentID, rootID string
	chain            []codec.Signature // remaining steps, reversed (next = last)
	groupID          string
	groupIndex       *int
	chord            *codec.Signature // body, for chord header members
	// unlisted: a member of a group or chord header, which a handler
	// sending it lists as one GroupResult, not task by task (Celery
	// applies members with add_to_parent=False).
	unlisted bool
}

// applySig applies s with prepend (a JSON value, nil = none) put before
// its args unless it is immutable. It returns the id of the final result
// and, for a group, the GroupResult.
func (a *App) applySig(ctx context.Context, s *Signature, prepend []byte, ac applyCtx) (string, *GroupResult, error) {
	switch s.SubtaskType {
	case "chain":
		steps, err := s.Tasks()
		if err != nil {
			return "", nil, fmt.Errorf("engine: chain: %w", err)
		}
		return a.applyChain(ctx, s, steps, prepend, ac)
	case "group":
		members, err := s.Tasks()
		if err != nil {
			return "", nil, fmt.Errorf("engine: group: %w", err)
		}
		g, err := a.applyGroup(ctx, s, members, prepend, ac)
		if err != nil {
			return "", nil, err
		}
		return g.ID, g, nil
	case "chord":
		header, body, err := s.ChordParts()
		if err != nil {
			return "", nil, fmt.Errorf("engine: chord: %w", err)
		}
		id, err := a.applyChord(ctx, s, header, &body, prepend, ac)
		return id, nil, err
	case "", "chunks", "xmap", "xstarmap":
		// Plain tasks; chunks/map/starmap are sent as the built-in tasks
		// celery.chunks / celery.map / celery.starmap their signatures name.
		id, err := a.applyTask(ctx, s, prepend, ac)
		return id, nil, err
	default:
		return "", nil, fmt.Errorf("engine: signature of %s: unknown subtask_type %q", s.Task, s.SubtaskType)
	}
}

// args returns s's args with prepend in front unless s is immutable.
func sigArgs(s *Signature, prepend []byte) []byte {
	args := []byte(s.Args)
	if len(args) == 0 {
		args = emptyArray
	}
	if prepend == nil || s.Immutable {
		return args
	}
	out := make([]byte, 0, len(prepend)+len(args)+2)
	out = append(out, '[')
	out = append(out, prepend...)
	rest := bytes.TrimSpace(args[1:]) // after '['
	if len(rest) > 0 && rest[0] != ']' {
		out = append(out, ", "...)
	}
	return append(out, rest...)
}

// applyTask sends one plain task from its signature.
func (a *App) applyTask(ctx context.Context, s *Signature, prepend []byte, ac applyCtx) (string, error) {
	o := &s.Options
	var opts []Option
	id := o.TaskID
	if id == "" {
		id = codec.NewUUID()
		o.TaskID = id
	}
	opts = append(opts, TaskID(id))
	parent, root := ac.parentID, ac.rootID
	if o.ParentID != "" {
		parent = o.ParentID
	}
	if o.RootID != "" {
		root = o.RootID
	}
	if parent != "" {
		opts = append(opts, ParentID(parent))
	}
	if root != "" {
		opts = append(opts, RootID(root))
	}
	group, index := ac.groupID, ac.groupIndex
	if o.GroupID != "" {
		group = o.GroupID
	}
	if o.GroupIndex != nil {
		index = o.GroupIndex
	}
	if group != "" {
		opts = append(opts, Group(group))
	}
	if index != nil {
		opts = append(opts, GroupIndex(*index))
	}
	if o.ReplyTo != "" {
		opts = append(opts, ReplyTo(o.ReplyTo))
	}
	if o.Queue != "" {
		opts = append(opts, Queue(o.Queue))
	}
	if o.Exchange != "" {
		opts = append(opts, Exchange(o.Exchange))
	}
	if o.RoutingKey != "" {
		opts = append(opts, RoutingKey(o.RoutingKey))
	}
	if o.Priority != nil {
		opts = append(opts, Priority(*o.Priority))
	}
	if o.Countdown != nil {
		opts = append(opts, Countdown(time.Duration(*o.Countdown*float64(time.Second))))
	}
	if len(o.ETA) > 0 {
		var iso string
		if json.Unmarshal(o.ETA, &iso) == nil {
			if t, err := codec.ParseISOTime([]byte(iso)); err == nil {
				opts = append(opts, ETA(t))
			}
		}
	}
	if len(o.Expires) > 0 {
		var secs float64
		var iso string
		if json.Unmarshal(o.Expires, &secs) == nil {
			opts = append(opts, ExpiresIn(time.Duration(secs*float64(time.Second))))
		} else if json.Unmarshal(o.Expires, &iso) == nil {
			if t, err := codec.ParseISOTime([]byte(iso)); err == nil {
				opts = append(opts, ExpiresAt(t))
			}
		}
	}
	if o.TimeLimit != nil {
		opts = append(opts, TimeLimit(time.Duration(*o.TimeLimit*float64(time.Second))))
	}
	if o.SoftTimeLimit != nil {
		opts = append(opts, SoftTimeLimit(time.Duration(*o.SoftTimeLimit*float64(time.Second))))
	}
	chord := ac.chord
	if o.Chord != nil {
		chord = o.Chord
	}
	embed := appendSigEmbed(nil, o.Link, o.LinkError, ac.chain, chord)
	m, from, err := a.newMessage(ctx, s.Task, sigArgs(s, prepend), s.Kwargs, embed, opts)
	if err != nil {
		return "", err
	}
	if ac.unlisted {
		from = sentFrom{}
	}
	return id, a.publish(ctx, m, from)
}

// appendSigEmbed writes the embed object {"callbacks", "errbacks",
// "chain", "chord"}.
func appendSigEmbed(dst []byte, links, errbacks, chain []codec.Signature, chord *codec.Signature) []byte {
	list := func(dst []byte, sigs []codec.Signature, nullIfEmpty bool) []byte {
		if len(sigs) == 0 && nullIfEmpty {
			return append(dst, "null"...)
		}
		dst = append(dst, '[')
		for i := range sigs {
			if i > 0 {
				dst = append(dst, ", "...)
			}
			dst = sigs[i].AppendJSON(dst)
		}
		return append(dst, ']')
	}
	dst = append(dst, `{"callbacks": `...)
	dst = list(dst, links, true)
	dst = append(dst, `, "errbacks": `...)
	dst = list(dst, errbacks, true)
	dst = append(dst, `, "chain": `...)
	dst = list(dst, chain, chain == nil)
	dst = append(dst, `, "chord": `...)
	if chord == nil {
		dst = append(dst, "null"...)
	} else {
		dst = chord.AppendJSON(dst)
	}
	return append(dst, '}')
}

// upgradeSteps applies Celery's chain rewrites: a group followed by
// another step becomes a chord with that step as body; a chord followed by
// more steps gets them chained after its body.
func upgradeSteps(steps []codec.Signature) ([]codec.Signature, error) {
	out := make([]codec.Signature, 0, len(steps))
	for i := 0; i < len(steps); i++ {
		s := steps[i]
		if s.SubtaskType == "group" && i+1 < len(steps) {
			members, err := s.Tasks()
			if err != nil {
				return nil, err
			}
			hdr := make([]*Signature, len(members))
			for j := range members {
				hdr[j] = &members[j]
			}
			body := steps[i+1]
			c := ChordSig(hdr, &body)
			c.Options = s.Options
			s = *c
			i++
		}
		if s.SubtaskType == "chord" && i+1 < len(steps) {
			header, body, err := s.ChordParts()
			if err != nil {
				return nil, err
			}
			rest := []*Signature{&body}
			for j := i + 1; j < len(steps); j++ {
				rest = append(rest, &steps[j])
			}
			hdr := make([]*Signature, len(header))
			for j := range header {
				hdr[j] = &header[j]
			}
			c := ChordSig(hdr, ChainSig(rest...))
			c.Options = s.Options
			out = append(out, *c)
			break
		}
		out = append(out, s)
	}
	return out, nil
}

// applyChain sends the first step with the rest, reversed, in its embed
// chain; every step gets its task id now, so the chain's result (the last
// step) is known at once.
func (a *App) applyChain(ctx context.Context, s *Signature, steps []codec.Signature, prepend []byte, ac applyCtx) (string, *GroupResult, error) {
	steps, err := unroll(steps, "chain")
	if err != nil {
		return "", nil, fmt.Errorf("engine: chain: %w", err)
	}
	if s.Options.TaskID != "" && len(steps) > 0 && steps[len(steps)-1].SubtaskType == "" {
		// apply_async(task_id=...) on a chain names its last task.
		steps[len(steps)-1].Options.TaskID = s.Options.TaskID
	}
	// A chain applied as a step of another chain (by a worker) goes on
	// with the rest of that one.
	for i := len(ac.chain) - 1; i >= 0; i-- {
		steps = append(steps, ac.chain[i])
	}
	if steps, err = upgradeSteps(steps); err != nil {
		return "", nil, fmt.Errorf("engine: chain: %w", err)
	}
	if len(steps) == 0 {
		return "", nil, errors.New("engine: empty chain")
	}
	// Celery's freeze names this client's reply queue in every step, so
	// that the worker sending a step keeps the client's reply_to and an
	// rpc:// client receives the chain's result.
	oid := a.oid()
	var final string
	for i := range steps {
		if oid != "" && steps[i].SubtaskType == "" && steps[i].Options.ReplyTo == "" {
			steps[i].Options.ReplyTo = oid
		}
		id, err := assignIDs(&steps[i])
		if err != nil {
			return "", nil, fmt.Errorf("engine: chain: %w", err)
		}
		final = id
	}
	if len(steps) > 1 {
		if ac, err = joinGroup(&steps[len(steps)-1], ac); err != nil {
			return "", nil, fmt.Errorf("engine: chain: %w", err)
		}
	}
	rest := make([]codec.Signature, 0, len(steps)-1)
	for i := len(steps) - 1; i >= 1; i-- {
		rest = append(rest, steps[i])
	}
	first := steps[0]
	sub := ac
	sub.chain = rest
	id, g, err := a.applySig(ctx, &first, prepend, sub)
	if err != nil {
		return "", nil, err
	}
	if len(steps) == 1 {
		return id, g, nil
	}
	if last := &steps[len(steps)-1]; last.SubtaskType == "group" {
		g, err := a.frozenGroup(last)
		return final, g, err
	}
	return final, nil, nil
}

// oid returns the client id the broker puts in reply_to (Celery's
// app.thread_oid), or "" when the broker has none.
func (a *App) oid() string {
	if b, ok := a.broker.(interface{ OID() string }); ok {
		return b.OID()
	}
	return ""
}

// frozenGroup returns the GroupResult of group s, whose ids assignIDs gave.
func (a *App) frozenGroup(s *codec.Signature) (*GroupResult, error) {
	members, err := s.Tasks()
	if err != nil {
		return nil, fmt.Errorf("engine: group: %w", err)
	}
	g := &GroupResult{ID: s.Options.TaskID, app: a}
	for i := range members {
		id, err := assignIDs(&members[i]) // the id given: a member's final one
		if err != nil {
			return nil, fmt.Errorf("engine: group: %w", err)
		}
		g.Results = append(g.Results, a.Result(id))
	}
	return g, nil
}

// joinGroup hands the group or chord membership of ac (group id, index,
// chord body) to the task that gives s its result, a chain's last step
// or a chord's body, as Celery's chain and chord freeze do: the outer
// group or chord then counts s once, when its result is ready, not when
// its first task is. It returns ac without that membership, for the
// other tasks of s. A group that ends s keeps what it had (Celery gives
// its members the group's own id).
func joinGroup(s *codec.Signature, ac applyCtx) (applyCtx, error) {
	if ac.groupID == "" {
		return ac, nil
	}
	switch s.SubtaskType {
	case "", "chunks", "xmap", "xstarmap":
		o := &s.Options
		if o.GroupID == "" {
			o.GroupID = ac.groupID
		}
		if o.GroupIndex == nil {
			o.GroupIndex = ac.groupIndex
		}
		if o.Chord == nil {
			o.Chord = ac.chord
		}
	case "chain", "chord":
		if err := withFinalPart(s, func(p *codec.Signature) error { _, err := joinGroup(p, ac); return err }); err != nil {
			return ac, err
		}
	}
	ac.groupID, ac.groupIndex, ac.chord = "", nil, nil
	return ac, nil
}

// withFinalPart calls fn with the part of chain or chord s that gives s
// its result, its last step or its body, and writes that part, as fn left
// it, back into s.
func withFinalPart(s *codec.Signature, fn func(*codec.Signature) error) error {
	if s.SubtaskType == "chain" {
		steps, err := s.Tasks()
		if err != nil || len(steps) == 0 {
			return fmt.Errorf("chain %s: %v", s.Task, err)
		}
		if err := fn(&steps[len(steps)-1]); err != nil {
			return err
		}
		ptrs := make([]*Signature, len(steps))
		for i := range steps {
			ptrs[i] = &steps[i]
		}
		s.Kwargs = ChainSig(ptrs...).Kwargs
		return nil
	}
	header, body, err := s.ChordParts()
	if err != nil {
		return err
	}
	if err := fn(&body); err != nil {
		return err
	}
	ptrs := make([]*Signature, len(header))
	for i := range header {
		ptrs[i] = &header[i]
	}
	s.Kwargs = ChordSig(ptrs, &body).Kwargs
	return nil
}

// assignIDs gives every task of s that will produce s's final result its
// id now, rewriting composite signatures, and returns that final id: a
// plain task's id, a chain's last step's, a chord's body's, a group's id.
// The client can then hand out the handle before workers apply the steps.
func assignIDs(s *codec.Signature) (string, error) {
	switch s.SubtaskType {
	case "", "chunks", "xmap", "xstarmap":
		if s.Options.TaskID == "" {
			s.Options.TaskID = codec.NewUUID()
		}
		return s.Options.TaskID, nil
	case "group":
		if s.Options.TaskID == "" {
			s.Options.TaskID = codec.NewUUID()
		}
		// Its members' ids too, as Celery's group.freeze gives them, for
		// the GroupResult of a chain that ends in it (see frozenGroup).
		members, err := s.Tasks()
		if err != nil {
			return "", err
		}
		if members, err = unroll(members, "group"); err != nil {
			return "", err
		}
		ptrs := make([]*Signature, len(members))
		for i := range members {
			if _, err := assignIDs(&members[i]); err != nil {
				return "", err
			}
			ptrs[i] = &members[i]
		}
		s.Kwargs = GroupSig(ptrs...).Kwargs
		return s.Options.TaskID, nil
	case "chain", "chord":
		var final string
		err := withFinalPart(s, func(p *codec.Signature) (err error) { final, err = assignIDs(p); return err })
		return final, err
	default:
		return "", fmt.Errorf("signature of %s: unknown subtask_type %q", s.Task, s.SubtaskType)
	}
}

// applyGroup sends each member with the group id as header.
func (a *App) applyGroup(ctx context.Context, s *Signature, members []codec.Signature, prepend []byte, ac applyCtx) (*GroupResult, error) {
	gid := s.Options.TaskID
	if gid == "" {
		gid = codec.NewUUID()
	}
	members, err := unroll(members, "group")
	if err != nil {
		return nil, fmt.Errorf("engine: group %s: %w", gid, err)
	}
	g := &GroupResult{ID: gid, app: a}
	var from sentFrom // sent from a handler: listed there as one GroupResult
	if !ac.unlisted {
		from = sendingRun(ctx)
	}
	for i := range members {
		sub := applyCtx{parentID: ac.parentID, rootID: ac.rootID, groupID: gid, unlisted: true}
		id, _, err := a.applySig(ctx, &members[i], prepend, sub)
		if err != nil {
			return g, fmt.Errorf("engine: group %s member %d: %w", gid, i, err)
		}
		g.Results = append(g.Results, a.Result(id))
	}
	ref := resultRef("", g)
	from.list(&ref)
	return g, nil
}

// unroll returns sigs with each signature of kind ("group" or "chain")
// among them replaced by its own members, at any depth, as Celery does:
// group._prepared runs a group nested in a group or in a chord header as
// members of the outer one (under its group id, counted in its chord's
// size), and prepare_steps splices a chain nested in a chain (dropping
// the nested one's own options). sigs is returned as is when it holds
// none of kind.
func unroll(sigs []codec.Signature, kind string) ([]codec.Signature, error) {
	if !slices.ContainsFunc(sigs, func(s codec.Signature) bool { return s.SubtaskType == kind }) {
		return sigs, nil
	}
	out := make([]codec.Signature, 0, len(sigs))
	for i := range sigs {
		if sigs[i].SubtaskType != kind {
			out = append(out, sigs[i])
			continue
		}
		inner, err := sigs[i].Tasks()
		if err != nil {
			return nil, fmt.Errorf("nested %s %d: %w", kind, i, err)
		}
		if inner, err = unroll(inner, kind); err != nil {
			return nil, err
		}
		out = append(out, inner...)
	}
	return out, nil
}

// applyChord stores the chord size, then sends the header members with
// the group id, their group_index and the body in embed.chord.
func (a *App) applyChord(ctx context.Context, s *Signature, header []codec.Signature, body *codec.Signature, prepend []byte, ac applyCtx) (string, error) {
	cb, ok := a.backend.(transport.ChordBackend)
	if !ok {
		return "", ErrChordUnsupported
	}
	if s.Options.TaskID != "" && body.SubtaskType == "" {
		body.Options.TaskID = s.Options.TaskID
	}
	// A chord in a group or a chord header counts there by its body.
	ac, err := joinGroup(body, ac)
	if err != nil {
		return "", fmt.Errorf("engine: chord body: %w", err)
	}
	final, err := assignIDs(body)
	if err != nil {
		return "", fmt.Errorf("engine: chord body: %w", err)
	}
	gid := codec.NewUUID()
	header, err = unroll(header, "group")
	if err != nil {
		return "", fmt.Errorf("engine: chord %s header: %w", gid, err)
	}
	if err := cb.SetChordSize(ctx, gid, len(header)); err != nil {
		return "", fmt.Errorf("engine: chord %s: %w", gid, err)
	}
	var from sentFrom // sent from a handler: its header group is listed there
	if !ac.unlisted {
		from = sendingRun(ctx)
	}
	headerRef := codec.ResultRef{ID: []byte(gid), IsGroup: true}
	for i := range header {
		idx := i
		sub := applyCtx{parentID: ac.parentID, rootID: ac.rootID, groupID: gid, groupIndex: &idx, chord: body, unlisted: true}
		id, _, err := a.applySig(ctx, &header[i], prepend, sub)
		if err != nil {
			return "", fmt.Errorf("engine: chord %s header %d: %w", gid, i, err)
		}
		headerRef.Children = append(headerRef.Children, codec.ResultRef{ID: []byte(id)})
	}
	if len(header) == 0 { // Celery runs the body at once with []
		_, _, err := a.applySig(ctx, body, []byte("[]"), applyCtx{parentID: ac.parentID, rootID: ac.rootID})
		return final, err
	}
	from.list(&headerRef)
	return final, nil
}

// Chunks sends Celery's chunks(task, items, n): items split into chunks of
// n, each run by celery.starmap as one task of a group routed like task.
func (a *App) Chunks(ctx context.Context, task *Signature, items [][]any, n int) (*GroupResult, error) {
	if n < 1 {
		return nil, fmt.Errorf("engine: chunks of %d", n)
	}
	var members []*Signature
	for i := 0; i < len(items); i += n {
		part := items[i:min(i+n, len(items))]
		members = append(members, starmapSig("celery.starmap", task, part))
	}
	return a.ApplyGroup(ctx, members...)
}

// Map sends Celery's task.map(items): one celery.map task calling task on
// each item in the worker.
func (a *App) Map(ctx context.Context, task *Signature, items []any) (*AsyncResult[any], error) {
	s := starmapSig("celery.map", task, items)
	return a.Apply(ctx, s)
}

// Starmap sends Celery's task.starmap(items): each item is an args list.
func (a *App) Starmap(ctx context.Context, task *Signature, items [][]any) (*AsyncResult[any], error) {
	return a.Apply(ctx, starmapSig("celery.starmap", task, items))
}

func starmapSig[T any](name string, task *Signature, items []T) *Signature {
	it, err := appendJSON(nil, items)
	if err != nil {
		it = []byte("[]")
	}
	var kw bytes.Buffer
	kw.WriteString(`{"task": `)
	kw.Write(task.AppendJSON(nil))
	kw.WriteString(`, "it": `)
	kw.Write(it)
	kw.WriteString(`}`)
	kind := "xstarmap"
	if name == "celery.map" {
		kind = "xmap"
	}
	s := &Signature{Task: name, Args: json.RawMessage("[]"), Kwargs: kw.Bytes(), SubtaskType: kind}
	// The wrapper runs where the task would: route it like the task (as
	// Celery applies chunks/map options to the tasks it sends).
	s.Options.Queue, s.Options.Exchange, s.Options.RoutingKey = task.Options.Queue, task.Options.Exchange, task.Options.RoutingKey
	s.Options.Priority = task.Options.Priority
	return s
}

// chordPartEntry encodes [1, "<id>", "<STATE>", <result>] as Celery 5.2
// stores a chord part.
func chordPartEntry(id []byte, state codec.State, result []byte) []byte {
	b := make([]byte, 0, len(id)+len(result)+32)
	b = append(b, `[1, "`...)
	b = append(b, id...)
	b = append(b, `", "`...)
	b = append(b, state.String()...)
	b = append(b, `", `...)
	if len(result) == 0 {
		result = jsonNull
	}
	b = append(b, result...)
	return append(b, ']')
}

// strIndex formats a group index for logs.
func strIndex(i int) string {
	if i == transport.NoGroupIndex {
		return "none"
	}
	return strconv.Itoa(i)
}
