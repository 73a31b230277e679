package engine

import (
	"fmt"
	"time"
)

// This file holds what remote control (package engine/control) and events
// (package engine/events) need from the engine beyond the introspection in
// introspect.go.

// Config returns the worker's configuration with the App's defaults
// filled in.
func (w *Worker) Config() WorkerConfig { return w.cfg }

// SetTimeLimit changes the hard and soft time limits of a registered task
// at runtime (Celery's time_limit control command); 0 means none, so that
// the worker defaults apply. Tasks already received keep the limits they
// were routed with only until they start: limits are read when a task
// starts. It returns an error wrapping ErrNotRegistered for an unknown
// task.
func (a *App) SetTimeLimit(task string, hard, soft time.Duration) error {
	if hard < 0 || soft < 0 {
		return fmt.Errorf("engine: time limits of %s: negative limit (hard %v, soft %v)", task, hard, soft)
	}
	a.regMu.Lock()
	old := (*a.tasks.Load())[task]
	a.regMu.Unlock()
	if old == nil {
		return fmt.Errorf("%w: %q", ErrNotRegistered, task)
	}
	def := *old // copy-on-write: running tasks keep reading the old def
	def.opts.timeLimit, def.opts.softTimeLimit = hard, soft
	a.register(&def)
	return nil
}

// TimeLimits returns the hard and soft time limits registered for task
// (zero: none of its own), and whether the task is known.
func (a *App) TimeLimits(task string) (hard, soft time.Duration, ok bool) {
	def := (*a.tasks.Load())[task]
	if def == nil {
		return 0, 0, false
	}
	return def.opts.timeLimit, def.opts.softTimeLimit, true
}

// RateLimit returns the rate limit task was registered with ("" = none).
// Runtime changes made with Worker.SetRateLimit are per worker and not
// reflected here.
func (a *App) RateLimit(task string) string {
	if def := (*a.tasks.Load())[task]; def != nil {
		return def.opts.rateLimit
	}
	return ""
}

// RevokedAt returns the revoked ids and when each was revoked: the data
// Celery's mingle (hello) and --statedb exchange. The map is the caller's.
func (a *App) RevokedAt() map[string]time.Time {
	s := &a.revoked
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make(map[string]time.Time, len(s.ids))
	for id, at := range s.ids {
		out[id] = at
	}
	return out
}

// RestoreRevoked adds ids revoked elsewhere or earlier (another worker's
// hello reply, a state file) with the time each was revoked. Entries older
// than Celery's revoke expiry (3 hours) are skipped; the set stays bounded
// as for Revoke.
func (a *App) RestoreRevoked(ids map[string]time.Time) {
	now := time.Now()
	fresh := make([]string, 0, len(ids))
	for id, at := range ids {
		if now.Sub(at) <= revokedExpiry {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) == 0 {
		return
	}
	s := &a.revoked
	s.add(fresh...)
	s.mu.Lock()
	for _, id := range fresh {
		if _, ok := s.ids[id]; ok {
			s.ids[id] = ids[id]
		}
	}
	s.mu.Unlock()
}

// AppendPyRepr appends Python's repr() of the JSON value js (None, True,
// single-quoted strings; a JSON array as a tuple when tuple is set), cut
// at 1024 bytes as Celery's saferepr does. Events carry results and
// arguments in this form. Malformed input gives a best-effort repr.
func AppendPyRepr(dst, js []byte, tuple bool) []byte { return appendPyRepr(dst, js, tuple) }
