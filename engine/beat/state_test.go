package beat

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newEntries(t *testing.T, loc *time.Location) []*Entry {
	t.Helper()
	iv, err := NewInterval(10 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return []*Entry{
		{Name: "every-10s", Task: "tasks.add", Schedule: iv},
		{Name: "quarter-hours", Task: "tasks.report", Schedule: mustCron(t, "*/15 * * * *", loc)},
	}
}

func TestStateFileRoundTrip(t *testing.T) {
	t.Parallel()
	berlin := mustLoc(t, "Europe/Berlin")
	entries := newEntries(t, berlin)
	entries[0].LastRunAt = time.Date(2024, 5, 10, 10, 0, 0, 123456789, berlin)
	entries[0].TotalRunCount = 41
	entries[1].LastRunAt = time.Date(2024, 5, 10, 9, 45, 0, 5, time.UTC)
	entries[1].TotalRunCount = 7

	path := filepath.Join(t.TempDir(), "celerity-beat-state.json")
	if err := WriteStateFile(path, Snapshot(entries, berlin)); err != nil {
		t.Fatal(err)
	}
	// Overwrite once more: the rename replaces the old file.
	if err := WriteStateFile(path, Snapshot(entries, berlin)); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".*tmp*"))
	if len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
	st, err := ReadStateFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Timezone != "Europe/Berlin" || len(st.Entries) != 2 {
		t.Fatalf("state %+v", st)
	}
	fresh := newEntries(t, berlin)
	now := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
	if reset := st.Restore(fresh, berlin, now); reset {
		t.Error("reset with an unchanged timezone")
	}
	for i, e := range fresh {
		if !e.LastRunAt.Equal(entries[i].LastRunAt) || e.TotalRunCount != entries[i].TotalRunCount {
			t.Errorf("%s: restored %s/%d, want %s/%d", e.Name, e.LastRunAt, e.TotalRunCount, entries[i].LastRunAt, entries[i].TotalRunCount)
		}
	}
}

// TestRestoreCatchUp is the catch-up policy: a run missed while down fires
// once at start; a new entry waits for its first scheduled time.
func TestRestoreCatchUp(t *testing.T) {
	t.Parallel()
	entries := newEntries(t, time.UTC)
	down := time.Date(2024, 5, 10, 10, 0, 30, 0, time.UTC)
	st := &State{Timezone: "UTC", Entries: map[string]EntryState{
		"quarter-hours": {LastRunAt: time.Date(2024, 5, 10, 10, 0, 0, 0, time.UTC), TotalRunCount: 3},
		"removed":       {LastRunAt: down, TotalRunCount: 9},
	}}
	// Beat restarts 2h later: 8 quarter hours were missed.
	now := down.Add(2 * time.Hour)
	st.Restore(entries, time.UTC, now)

	cron, iv := entries[1], entries[0]
	sent := 0
	for clock := now; clock.Before(now.Add(20 * time.Minute)); clock = clock.Add(time.Second) {
		if due, _ := cron.IsDue(clock); due {
			sent++
			cron.Advance(clock)
		}
	}
	// Once at start (catch-up), then 12:15 only: not once per missed run.
	if sent != 2 || cron.TotalRunCount != 5 {
		t.Errorf("crontab sent %d times (count %d), want 2 (count 5)", sent, cron.TotalRunCount)
	}
	// The new interval entry starts its period at now.
	if iv.LastRunAt != now || iv.TotalRunCount != 0 {
		t.Errorf("new entry restored as %s/%d", iv.LastRunAt, iv.TotalRunCount)
	}
	if due, next := iv.IsDue(now); due || next != 10*time.Second {
		t.Errorf("new interval entry IsDue = %v, %v at start", due, next)
	}
}

func TestRestoreResetsOnTimezoneChange(t *testing.T) {
	t.Parallel()
	entries := newEntries(t, time.UTC)
	st := &State{Timezone: "Europe/Berlin", Entries: map[string]EntryState{
		"quarter-hours": {LastRunAt: time.Date(2024, 5, 10, 10, 0, 0, 0, time.UTC), TotalRunCount: 3},
	}}
	now := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
	if reset := st.Restore(entries, time.UTC, now); !reset {
		t.Error("no reset after a timezone change")
	}
	for _, e := range entries {
		if e.LastRunAt != now || e.TotalRunCount != 0 {
			t.Errorf("%s: %s/%d after reset", e.Name, e.LastRunAt, e.TotalRunCount)
		}
	}
	// No state at all is not a reset.
	if reset := (*State)(nil).Restore(entries, nil, now); reset {
		t.Error("nil state reported as reset")
	}
}

func TestReadStateFileMissing(t *testing.T) {
	t.Parallel()
	_, err := ReadStateFile(filepath.Join(t.TempDir(), "none.json"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("got %v, want fs.ErrNotExist", err)
	}
}

func TestWriteStateFileFailsCleanly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// The target is a directory: the rename fails and the temporary file
	// must not stay behind.
	target := filepath.Join(dir, "state")
	if err := os.Mkdir(target, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(target, "x"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteStateFile(target, &State{Timezone: "UTC"}); err == nil {
		t.Fatal("writing over a directory succeeded")
	}
	names, _ := os.ReadDir(dir)
	if len(names) != 1 {
		t.Errorf("left behind: %v", names)
	}
	if err := WriteStateFile(filepath.Join(dir, "no", "such", "dir"), &State{}); err == nil {
		t.Error("writing into a missing directory succeeded")
	}
}

func TestDecodeStateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, data, msg string }{
		{"empty", "", "not a JSON object"},
		{"array", "[]", "not a JSON object"},
		{"syntax", `{"version": 1,`, "invalid schedule state"},
		{"no version", `{"timezone": "UTC", "entries": {}}`, "missing version"},
		{"future version", `{"version": 2, "entries": {}}`, "version 2, want 1"},
		{"bad time", `{"version": 1, "entries": {"a": {"last_run_at": "yesterday"}}}`, "invalid schedule state"},
		{"negative count", `{"version": 1, "entries": {"a": {"last_run_at": "2024-05-10T10:00:00Z", "total_run_count": -1}}}`, "negative total_run_count"},
		{"trailing", `{"version": 1} x`, "invalid schedule state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var st State
			err := DecodeState([]byte(tc.data), &st)
			if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v; want ErrState containing %q", err, tc.msg)
			}
		})
	}
}

func TestAppendStateAppends(t *testing.T) {
	t.Parallel()
	st := &State{Timezone: "UTC", Entries: map[string]EntryState{"a": {LastRunAt: time.Date(2024, 5, 10, 12, 0, 0, 0, time.FixedZone("X", 3600)), TotalRunCount: 2}}}
	out, err := AppendState([]byte("prefix:"), st)
	if err != nil {
		t.Fatal(err)
	}
	want := `prefix:{"version":1,"timezone":"UTC","entries":{"a":{"last_run_at":"2024-05-10T11:00:00Z","total_run_count":2}}}` + "\n"
	if string(out) != want {
		t.Errorf("got %s\nwant %s", out, want)
	}
}
