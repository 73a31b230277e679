package beat

import (
	"fmt"
	"time"
)

// Interval is Celery's schedule(run_every): a run is due once Every has
// passed since the last run. It is immutable and safe for concurrent use.
//
// Time is measured between instants, so an interval spanning a
// daylight-saving change lasts exactly Every (Celery 5.2.6 adds the
// interval to the wall clock there, firing an hour early or late).
type Interval struct {
	every    time.Duration
	relative bool
	loc      *time.Location
}

// NewInterval returns an interval schedule firing every every. every must
// be positive: Celery accepts 0 and negative intervals, which make beat
// send the task on every loop iteration; here they are an error wrapping
// ErrInterval.
func NewInterval(every time.Duration) (*Interval, error) {
	if every <= 0 {
		return nil, fmt.Errorf("%w: run_every %v must be positive", ErrInterval, every)
	}
	return &Interval{every: every, loc: time.UTC}, nil
}

// Relative returns a copy of s with Celery's relative=True: each run time
// (last run + Every) is rounded down to the interval's resolution in loc
// (nil means UTC) — the start of the day when Every is a day or more, of
// the hour when an hour or more, of the minute when a minute or more, else
// of the second. A relative 1h interval thus fires on the hour. Intervals
// under a second are not rounded.
func (s *Interval) Relative(loc *time.Location) *Interval {
	if loc == nil {
		loc = time.UTC
	}
	cp := *s
	cp.relative, cp.loc = true, loc
	return &cp
}

// Every returns the interval.
func (s *Interval) Every() time.Duration { return s.every }

// IsRelative reports whether run times are rounded (see Relative).
func (s *Interval) IsRelative() bool { return s.relative }

// String describes s, e.g. "every 10s" or "every 1h0m0s (relative)".
func (s *Interval) String() string {
	if s.relative {
		return "every " + s.every.String() + " (relative)"
	}
	return "every " + s.every.String()
}

// Next returns the run after after: after+Every, rounded down when relative.
func (s *Interval) Next(after time.Time) time.Time {
	if !s.relative || s.every < time.Second {
		return after.Add(s.every)
	}
	if s.every >= 24*time.Hour {
		// Add on the wall clock so that a 23- or 25-hour day cannot round
		// back to the day of after; then take that day's midnight.
		la := after.In(s.loc)
		y, m, d := la.Date()
		hh, mm, ss := la.Clock()
		wall := time.Date(y, m, d, hh, mm, ss, la.Nanosecond(), time.UTC).Add(s.every)
		y, m, d = wall.Date()
		return time.Date(y, m, d, 0, 0, 0, 0, s.loc)
	}
	t := after.Add(s.every).In(s.loc)
	_, mm, ss := t.Clock()
	cut := time.Duration(t.Nanosecond()) // second resolution
	if s.every >= time.Minute {
		cut += time.Duration(ss) * time.Second
	}
	if s.every >= time.Hour {
		cut += time.Duration(mm) * time.Minute
	}
	return t.Add(-cut)
}

// IsDue implements Celery's schedule.is_due: due is true once now is at or
// past Next(lastRun); next is Every when due (Celery's "seconds"), else the
// time left until Next(lastRun).
func (s *Interval) IsDue(lastRun, now time.Time) (due bool, next time.Duration) {
	t := s.Next(lastRun)
	if now.Before(t) {
		return false, t.Sub(now)
	}
	return true, s.every
}
