package beat

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// members lists the values set in mask.
func members(mask uint64) []int {
	var out []int
	for i := range 64 {
		if mask&(1<<uint(i)) != 0 {
			out = append(out, i)
		}
	}
	return out
}

func seq(lo, hi int) []int {
	var out []int
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

func TestParseFieldExpansion(t *testing.T) {
	t.Parallel()
	minute, hour, dow, dom, moy := fields[0], fields[1], fields[2], fields[3], fields[4]
	tests := []struct {
		f    field
		spec string
		want []int
	}{
		{minute, "*", seq(0, 59)},
		{minute, "*/15", []int{0, 15, 30, 45}},
		{minute, "*/100", []int{0}},
		{minute, "1,13,30-45,50-59/2", append(append([]int{1, 13}, seq(30, 45)...), 50, 52, 54, 56, 58)},
		{minute, "50-10/5", []int{0, 5, 10, 50, 55}}, // wraps; the step walks the wrapped list
		{minute, "5-5", []int{5}},
		{minute, "3-3/2", []int{3}},
		{minute, "05", []int{5}},
		{minute, " 1, 2 ,3 ", []int{1, 2, 3}},
		{minute, "59", []int{59}},
		{hour, "9-17/4", []int{9, 13, 17}},
		{hour, "*/4", []int{0, 4, 8, 12, 16, 20}},
		{hour, "0,8-17/2", []int{0, 8, 10, 12, 14, 16}},
		{hour, "22-2", []int{0, 1, 2, 22, 23}},
		{dow, "*", seq(0, 6)},
		{dow, "mon-fri", seq(1, 5)},
		{dow, "fri-mon", []int{0, 1, 5, 6}},
		{dow, "sat-sun", []int{0, 6}},
		{dow, "sun", []int{0}},
		{dow, "Sunday", []int{0}},
		{dow, "TUES,thur,wednesday", []int{2, 3, 4}},
		{dow, "*/2", []int{0, 2, 4, 6}},
		{dow, "0-6", seq(0, 6)},
		{dow, "mon-fri/2", []int{1, 3, 5}},
		{dom, "*", seq(1, 31)},
		{dom, "*/3", []int{1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31}},
		{dom, "2-30/2", []int{2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30}},
		{dom, "1-7,15-21", append(seq(1, 7), seq(15, 21)...)},
		{dom, "30-2", []int{1, 2, 30, 31}},
		{moy, "*/2", []int{1, 3, 5, 7, 9, 11}},
		{moy, "2-12/2", []int{2, 4, 6, 8, 10, 12}},
		{moy, "12-1", []int{1, 12}},
		{moy, "*/3", []int{1, 4, 7, 10}},
	}
	for _, tc := range tests {
		t.Run(tc.f.name+"/"+tc.spec, func(t *testing.T) {
			t.Parallel()
			m, err := tc.f.parse(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			if got := members(m); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseCrontabErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                          string
		minute, hour, dow, dom, month string
		want                          error
		msg                           string // must appear in the error
	}{
		{"dow 7", "*", "*", "7", "*", "*", ErrCrontab, `day_of_week "7": 7 is out of range 0-6 (Sunday is 0`},
		{"dow range to 7", "*", "*", "mon-7", "*", "*", ErrCrontab, "day_of_week"},
		{"minute 60", "60", "*", "*", "*", "*", ErrCrontab, `minute "60": "60" is out of range 0-59`},
		{"hour 24", "*", "24", "*", "*", "*", ErrCrontab, `hour "24"`},
		{"dom 0", "*", "*", "*", "0", "*", ErrCrontab, `day_of_month "0": "0" is out of range 1-31`},
		{"dom 32", "*", "*", "*", "32", "*", ErrCrontab, "out of range 1-31"},
		{"month 13", "*", "*", "*", "*", "13", ErrCrontab, `month_of_year "13"`},
		{"month 0", "*", "*", "*", "*", "0", ErrCrontab, "out of range 1-12"},
		{"month name", "*", "*", "*", "*", "jan", ErrCrontab, "names are only accepted in day_of_week"},
		{"day name in minute", "mon", "*", "*", "*", "*", ErrCrontab, "names are only accepted in day_of_week"},
		{"bad day name", "*", "*", "sundae", "*", "*", ErrCrontab, "neither a number nor a day name"},
		{"short day name", "*", "*", "mo", "*", "*", ErrCrontab, "neither a number nor a day name"},
		{"empty field", "", "*", "*", "*", "*", ErrCrontab, `minute "": empty part`},
		{"empty part", "1,,2", "*", "*", "*", "*", ErrCrontab, "empty part"},
		{"trailing comma", "1,", "*", "*", "*", "*", ErrCrontab, "empty part"},
		{"step zero", "*/0", "*", "*", "*", "*", ErrCrontab, "step must be at least 1"},
		{"range step zero", "1-5/0", "*", "*", "*", "*", ErrCrontab, "step must be at least 1"},
		{"missing step", "*/", "*", "*", "*", "*", ErrCrontab, "missing step"},
		{"negative step", "*/-1", "*", "*", "*", "*", ErrCrontab, "not a whole number"},
		{"double step", "1-5/2/3", "*", "*", "*", "*", ErrCrontab, "not a whole number"},
		{"star double step", "*/5/7", "*", "*", "*", "*", ErrCrontab, "not a whole number"},
		{"double range", "1-2-3", "*", "*", "*", "*", ErrCrontab, `"2-3" is not a number`},
		{"number step", "5/2", "*", "*", "*", "*", ErrCrontab, `a step needs "*" or a range`},
		{"negative", "-5", "*", "*", "*", "*", ErrCrontab, "negative numbers are not supported"},
		{"open range", "5-", "*", "*", "*", "*", ErrCrontab, "empty value in range"},
		{"plus sign", "+5", "*", "*", "*", "*", ErrCrontab, "is not a number"},
		{"underscore", "1_0", "*", "*", "*", "*", ErrCrontab, "is not a number"},
		{"arabic digit", "٣", "*", "*", "*", "*", ErrCrontab, "is not a number"},
		{"double star", "**", "*", "*", "*", "*", ErrCrontab, "is not a number"},
		{"huge", "99999999999999999999", "*", "*", "*", "*", ErrCrontab, "out of range 0-59"},
		{"hex", "0x5", "*", "*", "*", "*", ErrCrontab, "is not a number"},
		{"feb 30", "*", "*", "*", "30,31", "2", ErrNeverMatches, `day_of_month "30,31" in month_of_year "2"`},
		{"apr 31", "0", "0", "*", "31", "4,6,9,11", ErrNeverMatches, "names no real date"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, err := ParseCrontab(tc.minute, tc.hour, tc.dow, tc.dom, tc.month)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, %v; want error %v", c, err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestParseCrontabString(t *testing.T) {
	t.Parallel()
	c, err := ParseCrontabString(" 0  9-17/4\t1-7 */3 mon ")
	if err != nil {
		t.Fatal(err)
	}
	if got := c.String(); got != "0 9-17/4 1-7 */3 mon" {
		t.Errorf("String() = %q", got)
	}
	if !slices.Equal(members(c.dow), []int{1}) || !slices.Equal(members(c.dom), seq(1, 7)) ||
		!slices.Equal(members(c.month), []int{1, 4, 7, 10}) || !slices.Equal(members(c.hour), []int{9, 13, 17}) {
		t.Errorf("fields landed in the wrong place: %+v", c)
	}
	// String round-trips.
	c2, err := ParseCrontabString(c.String())
	if err != nil || *c2 != *c {
		t.Errorf("round trip: %v %+v", err, c2)
	}
	for _, bad := range []string{"", "* * * *", "* * * * * *", "* * * * 7"} {
		if _, err := ParseCrontabString(bad); !errors.Is(err, ErrCrontab) {
			t.Errorf("ParseCrontabString(%q) = %v, want ErrCrontab", bad, err)
		}
	}
}

func mustCron(t testing.TB, line string, loc *time.Location) *Crontab {
	t.Helper()
	c, err := ParseCrontabString(line)
	if err != nil {
		t.Fatal(err)
	}
	return c.In(loc)
}

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// at parses "2006-01-02 15:04:05" (optionally with ".000") in loc.
func at(t testing.TB, loc *time.Location, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, loc)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCrontabNext(t *testing.T) {
	t.Parallel()
	// Expected times were checked against Python Celery's remaining_delta
	// (see TestCeleryAgreement for the live comparison).
	tests := []struct {
		name, cron  string
		after, want string // UTC
	}{
		{"every minute", "* * * * *", "2024-05-10 10:00:00", "2024-05-10 10:01:00"},
		{"every minute from mid-minute", "* * * * *", "2024-05-10 10:00:59.999", "2024-05-10 10:01:00"},
		{"strictly after a match", "0 * * * *", "2024-05-10 10:00:00", "2024-05-10 11:00:00"},
		{"quarter hours", "*/15 * * * *", "2024-05-10 10:07:30", "2024-05-10 10:15:00"},
		{"quarter hours, next hour", "*/15 * * * *", "2024-05-10 10:45:00", "2024-05-10 11:00:00"},
		{"year rollover", "*/15 * * * *", "2023-12-31 23:59:00", "2024-01-01 00:00:00"},
		{"last minute of the year", "59 23 31 12 *", "2024-12-31 23:59:00", "2025-12-31 23:59:00"},
		{"9-17/4 same day", "0 9-17/4 * * *", "2024-05-10 09:00:00", "2024-05-10 13:00:00"},
		{"9-17/4 next day", "0 9-17/4 * * *", "2024-05-10 17:00:00", "2024-05-11 09:00:00"},
		{"mon-fri over the weekend", "0 9 * * mon-fri", "2024-05-10 09:00:00", "2024-05-13 09:00:00"}, // Fri -> Mon
		{"sunday is 0", "0 0 * * 0", "2024-05-10 00:00:00", "2024-05-12 00:00:00"},
		{"31st skips 30-day month", "0 0 31 * *", "2024-04-01 00:00:00", "2024-05-31 00:00:00"},
		{"31st skips Feb", "0 0 31 * *", "2024-01-31 00:00:00", "2024-03-31 00:00:00"},
		{"30th skips Feb", "0 0 30 * *", "2023-01-30 00:00:00", "2023-03-30 00:00:00"},
		{"Feb 29 in a leap year", "0 0 29 2 *", "2023-01-01 00:00:00", "2024-02-29 00:00:00"},
		{"Feb 29 skips non-leap years", "0 0 29 2 *", "2024-03-01 00:00:00", "2028-02-29 00:00:00"},
		{"Feb 29 skips 2100", "0 0 29 2 *", "2096-03-01 00:00:00", "2104-02-29 00:00:00"},
		{"Feb 29 on a Monday", "0 0 29 2 mon", "2024-03-01 00:00:00", "2044-02-29 00:00:00"},
		{"Friday the 13th (dom AND dow)", "0 0 13 * fri", "2024-01-01 00:00:00", "2024-09-13 00:00:00"},
		{"next Friday the 13th", "0 0 13 * fri", "2024-09-13 00:00:00", "2024-12-13 00:00:00"},
		{"first Monday of the month", "0 0 1-7 * mon", "2024-05-07 00:00:00", "2024-06-03 00:00:00"},
		{"once a year", "0 0 1 12 *", "2024-12-01 00:00:00", "2025-12-01 00:00:00"},
		{"quarterly", "0 6 1 */3 *", "2024-02-15 00:00:00", "2024-04-01 06:00:00"},
		{"wrapped weekday range", "30 23 * * fri-mon", "2024-05-07 12:00:00", "2024-05-10 23:30:00"}, // Tue -> Fri
		{"wrapped hour range", "0 22-2 * * *", "2024-05-10 02:00:00", "2024-05-10 22:00:00"},
		{"month end to month start", "0 0 1 * *", "2024-01-31 12:00:00", "2024-02-01 00:00:00"},
		{"leap day itself", "0 12 * * *", "2024-02-28 12:00:00", "2024-02-29 12:00:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := mustCron(t, tc.cron, time.UTC)
			got := c.Next(at(t, time.UTC, tc.after))
			if want := at(t, time.UTC, tc.want); !got.Equal(want) {
				t.Errorf("Next(%s) = %s, want %s", tc.after, got, want)
			}
		})
	}
}

// TestCrontabNextDST pins the daylight-saving rules of the package doc:
// skipped wall-clock times run at the jump, repeated ones at their first
// occurrence, and a passed wall-clock time does not run again.
func TestCrontabNextDST(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, zone, cron string
		after            string // wall clock in zone; ".5" etc. allowed
		afterOffset      int    // UTC offset of after in hours*60+minutes, to pick an occurrence
		want             string // RFC 3339 with offset
	}{
		// Europe/Berlin: 2024-03-31 02:00 CET -> 03:00 CEST; 2024-10-27 03:00 CEST -> 02:00 CET.
		{"Berlin skipped 02:30 runs at the jump", "Europe/Berlin", "30 2 * * *", "2024-03-30 02:30:00", 60, "2024-03-31T03:00:00+02:00"},
		{"Berlin day after the jump", "Europe/Berlin", "30 2 * * *", "2024-03-31 03:00:00.5", 120, "2024-04-01T02:30:00+02:00"},
		{"Berlin skipped quarter hours collapse", "Europe/Berlin", "*/15 * * * *", "2024-03-31 01:45:00", 60, "2024-03-31T03:00:00+02:00"},
		{"Berlin after the collapsed run", "Europe/Berlin", "*/15 * * * *", "2024-03-31 03:00:00.1", 120, "2024-03-31T03:15:00+02:00"},
		{"Berlin skipped hour 2", "Europe/Berlin", "*/15 2 * * *", "2024-03-30 02:45:00", 60, "2024-03-31T03:00:00+02:00"},
		{"Berlin skipped hour 2, then next day", "Europe/Berlin", "*/15 2 * * *", "2024-03-31 03:00:00.1", 120, "2024-04-01T02:00:00+02:00"},
		{"Berlin repeated 02:30 runs first", "Europe/Berlin", "30 2 * * *", "2024-10-26 02:30:00", 120, "2024-10-27T02:30:00+02:00"},
		{"Berlin repeated 02:30 not twice", "Europe/Berlin", "30 2 * * *", "2024-10-27 02:30:00.1", 120, "2024-10-28T02:30:00+01:00"},
		{"Berlin quarter hours skip the second pass", "Europe/Berlin", "*/15 * * * *", "2024-10-27 02:45:00", 120, "2024-10-27T03:00:00+01:00"},
		{"Berlin in the second pass", "Europe/Berlin", "*/15 * * * *", "2024-10-27 02:10:00", 60, "2024-10-27T02:15:00+01:00"},
		{"Berlin second pass to 03:00", "Europe/Berlin", "*/15 * * * *", "2024-10-27 02:50:00", 60, "2024-10-27T03:00:00+01:00"},
		// America/New_York: 2024-03-10 02:00 EST -> 03:00 EDT; 2024-11-03 02:00 EDT -> 01:00 EST.
		{"New York skipped 02:30", "America/New_York", "30 2 * * *", "2024-03-09 02:30:00", -300, "2024-03-10T03:00:00-04:00"},
		{"New York mon-fri skipped Sunday night", "America/New_York", "30 2 * * sun", "2024-03-09 02:30:00", -300, "2024-03-10T03:00:00-04:00"},
		{"New York repeated 01:30 first", "America/New_York", "30 1 * * *", "2024-11-02 01:30:00", -240, "2024-11-03T01:30:00-04:00"},
		{"New York repeated 01:30 once", "America/New_York", "30 1 * * *", "2024-11-03 01:30:00.1", -240, "2024-11-04T01:30:00-05:00"},
		{"New York hourly over fall back", "America/New_York", "0 * * * *", "2024-11-03 01:00:00", -240, "2024-11-03T02:00:00-05:00"},
		{"New York hourly before fall back", "America/New_York", "0 * * * *", "2024-11-03 00:00:00", -240, "2024-11-03T01:00:00-04:00"},
		// Australia/Lord_Howe moves by 30 minutes: 2024-10-06 02:00 -> 02:30 (+11); 2024-04-07 02:00 (+11) -> 01:30 (+10:30).
		{"Lord Howe skipped 02:15", "Australia/Lord_Howe", "15 2 * * *", "2024-10-05 02:15:00", 630, "2024-10-06T02:30:00+11:00"},
		{"Lord Howe repeated 01:45 first", "Australia/Lord_Howe", "45 1 * * *", "2024-04-06 01:45:00", 660, "2024-04-07T01:45:00+11:00"},
		{"Lord Howe repeated 01:45 once", "Australia/Lord_Howe", "45 1 * * *", "2024-04-07 01:45:00.1", 660, "2024-04-08T01:45:00+10:30"},
		// Pacific/Apia skipped all of 2011-12-30 (UTC-10 -> UTC+14).
		{"Apia skipped day runs at the jump", "Pacific/Apia", "0 12 * * *", "2011-12-29 12:00:00", -600, "2011-12-31T00:00:00+14:00"},
		{"Apia after the skipped day", "Pacific/Apia", "0 12 * * *", "2011-12-31 00:00:00.1", 840, "2011-12-31T12:00:00+14:00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			loc := mustLoc(t, tc.zone)
			// Build after from its wall clock and offset, so the repeated
			// hour's two passes can be told apart.
			wall := at(t, time.UTC, tc.after)
			after := wall.Add(-time.Duration(tc.afterOffset) * time.Minute).In(loc)
			if _, off := after.Zone(); off != tc.afterOffset*60 {
				t.Fatalf("bad test: %s has offset %d in %s, not %d minutes", tc.after, off/60, tc.zone, tc.afterOffset)
			}
			got := mustCron(t, tc.cron, loc).Next(after)
			want, err := time.Parse(time.RFC3339, tc.want)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(want) {
				t.Errorf("Next(%s) = %s, want %s", after, got, want)
			}
			if got.Location() != loc {
				t.Errorf("Next returned a time in %v, want %v", got.Location(), loc)
			}
		})
	}
}

func TestCrontabIsDue(t *testing.T) {
	t.Parallel()
	berlin := mustLoc(t, "Europe/Berlin")
	tests := []struct {
		name         string
		cron         string
		loc          *time.Location
		lastRun, now string // wall clock in loc, unambiguous
		wantDue      bool
		wantNext     time.Duration
	}{
		{"not yet", "*/15 * * * *", time.UTC, "2024-05-10 10:00:00.3", "2024-05-10 10:07:00", false, 8 * time.Minute},
		{"exactly due", "*/15 * * * *", time.UTC, "2024-05-10 10:00:00.3", "2024-05-10 10:15:00", true, 15 * time.Minute},
		{"due a little late", "*/15 * * * *", time.UTC, "2024-05-10 10:00:00.3", "2024-05-10 10:15:02", true, 15*time.Minute - 2*time.Second},
		// Catch-up: down for many ticks, due once; next is from now.
		{"missed many, due once", "*/15 * * * *", time.UTC, "2024-05-10 10:00:00", "2024-05-10 13:20:00", true, 10 * time.Minute},
		// Celery skips this one (last run on another date); we catch up.
		{"missed across midnight", "*/15 8-20 * * *", time.UTC, "2024-05-01 20:10:00", "2024-05-02 01:00:00", true, 7 * time.Hour},
		{"nothing missed overnight", "*/15 8-20 * * *", time.UTC, "2024-05-01 20:45:00", "2024-05-02 01:00:00", false, 7 * time.Hour},
		{"spring forward before the jump", "30 2 * * *", berlin, "2024-03-30 02:30:00", "2024-03-31 01:59:59", false, time.Second},
		{"spring forward at the jump", "30 2 * * *", berlin, "2024-03-30 02:30:00", "2024-03-31 03:00:00", true, 23*time.Hour + 30*time.Minute},
		{"spring forward later", "30 2 * * *", berlin, "2024-03-30 02:30:00", "2024-03-31 03:29:00", true, 23*time.Hour + time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := mustCron(t, tc.cron, tc.loc)
			due, next := c.IsDue(at(t, tc.loc, tc.lastRun), at(t, tc.loc, tc.now))
			if due != tc.wantDue || next != tc.wantNext {
				t.Errorf("IsDue = %v, %v; want %v, %v", due, next, tc.wantDue, tc.wantNext)
			}
		})
	}
}

// bruteNext scans minute by minute (in UTC) for the first minute after
// after that matches c, up to limit.
func bruteNext(c *Crontab, after, limit time.Time) (time.Time, bool) {
	for t := after.Truncate(time.Minute).Add(time.Minute); !t.After(limit); t = t.Add(time.Minute) {
		if c.month&(1<<uint(t.Month())) != 0 && c.dom&(1<<uint(t.Day())) != 0 &&
			c.dow&(1<<uint(t.Weekday())) != 0 && c.hour&(1<<uint(t.Hour())) != 0 &&
			c.minute&(1<<uint(t.Minute())) != 0 {
			return t, true
		}
	}
	return time.Time{}, false
}

// TestCrontabNextBruteForce compares Next with a minute-by-minute scan for
// random crontabs whose runs are frequent enough to scan for.
func TestCrontabNextBruteForce(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(9, 15))
	pick := func(opts ...string) string { return opts[r.IntN(len(opts))] }
	base := time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 300
	if testing.Short() {
		n = 50
	}
	for i := range n {
		spec := [5]string{
			pick("*", "*/7", "0", "59", "1,30", "50-10/5", "13-17"),
			pick("*", "*/5", "0", "23", "9-17/4", "22-2"),
			pick("*", "*", "mon-fri", "sat,sun", "fri-mon", "3"),
			pick("*", "*", "*", "1-7", "28-31", "*/2", "29", "31"),
			pick("*", "*", "*", "2", "*/3", "12-1"),
		}
		c, err := ParseCrontab(spec[0], spec[1], spec[2], spec[3], spec[4])
		if err != nil {
			continue // an impossible combination such as 31 in February
		}
		after := base.Add(time.Duration(r.Int64N(int64(3 * 365 * 24 * time.Hour))))
		limit := after.Add(70 * 24 * time.Hour)
		want, found := bruteNext(c, after, limit)
		got := c.Next(after)
		if found && !got.Equal(want) || !found && !got.After(limit) {
			t.Errorf("case %d %v after %s: Next = %s, brute force = %s (found %v)", i, spec, after, got, want, found)
		}
	}
}

// TestResolveBruteForce checks resolve against a search over the offsets a
// zone uses, for every minute around each transition of several zones.
func TestResolveBruteForce(t *testing.T) {
	t.Parallel()
	for _, zone := range []string{"Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Pacific/Apia", "Asia/Kathmandu", "Australia/Sydney", "UTC"} {
		t.Run(zone, func(t *testing.T) {
			t.Parallel()
			loc := mustLoc(t, zone)
			start := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)
			if zone == "Pacific/Apia" {
				start = time.Date(2011, 12, 1, 0, 0, 0, 0, time.UTC)
			}
			transitions := []time.Time{start.Add(100 * 24 * time.Hour)} // one ordinary day too
			for tt := start; tt.Before(start.AddDate(1, 0, 0)); {
				_, end := tt.In(loc).ZoneBounds()
				if end.IsZero() {
					break
				}
				transitions = append(transitions, end)
				tt = end
			}
			for _, tr := range transitions {
				wallStart := tr.In(loc).Add(-26 * time.Hour)
				for m := 0; m < 52*60; m += 1 {
					wt := wallStart.Add(time.Duration(m) * time.Minute)
					y, mo, d := wt.Date()
					h, mi, _ := wt.Clock()
					checkResolve(t, civil{y, int(mo), d, h, mi}, loc, tr)
				}
			}
		})
	}
}

