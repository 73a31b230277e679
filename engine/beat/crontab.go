package beat

import (
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// Crontab is Celery's crontab schedule: it fires at every wall-clock minute
// of its location whose minute, hour, day of week, day of month and month
// all match. Unlike Unix cron, day_of_week and day_of_month are ANDed.
//
// A Crontab is immutable once parsed and safe for concurrent use.
type Crontab struct {
	minute uint64 // bit n: minute n (0-59)
	hour   uint64 // bit n: hour n (0-23)
	dow    uint64 // bit n: weekday n, Sunday = 0 (0-6)
	dom    uint64 // bit n: day of month n (1-31)
	month  uint64 // bit n: month n (1-12)
	loc    *time.Location
	spec   [5]string // minute, hour, day_of_week, day_of_month, month_of_year as parsed
}

// field describes one crontab field: its Celery name and its range.
type field struct {
	name     string
	min, max int
	dayNames bool // day names (sun..sat) are accepted
}

var fields = [5]field{
	{"minute", 0, 59, false},
	{"hour", 0, 23, false},
	{"day_of_week", 0, 6, true},
	{"day_of_month", 1, 31, false},
	{"month_of_year", 1, 12, false},
}

var dayNames = [7]string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}

// ParseCrontab parses the five Celery crontab fields, in the order of
// Celery's crontab(minute, hour, day_of_week, day_of_month,
// month_of_year). Celery's default for each field is "*"; an empty field is
// an error, as in Celery.
//
// Each field is a comma-separated list of parts; a part is "*", a number
// "n", a range "a-b", or "*" or a range followed by "/step". A range whose
// end is below its start wraps around ("fri-mon" is 5,6,0,1; minute
// "50-10/5" is 50,55,0,5,10), and the step walks the wrapped list, as in
// Celery. Ranges: minute 0-59, hour 0-23, day_of_week 0-6 with Sunday = 0,
// day_of_month 1-31, month_of_year 1-12. day_of_week also takes English day
// names or their prefixes of three letters or more, in any case ("mon",
// "Tues", "thursday"); Celery has no month names. See the package
// documentation for where the grammar is stricter than Celery's.
//
// The crontab is evaluated in UTC; use In for another location. Errors wrap
// ErrCrontab (naming the field and value) or ErrNeverMatches.
func ParseCrontab(minute, hour, dayOfWeek, dayOfMonth, monthOfYear string) (*Crontab, error) {
	c := &Crontab{loc: time.UTC}
	in := [5]string{minute, hour, dayOfWeek, dayOfMonth, monthOfYear}
	masks := [5]*uint64{&c.minute, &c.hour, &c.dow, &c.dom, &c.month}
	for i, f := range fields {
		m, err := f.parse(in[i])
		if err != nil {
			return nil, err
		}
		*masks[i] = m
		c.spec[i] = strings.Join(strings.Fields(in[i]), "") // spaces are only allowed around parts
	}
	if !c.someDateExists() {
		return nil, fmt.Errorf("%w: day_of_month %s in month_of_year %s names no real date",
			ErrNeverMatches, quote(c.spec[3]), quote(c.spec[4]))
	}
	return c, nil
}

// ParseCrontabString parses the one-string form "minute hour day_of_month
// month_of_year day_of_week": the Unix cron order, which Celery's
// crontab.from_string takes since it was added after 5.2.6 (5.2.6 has no
// one-string form). Fields are separated by runs of white space and there
// must be exactly five.
func ParseCrontabString(s string) (*Crontab, error) {
	f := strings.Fields(s)
	if len(f) != 5 {
		return nil, fmt.Errorf("%w: %s: want 5 fields \"minute hour day_of_month month_of_year day_of_week\", got %d",
			ErrCrontab, quote(s), len(f))
	}
	return ParseCrontab(f[0], f[1], f[4], f[2], f[3])
}

// In returns a copy of c evaluated in loc (nil means UTC). Resolve the
// location from Celery's settings with Location.
func (c *Crontab) In(loc *time.Location) *Crontab {
	if loc == nil {
		loc = time.UTC
	}
	cp := *c
	cp.loc = loc
	return &cp
}

// Location returns the location c is evaluated in.
func (c *Crontab) Location() *time.Location { return c.loc }

// String returns c in the one-string form ParseCrontabString accepts:
// "minute hour day_of_month month_of_year day_of_week".
func (c *Crontab) String() string {
	return c.spec[0] + " " + c.spec[1] + " " + c.spec[3] + " " + c.spec[4] + " " + c.spec[2]
}

