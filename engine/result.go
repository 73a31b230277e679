package engine

import (
	"context"
	"errors"
	"fmt"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/transport"
)

// AsyncResult is the handle of a sent task (Celery's AsyncResult). R is
// the type Get decodes a SUCCESS result into. Safe for concurrent use.
type AsyncResult[R any] struct {
	ID    string
	app   *App
	group *GroupResult // the final result is this group's (see App.Apply)
}

// Group returns the GroupResult the handle stands for when the final
// result of what was applied is a group's (see App.Apply), else nil. The
// group has no record of its own under ID: Get waits for its members;
// the other methods read the record stored under ID.
func (r *AsyncResult[R]) Group() *GroupResult { return r.group }

// Result returns the handle of task id, its result decoded as any.
func (a *App) Result(id string) *AsyncResult[any] { return &AsyncResult[any]{ID: id, app: a} }

// ResultOf returns the handle of task id with its result decoded as R.
func ResultOf[R any](a *App, id string) *AsyncResult[R] { return &AsyncResult[R]{ID: id, app: a} }

// Meta is a decoded result record.
type Meta struct {
	State codec.State
	// StateName is the state as stored, also for custom states.
	StateName string
	// Result is the raw JSON "result" value.
	Result    json.RawMessage
	Traceback string
	TaskID    string
	// Children is the raw JSON "children" list.
	Children json.RawMessage
}

// Meta returns the current record, with State PENDING when none is stored.
func (r *AsyncResult[R]) Meta(ctx context.Context) (Meta, error) {
	if r.app.backend == nil {
		return Meta{}, ErrNoBackend
	}
	raw, found, err := r.app.backend.GetResult(ctx, r.ID, nil)
	if err != nil {
		return Meta{}, fmt.Errorf("engine: result %s: %w", r.ID, err)
	}
	if !found {
		return Meta{State: codec.StatePending, StateName: codec.StatePending.String(), TaskID: r.ID}, nil
	}
	return decodeMeta(raw)
}

func decodeMeta(raw []byte) (Meta, error) {
	var rec codec.Result
	if err := decodeRecord(raw, &rec); err != nil {
		return Meta{}, err
	}
	return metaOf(&rec), nil
}

// decodeRecord decodes a stored result record into rec (views of raw),
// with a missing result as null.
func decodeRecord(raw []byte, rec *codec.Result) error {
	if err := codec.DecodeResultJSON(raw, rec); err != nil {
		return fmt.Errorf("engine: result record: %w", err)
	}
	if len(rec.Result) == 0 {
		rec.Result = jsonNull
	}
	return nil
}

// metaOf returns rec as a Meta, which owns copies of rec's views.
func metaOf(rec *codec.Result) Meta {
	m := Meta{
		State: rec.State, StateName: rec.State.String(),
		Result: append(json.RawMessage(nil), rec.Result...), Traceback: string(rec.Traceback),
		TaskID: string(rec.TaskID), Children: append(json.RawMessage(nil), rec.Children...),
	}
	if rec.State == codec.StateCustom {
		m.StateName = string(rec.CustomState)
	}
	return m
}

// State returns the task's state name ("PENDING", "SUCCESS", or a custom
// state).
func (r *AsyncResult[R]) State(ctx context.Context) (string, error) {
	m, err := r.Meta(ctx)
	return m.StateName, err
}

// Ready reports whether the task has finished (SUCCESS, FAILURE, REVOKED).
func (r *AsyncResult[R]) Ready(ctx context.Context) (bool, error) {
	m, err := r.Meta(ctx)
	return err == nil && m.State.Ready(), err
}

// Successful reports whether the task succeeded.
func (r *AsyncResult[R]) Successful(ctx context.Context) (bool, error) {
	m, err := r.Meta(ctx)
	return err == nil && m.State == codec.StateSuccess, err
}

// Failed reports whether the task failed.
func (r *AsyncResult[R]) Failed(ctx context.Context) (bool, error) {
	m, err := r.Meta(ctx)
	return err == nil && m.State == codec.StateFailure, err
}

// Forget deletes the stored result.
func (r *AsyncResult[R]) Forget(ctx context.Context) error {
	if r.app.backend == nil {
		return ErrNoBackend
	}
	return r.app.backend.ForgetResult(ctx, r.ID)
}

