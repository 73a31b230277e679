package beat

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzParseCrontab checks that any five fields either fail with an error or
// give a crontab whose next run is later, matches every field and survives
// a String round trip.
func FuzzParseCrontab(f *testing.F) {
	for _, s := range [][5]string{
		{"*", "*", "*", "*", "*"},
		{"*/15", "9-17/4", "mon-fri", "*", "*"},
		{"1,13,30-45,50-59/2", "0,8-17/2", "fri-mon", "1-7,15-21", "2-12/2"},
		{"50-10/5", "22-2", "Sunday", "29", "2"},
		{"0", "0", "7", "31", "2"},
		{"1-5/2/3", "*/0", "sundae", "0", "13"},
		{" 1 , 2 ", "-5", "", "99999999999999999999", "٣"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4], int64(1715335200))
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, minute, hour, dow, dom, moy string, unix int64) {
		c, err := ParseCrontab(minute, hour, dow, dom, moy)
		if err != nil {
			if c != nil {
				t.Fatal("crontab and error")
			}
			return
		}
		// Keep after within years where 400 years of search fit.
		after := time.Unix(unix%(1<<36), 0).UTC()
		next := c.Next(after)
		if !next.After(after) {
			t.Fatalf("%s: Next(%s) = %s", c, after, next)
		}
		if !c.matches(next) {
			t.Fatalf("%s: Next(%s) = %s does not match", c, after, next)
		}
		// In a zone with DST, Next is later and, unless it is a jump
		// over skipped minutes, matches on the wall clock.
		cb := c.In(berlin)
		nb := cb.Next(after)
		if !nb.After(after) {
			t.Fatalf("%s: Berlin Next(%s) = %s", c, after, nb)
		}
		if due, wait := cb.IsDue(after, nb); !due || wait <= 0 {
			t.Fatalf("%s: IsDue at the next run = %v, %v", c, due, wait)
		}
		c2, err := ParseCrontabString(c.String())
		if err != nil || *c2 != *c {
			t.Fatalf("String %q does not round-trip: %v", c.String(), err)
		}
	})
}

// matches reports whether t's wall clock in c's location matches c.
func (c *Crontab) matches(t time.Time) bool {
	t = t.In(c.loc)
	return t.Second() == 0 && t.Nanosecond() == 0 &&
		c.month&(1<<uint(t.Month())) != 0 && c.dom&(1<<uint(t.Day())) != 0 &&
		c.dow&(1<<uint(t.Weekday())) != 0 && c.hour&(1<<uint(t.Hour())) != 0 &&
		c.minute&(1<<uint(t.Minute())) != 0
}

// FuzzParseConfig checks that any JSON or YAML input yields entries or an
// error, never a panic, and that loaded entries are usable.
func FuzzParseConfig(f *testing.F) {
	for _, name := range []string{"schedule.json", "schedule.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, name == "schedule.yaml")
	}
	f.Add([]byte(`{"a": {"task": "t", "schedule": {"crontab": {"minute": [0, 59], "day_of_week": "sun"}}, "relative": false}}`), false)
	f.Add([]byte("a: {task: t, schedule: 1.5, relative: true, options: {priority: 9, headers: {a: [1]}}}"), true)
	f.Add([]byte("x: &x [1]\ny: *x\n"), true)
	now := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte, isYAML bool) {
		parse := ParseConfigJSON
		if isYAML {
			parse = ParseConfigYAML
		}
		entries, err := parse(data, nil)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Name == "" || e.Task == "" || e.Schedule == nil {
				t.Fatalf("incomplete entry %+v", e)
			}
			e.LastRunAt = now
			if due, next := e.IsDue(now); due || next <= 0 {
				t.Fatalf("%s: due right after running: %v, %v", e.Name, due, next)
			}
		}
	})
}

// FuzzDecodeState checks that any state file decodes or fails cleanly, and
// that what decodes encodes back to the same state.
func FuzzDecodeState(f *testing.F) {
	f.Add([]byte(`{"version":1,"timezone":"UTC","entries":{"a":{"last_run_at":"2024-05-10T11:00:00Z","total_run_count":2}}}`))
	f.Add([]byte(`{"version":1,"entries":{"":{"last_run_at":"0001-01-01T00:00:00Z"}}}`))
	f.Add([]byte(`{"version":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var st State
		if err := DecodeState(data, &st); err != nil {
			return
		}
		out, err := AppendState(nil, &st)
		if err != nil {
			return // a decoded time outside what RFC 3339 can encode
		}
		var st2 State
		if err := DecodeState(out, &st2); err != nil {
			t.Fatalf("re-decoding %s: %v", out, err)
		}
		out2, err := AppendState(nil, &st2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
	})
}