func checkResolve(t *testing.T, w civil, loc *time.Location, tr time.Time) {
	t.Helper()
	want := w.unix()
	// Every instant whose wall clock is w, found through the offsets in
	// force within two days of the transition.
	var occ []time.Time
	seen := map[int]bool{}
	for h := -48; h <= 48; h++ {
		_, off := tr.Add(time.Duration(h) * time.Hour).In(loc).Zone()
		if seen[off] {
			continue
		}
		seen[off] = true
		cand := time.Unix(want-int64(off), 0).In(loc)
		if _, got := cand.Zone(); got == off {
			occ = append(occ, cand)
		}
	}
	slices.SortFunc(occ, func(a, b time.Time) int { return a.Compare(b) })
	a, b, n := resolve(w, loc)
	switch {
	case len(occ) == 0:
		// A gap: a must be the jump, the first instant past w.
		wallOf := func(x time.Time) int64 { _, off := x.Zone(); return x.Unix() + int64(off) }
		if n != 0 || wallOf(a) <= want || wallOf(a.Add(-time.Second)) >= want {
			t.Fatalf("%+v: resolve = %s, %s, %d; want the jump over it", w, a, b, n)
		}
	case len(occ) != n || !a.Equal(occ[0]) || n == 2 && !b.Equal(occ[1]):
		t.Fatalf("%+v: resolve = %s, %s, %d; want %v", w, a, b, n, occ)
	}
}

