package codec

import (
	"strconv"
	"time"
)

// State is a Celery task state (celery.states).
type State uint8

// The Celery states. StatePending is the zero value: Celery never stores
// it (a missing record means pending). StateCustom stands for any other
// state name (tasks may call update_state with their own); the name is
// in Result.CustomState.
const (
	StatePending State = iota
	StateReceived
	StateStarted
	StateSuccess
	StateFailure
	StateRetry
	StateRevoked
	StateRejected
	StateIgnored
	StateCustom
)

var stateNames = [...]string{
	StatePending:  "PENDING",
	StateReceived: "RECEIVED",
	StateStarted:  "STARTED",
	StateSuccess:  "SUCCESS",
	StateFailure:  "FAILURE",
	StateRetry:    "RETRY",
	StateRevoked:  "REVOKED",
	StateRejected: "REJECTED",
	StateIgnored:  "IGNORED",
	StateCustom:   "CUSTOM",
}

// String returns the state's Celery name ("SUCCESS"); "CUSTOM" for
// StateCustom.
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// ParseState maps a Celery state name to a State; ok is false for a name
// Celery does not define (callers treat it as StateCustom).
func ParseState(b []byte) (State, bool) {
	for i := StatePending; i < StateCustom; i++ {
		if string(b) == stateNames[i] {
			return i, true
		}
	}
	return StateCustom, false
}

// Ready reports whether s is final (celery.states.READY_STATES: SUCCESS,
// FAILURE, REVOKED); only then does a record carry date_done.
func (s State) Ready() bool {
	return s == StateSuccess || s == StateFailure || s == StateRevoked
}

// Result is one task result record, the value of celery-task-meta-<id>
// (celery-wire.md §5.2).
//
// After DecodeResultJSON the byte-slice fields are views into the decoded
// buffer (or into the Result's own scratch when a string had escapes, as
// tracebacks always do). A Result is not safe for concurrent use; Reset it
// before reuse.
type Result struct {
	State       State
	CustomState []byte // the state name when State is StateCustom
	// Result is the raw JSON return value; for FAILURE, RETRY and REVOKED
	// an exception object (see AppendExceptionJSON), for STARTED
	// {"pid": ..., "hostname": ...}. Empty means null.
	Result    []byte
	Traceback []byte // traceback text (not JSON); empty means null
	// Children is the raw JSON array of result tuples of the tasks this
	// task applied (§2.6, see ResultRef); empty means [].
	Children []byte
	DateDone time.Time // zero means null; written for ready states
	TaskID   []byte
	GroupID  []byte // written only when non-empty
	ParentID []byte // written only when non-empty

	// Extended fields (result_extended=True); written when Extended.
	Extended bool
	Name     []byte // task name
	Args     []byte // raw JSON array; empty means null
	Kwargs   []byte // raw JSON object; empty means null
	Worker   []byte // hostname of the worker
	// Retries is the task's retries; -1 stands for null, which Celery
	// stores for a message of a task the worker does not know.
	Retries int
	Queue   []byte // routing key the message arrived with

	scratch []byte
}

// Reset clears r for reuse, keeping its scratch storage.
func (r *Result) Reset() {
	scratch := r.scratch[:0]
	*r = Result{}
	r.scratch = scratch
}

// AppendResultJSON appends r as the JSON record Celery's backends store,
// keys in Python's order: status, result, traceback, children, date_done,
// then group_id and parent_id when set, then name, args, kwargs, worker,
// retries, queue when r.Extended, and task_id last. It does not allocate
// beyond growing dst.
func AppendResultJSON(dst []byte, r *Result) []byte {
	dst = append(dst, `{"status": `...)
	if r.State == StateCustom && len(r.CustomState) != 0 {
		dst = appendString(dst, r.CustomState)
	} else {
		dst = appendString(dst, r.State.String())
	}
	dst = append(dst, `, "result": `...)
	dst = appendRawOr(dst, r.Result, "null")
	dst = append(dst, `, "traceback": `...)
	dst = appendStringOrNull(dst, r.Traceback)
	dst = append(dst, `, "children": `...)
	dst = appendRawOr(dst, r.Children, "[]")
	dst = append(dst, `, "date_done": `...)
	if r.DateDone.IsZero() {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '"')
		dst = AppendDateDone(dst, r.DateDone)
		dst = append(dst, '"')
	}
	if len(r.GroupID) != 0 {
		dst = append(dst, `, "group_id": `...)
		dst = appendString(dst, r.GroupID)
	}
	if len(r.ParentID) != 0 {
		dst = append(dst, `, "parent_id": `...)
		dst = appendString(dst, r.ParentID)
	}
	if r.Extended {
		dst = append(dst, `, "name": `...)
		dst = appendStringOrNull(dst, r.Name)
		dst = append(dst, `, "args": `...)
		dst = appendRawOr(dst, r.Args, "null")
		dst = append(dst, `, "kwargs": `...)
		dst = appendRawOr(dst, r.Kwargs, "null")
		dst = append(dst, `, "worker": `...)
		dst = appendStringOrNull(dst, r.Worker)
		dst = append(dst, `, "retries": `...)
		if r.Retries < 0 {
			dst = append(dst, "null"...)
		} else {
			dst = strconv.AppendInt(dst, int64(r.Retries), 10)
		}
		dst = append(dst, `, "queue": `...)
		dst = appendStringOrNull(dst, r.Queue)
	}
	dst = append(dst, `, "task_id": `...)
	dst = appendString(dst, r.TaskID)
	return append(dst, '}')
}

