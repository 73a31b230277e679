package beat_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/celerity-go/celerity/engine/beat"
)

func ExampleParseCrontab() {
	// Celery: crontab(minute=0, hour='9-17/4', day_of_week='mon-fri')
	c, err := beat.ParseCrontab("0", "9-17/4", "mon-fri", "*", "*")
	if err != nil {
		panic(err)
	}
	t := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC) // a Friday
	for range 4 {
		t = c.Next(t)
		fmt.Println(t.Format("Mon 2006-01-02 15:04"))
	}
	_, err = beat.ParseCrontab("*", "*", "7", "*", "*")
	fmt.Println(err)
	// Output:
	// Fri 2024-05-10 13:00
	// Fri 2024-05-10 17:00
	// Mon 2024-05-13 09:00
	// Mon 2024-05-13 13:00
	// beat: invalid crontab: day_of_week "7": 7 is out of range 0-6 (Sunday is 0; Celery rejects 7 too)
}

func ExampleCrontab_Next_dst() {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	c, _ := beat.ParseCrontabString("30 2 * * *")
	c = c.In(berlin)
	// 02:30 does not exist on 2024-03-31 (02:00 CET -> 03:00 CEST): it runs
	// at the jump. It exists twice on 2024-10-27 (03:00 CEST -> 02:00 CET):
	// it runs at the first.
	t := time.Date(2024, 3, 30, 12, 0, 0, 0, berlin)
	for range 2 {
		t = c.Next(t)
		fmt.Println(t)
	}
	t = time.Date(2024, 10, 26, 12, 0, 0, 0, berlin)
	for range 2 {
		t = c.Next(t)
		fmt.Println(t)
	}
	// Output:
	// 2024-03-31 03:00:00 +0200 CEST
	// 2024-04-01 02:30:00 +0200 CEST
	// 2024-10-27 02:30:00 +0200 CEST
	// 2024-10-28 02:30:00 +0100 CET
}

func ExampleInterval_IsDue() {
	s, _ := beat.NewInterval(10 * time.Second)
	last := time.Date(2024, 5, 10, 12, 0, 0, 0, time.UTC)
	fmt.Println(s.IsDue(last, last.Add(3*time.Second)))
	fmt.Println(s.IsDue(last, last.Add(12*time.Second)))
	// Output:
	// false 7s
	// true 10s
}

func ExampleParseConfigJSON() {
	loc, _ := beat.Location("Europe/Berlin", true)
	entries, err := beat.ParseConfigJSON([]byte(`{
		"add": {"task": "tasks.add", "schedule": 30, "args": [2, 2], "options": {"queue": "math", "expires": 25}},
		"report": {"task": "tasks.report", "schedule": {"crontab": {"minute": 0, "hour": 7, "day_of_week": "mon-fri"}}}
	}`), loc)
	if err != nil {
		panic(err)
	}
	for _, e := range entries {
		fmt.Printf("%s: %s %v args=%s queue=%q expires=%v\n", e.Name, e.Task, e.Schedule, e.Args, e.Options.Queue, e.Options.Expires)
	}
	// Output:
	// add: tasks.add every 30s args=[2, 2] queue="math" expires=25s
	// report: tasks.report 0 7 * * mon-fri args= queue="" expires=0s
}

// A beat loop restores state, sends what is due, records it and saves.
func ExampleState_Restore() {
	dir, _ := os.MkdirTemp("", "beat-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "celerity-beat-state.json")

	c, _ := beat.ParseCrontabString("*/15 * * * *")
	entries := []*beat.Entry{{Name: "report", Task: "tasks.report", Schedule: c}}

	// First start at 10:05: no state yet, so the entry waits for 10:15.
	st, err := beat.ReadStateFile(path)
	fmt.Println("state:", st, errors.Is(err, fs.ErrNotExist))
	start := time.Date(2024, 5, 10, 10, 5, 0, 0, time.UTC)
	st.Restore(entries, time.UTC, start)
	fmt.Println(entries[0].IsDue(start))

	// Sent at 10:15, saved, then beat is down until 11:20.
	sent := time.Date(2024, 5, 10, 10, 15, 0, 0, time.UTC)
	entries[0].Advance(sent)
	if err := beat.WriteStateFile(path, beat.Snapshot(entries, time.UTC)); err != nil {
		panic(err)
	}

	// Restart: four runs were missed; the entry is due once, now.
	st, _ = beat.ReadStateFile(path)
	restarted := []*beat.Entry{{Name: "report", Task: "tasks.report", Schedule: c}}
	st.Restore(restarted, time.UTC, start)
	now := time.Date(2024, 5, 10, 11, 20, 0, 0, time.UTC)
	due, next := restarted[0].IsDue(now)
	fmt.Println(due, next, restarted[0].TotalRunCount)
	restarted[0].Advance(now)
	fmt.Println(restarted[0].IsDue(now.Add(time.Minute)))
	// Output:
	// state: <nil> true
	// false 10m0s
	// true 10m0s 1
	// false 9m0s
}
