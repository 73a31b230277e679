package events_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/celerity-go/celerity/engine/events"
)

func ev(typ, host string, ts time.Time, kv ...any) events.Event {
	e := events.Event{"type": typ, "hostname": host, "timestamp": float64(ts.UnixNano()) / 1e9, "utcoffset": 0.0, "clock": 1.0}
	for i := 0; i+1 < len(kv); i += 2 {
		e[kv[i].(string)] = kv[i+1]
	}
	return e
}

func TestStateWorkersAndTasks(t *testing.T) {
	t.Parallel()
	s := events.State{MaxTasks: 3, MaxFailures: 2}
	now := time.Now()
	s.Apply(ev("worker-online", "w1", now, "freq", 2.0, "sw_ident", "py-celery", "active", 1.0, "processed", 5.0,
		"loadavg", []any{0.5, 0.25, 0.1}))
	s.Apply(ev("worker-heartbeat", "w2", now.Add(-10*time.Second), "freq", 2.0))
	s.Apply(ev("worker-online", "w3", now, "freq", 2.0))
	s.Apply(ev("worker-offline", "w3", now, "freq", 2.0))
	for i := range 4 {
		id := fmt.Sprint("t", i)
		s.Apply(ev("task-received", "w1", now, "uuid", id, "name", "add", "args", "(1, 2)"))
		s.Apply(ev("task-started", "w1", now, "uuid", id))
		if i%2 == 0 {
			s.Apply(ev("task-succeeded", "w1", now, "uuid", id, "result", "3", "runtime", 0.5))
		} else {
			s.Apply(ev("task-failed", "w1", now, "uuid", id, "exception", "ValueError('x')"))
		}
	}
	s.Apply(ev("task-failed", "w1", now, "uuid", "t9", "exception", "NotRegistered('zz')"))
	snap := s.Snapshot()
	if len(snap.Workers) != 3 {
		t.Fatalf("workers: %+v", snap.Workers)
	}
	w1, w2, w3 := snap.Workers[0], snap.Workers[1], snap.Workers[2]
	if !w1.Alive(now) || w1.SWIdent != "py-celery" || w1.Active != 1 || w1.Processed != 5 || len(w1.LoadAvg) != 3 {
		t.Errorf("w1: %+v", w1)
	}
	if w2.Alive(now) {
		t.Error("w2 alive after 10s without heartbeat (freq 2)")
	}
	if w3.Alive(now) || !w3.Offline {
		t.Error("w3 alive after worker-offline")
	}
	if snap.Tasks != 3 {
		t.Errorf("tasks remembered: %d, want 3", snap.Tasks)
	}
	if _, ok := s.Task("t0"); ok {
		t.Error("oldest task not forgotten")
	}
	if ts, ok := s.Task("t2"); !ok || ts.State != "SUCCESS" || ts.Result != "3" || ts.Name != "add" || ts.Worker != "w1" {
		t.Errorf("t2: %+v", ts)
	}
	if c := snap.ByName["add"]; c.Received != 4 || c.Succeeded != 2 || c.Failed != 2 || c.Runtime != 1 {
		t.Errorf("counts: %+v", c)
	}
	if len(snap.Failures) != 2 || snap.Failures[1].Exception != "NotRegistered('zz')" {
		t.Errorf("failures: %+v", snap.Failures)
	}
	if snap.ByType["task-started"] != 4 || snap.Events != 17 {
		t.Errorf("by type: %v, events %d", snap.ByType, snap.Events)
	}
}

func TestEventTimestampIsAbsolute(t *testing.T) {
	t.Parallel()
	base := time.Date(2026, 1, 2, 12, 0, 0, 500000000, time.UTC)
	e := events.Event{"timestamp": float64(base.UnixNano()) / 1e9, "utcoffset": -2.0}
	if got := e.Timestamp(); got.Sub(base).Abs() > time.Microsecond || e.UTCOffset() != -2 {
		t.Errorf("Timestamp() = %v, want %v; UTCOffset() = %d", got, base, e.UTCOffset())
	}
}
