//go:build !race

package beat

import (
	"testing"
	"time"
)

// TestAllocsScheduleChecks: a beat loop calls IsDue for every entry on
// every wake-up; it must not allocate.
func TestAllocsScheduleChecks(t *testing.T) {
	c := mustCron(t, "*/15 9-17 * * mon-fri", mustLoc(t, "Europe/Berlin"))
	iv, err := NewInterval(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	e := &Entry{Name: "e", Task: "t", Schedule: c, LastRunAt: time.Date(2024, 5, 10, 10, 0, 0, 0, time.UTC)}
	now := time.Date(2024, 5, 10, 10, 16, 0, 0, time.UTC)
	for name, f := range map[string]func(){
		"Crontab.Next":     func() { sinkTime = c.Next(now) },
		"Crontab.IsDue":    func() { c.IsDue(e.LastRunAt, now) },
		"Interval.IsDue":   func() { iv.IsDue(e.LastRunAt, now) },
		"Entry.IsDue":      func() { e.IsDue(now) },
		"Crontab.Next DST": func() { sinkTime = c.Next(time.Date(2024, 3, 31, 0, 30, 0, 0, time.UTC)) },
	} {
		if n := testing.AllocsPerRun(100, f); n != 0 {
			t.Errorf("%s: %v allocs, want 0", name, n)
		}
	}
}
