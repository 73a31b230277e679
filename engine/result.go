package engine

import (
	"context"
	"errors"
	"fmt"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
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
	if err := codec.DecodeResultJSON(raw, &rec); err != nil {
		return Meta{}, fmt.Errorf("engine: result record: %w", err)
	}
	if len(rec.Result) == 0 {
		rec.Result = jsonNull
	}
	m := Meta{
		State: rec.State, StateName: rec.State.String(),
		Result: append(json.RawMessage(nil), rec.Result...), Traceback: string(rec.Traceback),
		TaskID: string(rec.TaskID), Children: append(json.RawMessage(nil), rec.Children...),
	}
	if rec.State == codec.StateCustom {
		m.StateName = string(rec.CustomState)
	}
	return m, nil
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
// record, without polling: it subscribes first, then reads the stored
// record, then waits for published ones.
func (r *AsyncResult[R]) Wait(ctx context.Context) (Meta, error) {
	if r.app.backend == nil {
		return Meta{}, ErrNoBackend
	}
	sub, err := r.app.backend.Subscribe(ctx, r.ID)
	if err != nil {
		return Meta{}, fmt.Errorf("engine: result %s: %w", r.ID, err)
	}
	defer sub.Close()
	m, err := r.Meta(ctx)
	if err != nil || m.State.Ready() {
		return m, err
	}
	var buf []byte
	for {
		buf, err = sub.Next(ctx, buf[:0])
		if err != nil {
			if ctx.Err() != nil {
				return Meta{}, fmt.Errorf("%w: %s: %w", ErrTimeout, r.ID, ctx.Err())
			}
			return Meta{}, fmt.Errorf("engine: result %s: %w", r.ID, err)
		}
		m, err := decodeMeta(buf)
		if err != nil {
			return Meta{}, err
		}
		if m.State.Ready() {
			return m, nil
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
	m, err := r.Wait(ctx)
	if err != nil {
		return zero, err
	}
	if m.State != codec.StateSuccess {
		return zero, m.Err()
	}
	var v R
	if err := json.Unmarshal(m.Result, &v); err != nil {
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