// TestEveryDateOnEveryWeekday backs the ErrNeverMatches check: every date
// that exists falls on every weekday within 400 years, so a crontab whose
// day_of_month and month_of_year name a real date always has a next run.
func TestEveryDateOnEveryWeekday(t *testing.T) {
	t.Parallel()
	for m := 1; m <= 12; m++ {
		for d := 1; d <= maxDays[m]; d++ {
			var found uint8
			for y := 2000; y < 2000+searchYears && found != 0x7f; y++ {
				if d <= daysIn(y, m) {
					found |= 1 << uint(weekday(y, m, d))
				}
			}
			if found != 0x7f {
				t.Errorf("%02d-%02d misses weekdays: %07b", m, d, found)
			}
		}
	}
}

func TestWeekdayAndDays(t *testing.T) {
	t.Parallel()
	for tt := time.Date(1599, 1, 1, 0, 0, 0, 0, time.UTC); tt.Year() < 2401; tt = tt.AddDate(0, 0, 13) {
		y, m, d := tt.Date()
		if got := weekday(y, int(m), d); got != int(tt.Weekday()) {
			t.Fatalf("weekday(%s) = %d, want %d", tt, got, tt.Weekday())
		}
		if got := daysFromCivil(y, int(m), d); got*86400 != tt.Unix() {
			t.Fatalf("daysFromCivil(%s) = %d", tt, got)
		}
		if got, want := daysIn(y, int(m)), time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day(); got != want {
			t.Fatalf("daysIn(%d, %d) = %d, want %d", y, m, got, want)
		}
	}
}