// Revoke revokes the task in this process's workers (see App.Revoke) and,
// when the app has a Revoker (App.SetRevoker), in every worker of the
// cluster, Python's too, as Celery's AsyncResult.revoke does.
func (r *AsyncResult[R]) Revoke(terminate bool) {
	r.app.Revoke(terminate, r.ID)
	r.app.broadcastRevoke(terminate, r.ID)
}

// Wait blocks until the task is ready (or ctx ends) and returns its
// record, without polling (see waitRecord).
func (r *AsyncResult[R]) Wait(ctx context.Context) (Meta, error) {
	var rec codec.Result
	if _, err := r.waitRecord(ctx, &rec); err != nil {
		return Meta{}, err
	}
	return metaOf(&rec), nil
}

// waitRecord waits until the task is ready (or ctx ends), decodes its
// record into rec and returns the record, of which rec holds views. It
// subscribes, then reads the record (it may have been stored before the
// subscription), then waits for published ones, so that no record is
// missed and none is polled for. A backend that reads without leaving the
// process (transport.LocalReader) is read once before subscribing too: a
// finished task's record then costs no subscription (with the memory
// backend, four allocations).
func (r *AsyncResult[R]) waitRecord(ctx context.Context, rec *codec.Result) ([]byte, error) {
	b := r.app.backend
	if b == nil {
		return nil, ErrNoBackend
	}
	var raw []byte
	read := func() (ready bool, err error) {
		var found bool
		if raw, found, err = b.GetResult(ctx, r.ID, raw[:0]); err != nil {
			return false, fmt.Errorf("engine: result %s: %w", r.ID, err)
		}
		if !found {
			return false, nil
		}
		if err := decodeRecord(raw, rec); err != nil {
			return false, err
		}
		return rec.State.Ready(), nil
	}
	if lr, ok := b.(transport.LocalReader); ok && lr.ReadsLocally() {
		if ready, err := read(); err != nil || ready {
			return raw, err
		}
	}
	sub, err := b.Subscribe(ctx, r.ID)
	if err != nil {
		return nil, fmt.Errorf("engine: result %s: %w", r.ID, err)
	}
	defer sub.Close()
	if ready, err := read(); err != nil || ready {
		return raw, err
	}
	for {
		raw, err = sub.Next(ctx, raw[:0])
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrTimeout, r.ID, ctx.Err())
			}
			return nil, fmt.Errorf("engine: result %s: %w", r.ID, err)
		}
		if err := decodeRecord(raw, rec); err != nil || rec.State.Ready() {
			return raw, err
		}
	}
}

// Get waits for the task (see Wait) and returns its result decoded as R,
// or the failure as a *TaskError (errors.Is(err, ErrRevoked) for a
// revoked task). For a group's handle (see Group) it waits for every
// member and returns their results, a []any, as GroupResult.Get does.
func (r *AsyncResult[R]) Get(ctx context.Context) (R, error) {
	var zero R
	if r.group != nil {
		results, err := r.group.Get(ctx)
		v, _ := any(results).(R) // only Apply sets group, on an AsyncResult[any]
		return v, err
	}
	var rec codec.Result
	if _, err := r.waitRecord(ctx, &rec); err != nil {
		return zero, err
	}
	if rec.State != codec.StateSuccess {
		return zero, metaOf(&rec).Err()
	}
	var v R
	if err := json.Unmarshal(rec.Result, &v); err != nil {
		return zero, fmt.Errorf("engine: result %s: decode into %T: %w", r.ID, v, err)
	}
	return v, nil
}

// Err returns the failure a FAILURE, REVOKED or RETRY record describes
// (nil for other states).
func (m Meta) Err() error {
	switch m.State {
	case codec.StateFailure, codec.StateRevoked, codec.StateRetry:
	default:
		return nil
	}
	info, ok := codec.DecodeException(m.Result)
	if !ok {
		return &TaskError{Type: "Exception", Module: "builtins", Args: []any{string(m.Result)}, Traceback: m.Traceback}
	}
	te := &TaskError{Type: string(info.Type), Module: string(info.Module), Traceback: m.Traceback}
	if len(info.Message) > 0 {
		if err := json.Unmarshal(info.Message, &te.Args); err != nil {
			te.Args = []any{string(info.Message)}
		}
	}
	return te
}

// IsTaskError reports whether err is a task failure of exception type typ.
func IsTaskError(err error, typ string) bool {
	var te *TaskError
	return errors.As(err, &te) && te.Type == typ
}
