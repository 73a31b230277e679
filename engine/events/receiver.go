package events

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/engine/control"
)

// Event is one event as a monitor receives it: the fields of its JSON
// object (numbers are float64). The accessors read the common fields.
type Event map[string]any

// Type returns the event type ("task-succeeded", "worker-heartbeat").
func (e Event) Type() string { return e.str("type") }

// Hostname returns the sender's node name.
func (e Event) Hostname() string { return e.str("hostname") }

// UUID returns a task event's task id.
func (e Event) UUID() string { return e.str("uuid") }

// Clock returns the sender's Lamport clock.
func (e Event) Clock() int64 { return int64(e.num("clock")) }

// Timestamp returns when the event was sent (its Unix timestamp, in
// UTC). Celery's receiver shifts timestamps by the difference between the
// sender's and its own utcoffset, for display in local time; this does
// not: the timestamp is absolute.
func (e Event) Timestamp() time.Time {
	return time.Unix(0, int64(e.num("timestamp")*1e9)).UTC()
}

// UTCOffset returns the sender's utcoffset field: hours west of UTC
// (Python's time.timezone // 3600; -1 for UTC+1).
func (e Event) UTCOffset() int { return int(e.num("utcoffset")) }

func (e Event) str(k string) string {
	s, _ := e[k].(string)
	return s
}

func (e Event) num(k string) float64 {
	f, _ := e[k].(float64)
	return f
}

// Decode parses an event message body: one event object, or a JSON array
// of them (task.multi). Items that are not objects are an error.
func Decode(body []byte) ([]Event, error) {
	body = bytes.TrimSpace(body)
	if len(body) > 0 && body[0] == '[' {
		var list []Event
		if err := json.Unmarshal(body, &list); err != nil {
			return nil, fmt.Errorf("%w: event list: %v", control.ErrBadMessage, err)
		}
		for i, e := range list {
			if e == nil {
				return nil, fmt.Errorf("%w: event %d is not an object", control.ErrBadMessage, i)
			}
		}
		return list, nil
	}
	var e Event
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("%w: event: %v", control.ErrBadMessage, err)
	}
	if e == nil {
		return nil, fmt.Errorf("%w: event is not an object", control.ErrBadMessage)
	}
	return []Event{e}, nil
}

// Receive subscribes to the events whose routing key matches key ("#":
// all; "worker.#", "task.#"...) and calls fn with each event, in order,
// on the bus's goroutine (fn must not block). It returns once the
// subscription is in place; Close the listener to stop. Undecodable
// messages are logged to log (nil: slog.Default()) and skipped.
func Receive(ctx context.Context, bus control.Bus, key string, log *slog.Logger, fn func(Event)) (control.Listener, error) {
	if log == nil {
		log = slog.Default()
	}
	return bus.ListenEvents(ctx, key, func(m *control.Message) {
		raw, err := control.BodyJSON(m)
		if err == nil {
			var evs []Event
			if evs, err = Decode(raw); err == nil {
				for _, e := range evs {
					fn(e)
				}
				return
			}
		}
		log.Warn("events: dropping undecodable event message", "err", err)
	})
}