func TestCrontabInAndLocation(t *testing.T) {
	t.Parallel()
	c := mustCron(t, "0 9 * * *", nil)
	if c.Location() != time.UTC {
		t.Errorf("default location %v", c.Location())
	}
	tokyo := mustLoc(t, "Asia/Tokyo")
	ct := c.In(tokyo)
	if c.Location() != time.UTC || ct.Location() != tokyo {
		t.Error("In must return a copy")
	}
	got := ct.Next(time.Date(2024, 5, 10, 0, 0, 0, 0, time.UTC)) // 09:00 Tokyo
	if want := time.Date(2024, 5, 11, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Errorf("Next = %s, want %s", got, want)
	}
}

func TestLocation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		tz   string
		utc  bool
		want string
	}{
		{"", true, "UTC"},
		{"", false, "Local"},
		{"Europe/Berlin", true, "Europe/Berlin"},
		{"Europe/Berlin", false, "Europe/Berlin"},
	}
	for _, tc := range tests {
		loc, err := Location(tc.tz, tc.utc)
		if err != nil || loc.String() != tc.want {
			t.Errorf("Location(%q, %v) = %v, %v; want %s", tc.tz, tc.utc, loc, err, tc.want)
		}
	}
	if _, err := Location("Mars/Olympus_Mons", true); err == nil || !strings.Contains(err.Error(), "Mars/Olympus_Mons") {
		t.Errorf("unknown zone: %v", err)
	}
}

func TestNextNearTheEndOfTime(t *testing.T) {
	t.Parallel()
	c := mustCron(t, "0 0 29 2 mon", time.UTC)
	far := time.Date(292277026590, 1, 1, 0, 0, 0, 0, time.UTC)
	got := c.Next(far)
	if !got.IsZero() && !got.After(far) {
		t.Errorf("Next(%s) = %s", far, got)
	}
	due, next := c.IsDue(far, far)
	if due || next <= 0 {
		t.Errorf("IsDue = %v, %v", due, next)
	}
}