// DecodeResultJSON resets r and fills it from one JSON result record.
// "status" is required; unknown keys are ignored; the presence of any
// extended key sets r.Extended. Raw JSON fields (Result, Children, Args,
// Kwargs) are validated and kept as views into src.
func DecodeResultJSON(src []byte, r *Result) error {
	const part = "result"
	r.Reset()
	s := scanner{src: src}
	if c := s.peek(); c != '{' {
		if c == 0 {
			return fieldErr(s.err(), part, "")
		}
		return &DecodeError{Part: part, Err: ErrFieldType, Detail: "want object, got " + kindName(c)}
	}
	_ = s.open('{')
	hasStatus := false
	var kb keyBuf
	for first := true; ; first = false {
		key, esc, done, err := s.member(first)
		if err != nil {
			return fieldErr(err, part, "")
		}
		if done {
			break
		}
		var n int64
		switch string(unescapeKey(&kb, key, esc)) {
		case "status":
			var b []byte
			if b, err = r.strField(&s, "status"); err == nil {
				if len(b) == 0 {
					return &DecodeError{Part: part, Field: "status", Err: ErrMissingField}
				}
				hasStatus = true
				var ok bool
				if r.State, ok = ParseState(b); !ok {
					r.CustomState = b
				}
			}
		case "result":
			r.Result, err = rawValue(&s, part, "result")
		case "traceback":
			r.Traceback, err = r.strField(&s, "traceback")
		case "children":
			r.Children, err = rawOfKind(&s, part, "children", '[', "array")
		case "date_done":
			var b []byte
			if b, err = r.strField(&s, "date_done"); err == nil && len(b) != 0 {
				if r.DateDone, err = ParseISOTime(b); err != nil {
					err = &DecodeError{Part: part, Field: "date_done", Err: ErrBadValue,
						Detail: "bad time " + quoteTrunc(b) + ": " + err.(*DecodeError).Detail}
				}
			}
		case "task_id":
			r.TaskID, err = r.strField(&s, "task_id")
		case "group_id":
			r.GroupID, err = r.strField(&s, "group_id")
		case "parent_id":
			r.ParentID, err = r.strField(&s, "parent_id")
		case "name":
			r.Extended = true
			r.Name, err = r.strField(&s, "name")
		case "args":
			r.Extended = true
			r.Args, err = rawOfKind(&s, part, "args", '[', "array")
		case "kwargs":
			r.Extended = true
			r.Kwargs, err = rawOfKind(&s, part, "kwargs", '{', "object")
		case "worker":
			r.Extended = true
			r.Worker, err = r.strField(&s, "worker")
		case "retries":
			r.Extended = true
			var null bool
			n, null, err = smallIntField(&s, part, "retries", 0, 1<<31-1)
			r.Retries = int(n)
			if null {
				r.Retries = -1
			}
		case "queue":
			r.Extended = true
			r.Queue, err = r.strField(&s, "queue")
		default:
			_, err = s.skip()
			err = fieldErr(err, part, "")
		}
		if err != nil {
			return err
		}
	}
	if err := s.end(); err != nil {
		return fieldErr(err, part, "")
	}
	if !hasStatus {
		return &DecodeError{Part: part, Field: "status", Err: ErrMissingField}
	}
	return nil
}

// strField reads a string or null for a result field, unescaping into r's
// scratch.
func (r *Result) strField(s *scanner, field string) ([]byte, error) {
	return scratchStr(&r.scratch, s, "result", field)
}

// rawValue returns the raw text of any JSON value (nil for null).
func rawValue(s *scanner, part, field string) ([]byte, error) {
	if s.peek() == 'n' && s.null() {
		return nil, nil
	}
	v, err := s.skip()
	return v, fieldErr(err, part, field)
}
