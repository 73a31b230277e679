package engine

import (
	"errors"
	"fmt"
	"time"
)

// Sentinel errors.
var (
	// ErrNotRegistered: a message named a task this app does not know.
	ErrNotRegistered = errors.New("engine: task not registered")
	// ErrTimeout: waiting for a result took longer than the context allowed.
	ErrTimeout = errors.New("engine: timed out waiting for the result")
	// ErrRevoked: the task was revoked (or expired) instead of running.
	ErrRevoked = errors.New("engine: task revoked")
	// ErrMaxRetriesExceeded: a retry was asked for after max retries.
	ErrMaxRetriesExceeded = errors.New("engine: max retries exceeded")
	// ErrClosed: the app or worker was closed.
	ErrClosed = errors.New("engine: closed")
	// ErrNoBackend: results were asked of an app without a result backend.
	ErrNoBackend = errors.New("engine: no result backend configured")
	// ErrBadArgs: a task's arguments did not decode into its parameters.
	ErrBadArgs = errors.New("engine: bad task arguments")
)

// TaskError is a task failure as Celery records it: an exception type,
// its module and its arguments (§5.3 of the wire contract). A handler
// returns one to choose what Python clients see (for example
// &TaskError{Type: "ValueError", Module: "builtins", Args: []any{"bad"}});
// any other error is recorded as builtins.Exception with err.Error() as its
// message. AsyncResult.Get returns a *TaskError for a FAILURE record.
type TaskError struct {
	Type      string // exception class name, e.g. "ValueError"
	Module    string // e.g. "builtins", "celery.exceptions"
	Args      []any  // exc_message: the exception's args
	Traceback string // traceback text when the record carried one
}

func (e *TaskError) Error() string {
	if len(e.Args) == 1 {
		return fmt.Sprintf("%s: %v", e.Type, e.Args[0])
	}
	return fmt.Sprintf("%s%v", e.Type, e.Args)
}

// Is makes errors.Is(err, ErrRevoked) true for a revoked task's record.
func (e *TaskError) Is(target error) bool {
	return target == ErrRevoked && e.Type == "TaskRevokedError"
}

// RetryError asks the worker to retry the task (Celery's Task.retry): the
// message is re-published with the same id and retries+1, to run at ETA or
// after Countdown (default: the task's retry delay). Build it with Retry.
type RetryError struct {
	Countdown time.Duration
	ETA       time.Time
	// Err is the reason, stored in the RETRY record and raised as the
	// failure when max retries are exceeded; nil = MaxRetriesExceededError.
	Err error
	// MaxRetries overrides the task's limit when HasMaxRetries.
	MaxRetries    int
	HasMaxRetries bool
}

func (e *RetryError) Error() string {
	if e.Err != nil {
		return "retry: " + e.Err.Error()
	}
	return "retry"
}

func (e *RetryError) Unwrap() error { return e.Err }

// Retry returns a *RetryError with reason err (may be nil) to be returned by
// a handler. Countdown 0 uses the task's default retry delay.
func Retry(err error, countdown time.Duration) *RetryError {
	return &RetryError{Err: err, Countdown: countdown}
}

// RejectError asks the worker to reject the message (Celery's Reject):
// requeued, or dropped without a result when Requeue is false.
type RejectError struct {
	Reason  string
	Requeue bool
}

func (e *RejectError) Error() string { return "reject: " + e.Reason }

// Reject returns a *RejectError.
func Reject(reason string, requeue bool) *RejectError {
	return &RejectError{Reason: reason, Requeue: requeue}
}

// ErrIgnore, returned by a handler, makes the worker store no result and
// send no success/failure hooks (Celery's Ignore). The message is acked.
var ErrIgnore = errors.New("engine: ignore task")
