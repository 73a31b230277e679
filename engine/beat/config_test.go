package beat

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func checkSampleSchedule(t *testing.T, entries []*Entry, loc *time.Location) {
	t.Helper()
	var names []string
	byName := map[string]*Entry{}
	for _, e := range entries {
		names = append(names, e.Name)
		byName[e.Name] = e
	}
	if got := strings.Join(names, ","); got != "add-every-10s,cleanup,first-monday,hourly-relative,report-weekdays" {
		t.Fatalf("entries %s (want sorted by name)", got)
	}

	add := byName["add-every-10s"]
	if iv, ok := add.Schedule.(*Interval); !ok || iv.Every() != 10*time.Second || iv.IsRelative() {
		t.Errorf("add schedule %v", add.Schedule)
	}
	if add.Task != "tasks.add" || compact(add.Args) != "[2,2]" || add.Kwargs != nil || add.Options.Queue != "" || add.Options.HasPriority || add.Options.Headers != nil {
		t.Errorf("add entry %+v", add)
	}

	rep := byName["report-weekdays"]
	c, ok := rep.Schedule.(*Crontab)
	if !ok || c.String() != "0 9-17/4 * * mon-fri" || c.Location() != loc {
		t.Errorf("report schedule %v", rep.Schedule)
	}
	if compact(rep.Kwargs) != `{"full":true}` {
		t.Errorf("report kwargs %s", rep.Kwargs)
	}
	o := rep.Options
	if o.Queue != "reports" || o.RoutingKey != "reports.daily" || o.Exchange != "reports" ||
		!o.HasPriority || o.Priority != 5 || o.Expires != 300*time.Second ||
		o.TimeLimit != time.Minute || o.SoftTimeLimit != 50500*time.Millisecond ||
		o.Serializer != "json" || o.Compression != "zlib" || compact(o.Headers) != `{"x-source":"beat"}` {
		t.Errorf("report options %+v (headers %s)", o, o.Headers)
	}

	if c, ok := byName["cleanup"].Schedule.(*Crontab); !ok || c.String() != "30 4 * * *" {
		t.Errorf("cleanup schedule %v", byName["cleanup"].Schedule)
	}
	if iv, ok := byName["hourly-relative"].Schedule.(*Interval); !ok || iv.Every() != time.Hour || !iv.IsRelative() {
		t.Errorf("hourly schedule %v", byName["hourly-relative"].Schedule)
	}
	if c, ok := byName["first-monday"].Schedule.(*Crontab); !ok || c.String() != "0,30 6 1-7 * mon" {
		t.Errorf("first-monday schedule %v", byName["first-monday"].Schedule)
	}
	for _, e := range entries {
		if !e.LastRunAt.IsZero() || e.TotalRunCount != 0 {
			t.Errorf("%s: loaded with run state %v %d", e.Name, e.LastRunAt, e.TotalRunCount)
		}
	}
}

// compact strips the spaces a YAML-to-JSON conversion may add.
func compact(b []byte) string { return strings.ReplaceAll(string(b), " ", "") }

func TestLoadConfigFile(t *testing.T) {
	t.Parallel()
	berlin := mustLoc(t, "Europe/Berlin")
	for _, name := range []string{"schedule.json", "schedule.yaml"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			entries, err := LoadConfigFile(filepath.Join("testdata", name), berlin)
			if err != nil {
				t.Fatal(err)
			}
			checkSampleSchedule(t, entries, berlin)
		})
	}
}

func TestLoadConfigFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	txt := filepath.Join(dir, "schedule.txt")
	if err := os.WriteFile(txt, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfigFile(txt, nil); !errors.Is(err, ErrConfig) {
		t.Errorf("unknown extension: %v", err)
	}
	if _, err := LoadConfigFile(filepath.Join(dir, "missing.json"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, make([]byte, MaxConfigSize+10), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfigFile(big, nil); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized file: %v", err)
	}
	bad := filepath.Join(dir, "bad.yml")
	if err := os.WriteFile(bad, []byte("x:\n  task: t\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfigFile(bad, nil); !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad file: %v (want the path in the error)", err)
	}
}

func TestParseConfigErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, json string
		also       error // besides ErrConfig
		msg        string
	}{
		{"not an object", `[1]`, nil, "must be a JSON object"},
		{"null", `null`, nil, "must be a JSON object"},
		{"syntax", `{"a": `, nil, "must be a JSON object"},
		{"entry not an object", `{"a": 1}`, nil, `entry "a": want an object`},
		{"empty name", `{"": {"task": "t", "schedule": 1}}`, nil, "entry name is empty"},
		{"missing task", `{"a": {"schedule": 1}}`, nil, `entry "a": missing task`},
		{"empty task", `{"a": {"task": "", "schedule": 1}}`, nil, "task: empty"},
		{"task not a string", `{"a": {"task": 5, "schedule": 1}}`, nil, "task: want a string"},
		{"missing schedule", `{"a": {"task": "t"}}`, nil, "missing schedule"},
		{"unknown key", `{"a": {"task": "t", "schedule": 1, "shedule": 2}}`, nil, `unknown key "shedule"`},
		{"zero interval", `{"a": {"task": "t", "schedule": 0}}`, ErrInterval, "must be positive"},
		{"negative interval", `{"a": {"task": "t", "schedule": -1}}`, ErrInterval, "must be positive"},
		{"huge interval", `{"a": {"task": "t", "schedule": 1e300}}`, ErrInterval, "292 years"},
		{"tiny interval", `{"a": {"task": "t", "schedule": 1e-12}}`, ErrInterval, "rounds to zero"},
		{"bad duration", `{"a": {"task": "t", "schedule": "soon"}}`, nil, `duration such as "90s"`},
		{"negative duration", `{"a": {"task": "t", "schedule": "-5s"}}`, ErrInterval, "must be positive"},
		{"schedule bool", `{"a": {"task": "t", "schedule": true}}`, ErrInterval, "want a number"},
		{"schedule null", `{"a": {"task": "t", "schedule": null}}`, ErrInterval, "want a number"},
		{"solar", `{"a": {"task": "t", "schedule": {"solar": {"event": "sunset"}}}}`, nil, "solar schedules are not supported"},
		{"unknown schedule", `{"a": {"task": "t", "schedule": {"every": 5}}}`, nil, `{"crontab": ...}`},
		{"relative crontab", `{"a": {"task": "t", "schedule": {"crontab": "* * * * *"}, "relative": true}}`, nil, "relative applies only to interval"},
		{"relative not bool", `{"a": {"task": "t", "schedule": 1, "relative": "yes"}}`, nil, "relative:"},
		{"bad crontab field", `{"a": {"task": "t", "schedule": {"crontab": {"day_of_week": "7"}}}}`, ErrCrontab, `day_of_week "7"`},
		{"bad crontab string", `{"a": {"task": "t", "schedule": {"crontab": "* * *"}}}`, ErrCrontab, "want 5 fields"},
		{"never matches", `{"a": {"task": "t", "schedule": {"crontab": {"day_of_month": 30, "month_of_year": 2}}}}`, ErrNeverMatches, "names no real date"},
		{"unknown crontab field", `{"a": {"task": "t", "schedule": {"crontab": {"minutes": "5"}}}}`, nil, `unknown field "minutes"`},
		{"crontab not object", `{"a": {"task": "t", "schedule": {"crontab": 5}}}`, nil, "want an object of fields"},
		{"crontab empty list", `{"a": {"task": "t", "schedule": {"crontab": {"minute": []}}}}`, nil, "empty list"},
		{"crontab list of strings", `{"a": {"task": "t", "schedule": {"crontab": {"minute": ["5"]}}}}`, nil, "list item 0: want a number"},
		{"crontab float", `{"a": {"task": "t", "schedule": {"crontab": {"minute": 1.5}}}}`, nil, "want an integer"},
		{"crontab list out of range", `{"a": {"task": "t", "schedule": {"crontab": {"hour": [1, 24]}}}}`, ErrCrontab, `hour "1,24"`},
		{"args not array", `{"a": {"task": "t", "schedule": 1, "args": {"x": 1}}}`, nil, "args: want a JSON array"},
		{"kwargs not object", `{"a": {"task": "t", "schedule": 1, "kwargs": [1]}}`, nil, "kwargs: want a JSON object"},
		{"options not object", `{"a": {"task": "t", "schedule": 1, "options": "q"}}`, nil, "options: not a JSON object"},
		{"unknown option", `{"a": {"task": "t", "schedule": 1, "options": {"queues": "q"}}}`, nil, `unknown option "queues"`},
		{"priority range", `{"a": {"task": "t", "schedule": 1, "options": {"priority": 256}}}`, nil, "priority: 256 is out of range 0-255"},
		{"priority negative", `{"a": {"task": "t", "schedule": 1, "options": {"priority": -1}}}`, nil, "out of range 0-255"},
		{"expires zero", `{"a": {"task": "t", "schedule": 1, "options": {"expires": 0}}}`, nil, "expires: 0 seconds must be positive"},
		{"expires string", `{"a": {"task": "t", "schedule": 1, "options": {"expires": "2024-01-01"}}}`, nil, "expires: want a number"},
		{"headers not object", `{"a": {"task": "t", "schedule": 1, "options": {"headers": [1]}}}`, nil, "headers: want a JSON object"},
		{"queue not string", `{"a": {"task": "t", "schedule": 1, "options": {"queue": 1}}}`, nil, "queue: want a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			entries, err := ParseConfigJSON([]byte(tc.json), nil)
			if !errors.Is(err, ErrConfig) || tc.also != nil && !errors.Is(err, tc.also) {
				t.Fatalf("got %v, %v; want ErrConfig and %v", entries, err, tc.also)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
		})
	}
}

func TestParseConfigNullArgs(t *testing.T) {
	t.Parallel()
	entries, err := ParseConfigJSON([]byte(`{"a": {"task": "t", "schedule": 1, "args": null, "kwargs": null, "options": {"headers": null}}}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e := entries[0]; e.Args != nil || e.Kwargs != nil || e.Options.Headers != nil {
		t.Errorf("null must mean unset: %+v", e)
	}
}

func TestParseConfigOwnsItsBytes(t *testing.T) {
	t.Parallel()
	src := []byte(`{"a": {"task": "t", "schedule": 1, "args": [1, 2]}}`)
	entries, err := ParseConfigJSON(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range src {
		src[i] = ' '
	}
	if got := string(entries[0].Args); got != "[1, 2]" {
		t.Errorf("Args aliases the input: %q", got)
	}
}

func TestParseConfigYAMLErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, yaml, msg string }{
		{"unquoted star", "a:\n  task: t\n  schedule:\n    crontab:\n      minute: */15\n", `quote crontab fields that start with "*"`},
		{"alias bomb", "x: &x [1, 1]\ny: &y [*x, *x]\nz: [*y, *y]\n", "YAML aliases"},
		{"syntax", "a: [1, 2\n", "YAML"},
		{"a list", "- 1\n- 2\n", "must be a JSON object"},
		{"too large", strings.Repeat("#", MaxConfigSize+1), "limit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseConfigYAML([]byte(tc.yaml), nil)
			if !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v; want ErrConfig containing %q", err, tc.msg)
			}
		})
	}
}
