package beat

import (
	"math"
	"time"
)

// never is the "check again" delay reported when a schedule has no run in
// the search horizon; a beat loop clamps it to its maximum sleep.
const never = time.Duration(math.MaxInt64)

// searchYears bounds the search for the next matching date. The weekday
// pattern of the Gregorian calendar repeats every 400 years, so a date that
// does not occur in 400 years never does; ParseCrontab rejects those.
const searchYears = 400

// Next returns the first run strictly after after, in c's location. See the
// package documentation for how wall-clock minutes that a daylight-saving
// change skips or repeats are handled. Next returns the zero Time only when
// there is no run within 400 years of after, which for a parsed Crontab
// happens only near the end of the representable years.
func (c *Crontab) Next(after time.Time) time.Time {
	la := after.In(c.loc)
	y, mo, d := la.Date()
	h, mi, _ := la.Clock()
	w := civil{y, int(mo), d, h, mi}
	// Walk the wall clock forward from after's minute. A candidate whose
	// every occurrence is not after "after" (a minute of a repeated hour
	// whose second pass we are already in) is stepped over; that takes at
	// most one repeated hour's worth of candidates.
	for range 24 * 60 {
		var ok bool
		if w, ok = c.nextCivil(w); !ok {
			return time.Time{}
		}
		a, b, n := resolve(w, c.loc)
		if a.After(after) {
			return a
		}
		if n == 2 && b.After(after) {
			return b
		}
	}
	return time.Time{}
}

// IsDue implements Celery's crontab.is_due: due is true when a run was
// scheduled in (lastRun, now]; next is how long until the schedule should
// be checked again: until the run after now when due, else until the next
// run. However many runs were missed since lastRun, IsDue reports one due
// run; the caller records now as the new last run (see Entry.Advance).
func (c *Crontab) IsDue(lastRun, now time.Time) (due bool, next time.Duration) {
	return isDue(c, lastRun, now)
}

func isDue(s Schedule, lastRun, now time.Time) (bool, time.Duration) {
	t := s.Next(lastRun)
	if t.IsZero() {
		return false, never
	}
	if now.Before(t) {
		return false, t.Sub(now)
	}
	t = s.Next(now)
	if t.IsZero() {
		return true, never
	}
	return true, t.Sub(now)
}

// civil is a wall-clock minute, with no location.
type civil struct{ y, mo, d, h, mi int }

// nextCivil returns the first wall-clock minute after w that matches every
// field, or false if none does within searchYears.
func (c *Crontab) nextCivil(w civil) (civil, bool) {
	y, mo, d, h, mi := w.y, w.mo, w.d, w.h, w.mi+1
	if mo < 1 || mo > 12 || d < 1 || d > daysIn(y, mo) || h < 0 || h > 23 || mi < 0 || mi > 60 {
		return civil{}, false // cannot come from time.Time
	}
	// Each step below either returns or moves to the start of a later
	// month, day, hour or minute; normalize keeps the fields valid.
	limit := y + searchYears
	for y <= limit {
		if mi > 59 {
			mi, h = 0, h+1
		}
		if h > 23 {
			h, d = 0, d+1
		}
		if mo <= 12 && d > daysIn(y, mo) {
			d, mo = 1, mo+1
		}
		if mo > 12 {
			y, mo, d = y+1, 1, 1
			continue // re-check the limit
		}
		if m := nextBit(c.month, mo); m < 0 {
			y, mo, d, h, mi = y+1, 1, 1, 0, 0
			continue
		} else if m != mo {
			mo, d, h, mi = m, 1, 0, 0
		}
		nd := nextBit(c.dom, d)
		if nd < 0 || nd > daysIn(y, mo) {
			mo, d, h, mi = mo+1, 1, 0, 0
			continue
		}
		if nd != d {
			d, h, mi = nd, 0, 0
		}
		if c.dow&(1<<uint(weekday(y, mo, d))) == 0 {
			d, h, mi = d+1, 0, 0
			continue
		}
		nh := nextBit(c.hour, h)
		if nh < 0 {
			d, h, mi = d+1, 0, 0
			continue
		}
		if nh != h {
			h, mi = nh, 0
		}
		nm := nextBit(c.minute, mi)
		if nm < 0 {
			h, mi = h+1, 0
			continue
		}
		return civil{y, mo, d, h, nm}, true
	}
	return civil{}, false
}

// resolve finds the instants at which wall-clock minute w occurs in loc.
// n is 1 normally; 2 when w falls in a repeated hour (a < b); 0 when w is
// skipped by a forward jump, in which case a is the instant of the jump,
// the first instant whose wall clock is past w.
func resolve(w civil, loc *time.Location) (a, b time.Time, n int) {
	t := time.Date(w.y, time.Month(w.mo), w.d, w.h, w.mi, 0, 0, loc)
	want := w.unix()
	_, off := t.Zone()
	got := t.Unix() + int64(off)
	start, end := t.ZoneBounds()
	if got != want {
		// w is in a gap. time.Date used the offset of one side; the jump is
		// the boundary of t's zone on the side of w.
		if got > want && !start.IsZero() {
			return start, time.Time{}, 0
		}
		if got < want && !end.IsZero() {
			return end, time.Time{}, 0
		}
		return t, time.Time{}, 0
	}
	// w exists at t; look for a second occurrence in the zones on either
	// side of t's.
	if !start.IsZero() {
		if p, ok := occurrence(want, start.Add(-time.Nanosecond), loc); ok && p.Before(t) {
			return p, t, 2
		}
	}
	if !end.IsZero() {
		if q, ok := occurrence(want, end, loc); ok && q.After(t) {
			return t, q, 2
		}
	}
	return t, time.Time{}, 1
}

// occurrence returns the instant whose wall clock is want (seconds since
// the epoch as if in UTC) under the offset in force at probe, if the zone
// really has that offset at that instant.
func occurrence(want int64, probe time.Time, loc *time.Location) (time.Time, bool) {
	_, off := probe.Zone()
	t := time.Unix(want-int64(off), 0).In(loc)
	_, got := t.Zone()
	return t, got == off
}

// unix returns w's seconds since the epoch as if w were UTC.
func (w civil) unix() int64 {
	return daysFromCivil(w.y, w.mo, w.d)*86400 + int64(w.h)*3600 + int64(w.mi)*60
}

// daysFromCivil returns the days from 1970-01-01 to y-m-d in the proleptic
// Gregorian calendar (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y
	if era < 0 {
		era -= 399
	}
	era /= 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}

// weekday returns the day of week of y-m-d, Sunday = 0.
func weekday(y, m, d int) int {
	wd := (daysFromCivil(y, m, d) + 4) % 7 // 1970-01-01 was a Thursday
	if wd < 0 {
		wd += 7
	}
	return int(wd)
}

// daysIn returns the number of days in month m of year y.
func daysIn(y, m int) int {
	if m == 2 && (y%4 != 0 || (y%100 == 0 && y%400 != 0)) {
		return 28
	}
	return maxDays[m]
}
