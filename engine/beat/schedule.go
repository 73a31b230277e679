package beat

import (
	"fmt"
	"time"
)

// Schedule decides when an entry runs. *Interval and *Crontab implement it;
// implementations must be safe for concurrent use.
type Schedule interface {
	// IsDue follows Celery's is_due contract: due reports whether a run
	// is due at now given the last run; next is how long the caller may
	// wait before asking again (after sending, when due). A beat loop
	// sleeps min(next, its maximum loop interval); next is
	// math.MaxInt64 when there is no further run.
	IsDue(lastRun, now time.Time) (due bool, next time.Duration)
	// Next returns the first run time strictly after after, or the zero
	// Time if there is none.
	Next(after time.Time) time.Time
}

var (
	_ Schedule = (*Interval)(nil)
	_ Schedule = (*Crontab)(nil)
)

// Location resolves Celery's timezone and enable_utc settings to the
// location crontabs are evaluated in, as app.timezone does: the IANA zone
// timezone when set, else UTC when enableUTC is true (Celery's default),
// else the system's local zone.
func Location(timezone string, enableUTC bool) (*time.Location, error) {
	switch {
	case timezone != "":
		loc, err := time.LoadLocation(timezone)
		if err != nil {
			return nil, fmt.Errorf("beat: timezone %s: %w", quote(timezone), err)
		}
		return loc, nil
	case enableUTC:
		return time.UTC, nil
	default:
		return time.Local, nil
	}
}
