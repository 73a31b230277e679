package beat

import (
	"time"

	"github.com/goccy/go-json"
)

// Entry is one periodic task, Celery's ScheduleEntry: which task to send,
// with what arguments and options, on what schedule, and what ran last.
//
// An Entry is not safe for concurrent use: one beat loop owns it. Its
// byte slices are owned by the Entry and must not be modified while it is
// in use.
type Entry struct {
	Name     string   // unique key of the entry (the beat_schedule key)
	Task     string   // registered task name to send
	Schedule Schedule // when to send it

	Args   json.RawMessage // JSON array of positional arguments; nil = []
	Kwargs json.RawMessage // JSON object of keyword arguments; nil = {}

	Options Options // apply_async options for each message

	// LastRunAt is when the task was last sent (Celery's last_run_at);
	// the zero Time means never, which makes the entry due at once.
	// Restore sets it to the persisted value or, for a new entry, to the
	// start time, as Celery does.
	LastRunAt     time.Time
	TotalRunCount int // how many times the task was sent
}

// Options are the apply_async options beat passes with every message of an
// entry (Celery's entry "options"). Zero values mean "not set": the app's
// routing and defaults apply.
type Options struct {
	Queue      string // "queue"
	Exchange   string // "exchange"
	RoutingKey string // "routing_key"
	// Priority is "priority", 0-255, valid if HasPriority.
	Priority    uint8
	HasPriority bool
	// Expires is "expires" in seconds after sending: the message's
	// "expires" header becomes send time + Expires (and, on AMQP, its
	// "expiration" property). 0 = none.
	Expires       time.Duration
	TimeLimit     time.Duration   // "time_limit"; 0 = task default
	SoftTimeLimit time.Duration   // "soft_time_limit"; 0 = task default
	Serializer    string          // "serializer", e.g. "json"
	Compression   string          // "compression", e.g. "zlib"
	Headers       json.RawMessage // "headers": JSON object of custom headers, or nil
}

// IsDue reports whether e is due at now and how long until it should be
// checked again (see Schedule).
func (e *Entry) IsDue(now time.Time) (due bool, next time.Duration) {
	return e.Schedule.IsDue(e.LastRunAt, now)
}

// Advance records that the task was sent at now, as Celery's reserve does
// before sending: LastRunAt becomes now and TotalRunCount grows by one.
// Runs missed before now are not replayed.
func (e *Entry) Advance(now time.Time) {
	e.LastRunAt = now
	e.TotalRunCount++
}