// parse expands one field to its bit mask.
func (f field) parse(s string) (uint64, error) {
	var mask uint64
	rest := s
	for {
		part, more, found := strings.Cut(rest, ",")
		m, err := f.parsePart(strings.TrimSpace(part))
		if err != nil {
			return 0, fmt.Errorf("%w: %s %s: %v", ErrCrontab, f.name, quote(s), err)
		}
		mask |= m
		if !found {
			return mask, nil
		}
		rest = more
	}
}

// parsePart expands one comma-separated part: "*", "n", "a-b", "*/s" or
// "a-b/s".
func (f field) parsePart(p string) (uint64, error) {
	if p == "" {
		return 0, fmt.Errorf("empty part")
	}
	rng, stepStr, hasStep := strings.Cut(p, "/")
	step := 1
	if hasStep {
		if stepStr == "" {
			return 0, fmt.Errorf("%s: missing step after /", quote(p))
		}
		n, ok := atoi(stepStr)
		if !ok {
			return 0, fmt.Errorf("%s: step %s is not a whole number", quote(p), quote(stepStr))
		}
		if n == 0 {
			return 0, fmt.Errorf("%s: step must be at least 1", quote(p))
		}
		step = n
	}
	var lo, hi int
	switch {
	case rng == "*":
		lo, hi = f.min, f.max
	case strings.HasPrefix(rng, "-"):
		return 0, fmt.Errorf("%s: negative numbers are not supported", quote(p))
	default:
		a, b, isRange := strings.Cut(rng, "-")
		var err error
		if lo, err = f.value(a); err != nil {
			return 0, err
		}
		hi = lo
		if isRange {
			if hi, err = f.value(b); err != nil {
				return 0, err
			}
		} else if hasStep {
			return 0, fmt.Errorf("%s: a step needs \"*\" or a range before the /", quote(p))
		}
	}
	// Walk lo..hi, wrapping past max back to min when hi < lo, taking every
	// step-th value, as Celery's list(range(...))[::step] does.
	n := hi - lo + 1
	if hi < lo {
		n += f.max - f.min + 1
	}
	var mask uint64
	for i := 0; i < n; i += step {
		v := lo + i
		if v > f.max {
			v -= f.max - f.min + 1
		}
		mask |= 1 << uint(v)
	}
	return mask, nil
}

// value parses one number or (for day_of_week) day name and checks its range.
func (f field) value(s string) (int, error) {
	if s == "" {
		return 0, fmt.Errorf("empty value in range")
	}
	n, ok := atoi(s)
	if !ok {
		if !f.dayNames {
			return 0, fmt.Errorf("%s is not a number (names are only accepted in day_of_week)", quote(s))
		}
		d, ok := dayNumber(s)
		if !ok {
			return 0, fmt.Errorf("%s is neither a number nor a day name (sun, mon, ... sat)", quote(s))
		}
		return d, nil
	}
	if n < f.min || n > f.max {
		if f.dayNames && n == 7 {
			return 0, fmt.Errorf("7 is out of range 0-6 (Sunday is 0; Celery rejects 7 too)")
		}
		return 0, fmt.Errorf("%s is out of range %d-%d", quote(s), f.min, f.max)
	}
	return n, nil
}

// atoi parses a non-empty string of ASCII digits. Values too large for any
// field are clamped to a large number so range checks reject them without
// overflowing.
func atoi(s string) (int, bool) {
	if s == "" {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<20 {
			n = n*10 + int(c-'0')
		}
	}
	return n, true
}

// dayNumber maps a day name, or a prefix of one at least three letters
// long, to its number (Sunday = 0), ignoring case.
func dayNumber(s string) (int, bool) {
	if len(s) < 3 || len(s) > len("wednesday") {
		return 0, false
	}
	var buf [9]byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	low := string(buf[:len(s)])
	for i, name := range dayNames {
		if strings.HasPrefix(name, low) {
			return i, true
		}
	}
	return 0, false
}

// quote quotes s for an error message, shortened if long.
func quote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}

// maxDays is the most days each month can have (February 29 in leap years).
var maxDays = [13]int{0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}

// someDateExists reports whether some selected day_of_month exists in some
// selected month. Every existing date falls on every weekday within a
// 400-year Gregorian cycle, so this is also enough for day_of_week.
func (c *Crontab) someDateExists() bool {
	for m := 1; m <= 12; m++ {
		days := uint64(1)<<uint(maxDays[m]+1) - 2 // bits 1..maxDays[m]
		if c.month&(1<<uint(m)) != 0 && c.dom&days != 0 {
			return true
		}
	}
	return false
}

// nextBit returns the lowest set bit of mask at or above from, or -1.
func nextBit(mask uint64, from int) int {
	if from > 63 {
		return -1
	}
	m := mask &^ (uint64(1)<<uint(from) - 1)
	if m == 0 {
		return -1
	}
	return bits.TrailingZeros64(m)
}
