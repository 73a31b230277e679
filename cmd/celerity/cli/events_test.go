package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/engine/events"
)

// TestDumpLineAsCelery checks lines against what Celery's Dumper prints
// for the same events (captured from `celery events --dump`).
func TestDumpLineAsCelery(t *testing.T) {
	t.Parallel()
	names := newNameCache(2)
	ts := 1795496100.046255
	for _, tc := range []struct {
		ev   events.Event
		want string
	}{
		{events.Event{"type": "worker-heartbeat", "hostname": "w@h", "timestamp": ts, "utcoffset": 0.0, "pid": 5663.0,
			"clock": 5.0, "freq": 2.0, "active": 0.0, "processed": 1.0, "loadavg": []any{2.26, 3.63, 3.94},
			"sw_ident": "celerity", "sw_ver": "devel", "sw_sys": "Linux"},
			"w@h [2026-11-24 04:55:00.046255] heartbeat: active=0, clock=5, freq=2, loadavg=[2.26, 3.63, 3.94], pid=5663, processed=1, sw_ident=celerity, sw_sys=Linux, sw_ver=devel, utcoffset=0"},
		{events.Event{"type": "task-received", "hostname": "w@h", "timestamp": ts, "uuid": "id1", "name": "ev.add",
			"args": "(2, 3)", "kwargs": "{}", "eta": nil, "retries": 0.0},
			"w@h [2026-11-24 04:55:00.046255] task received: ev.add(id1) args=(2, 3) kwargs={} eta=None, retries=0"},
		{events.Event{"type": "task-succeeded", "hostname": "w@h", "timestamp": ts, "uuid": "id1", "result": "5", "runtime": 6.6249e-05},
			"w@h [2026-11-24 04:55:00.046255] task succeeded: ev.add(id1) args=(2, 3) kwargs={} result=5, runtime=6.6249e-05"},
		{events.Event{"type": "task-failed", "hostname": "w@h", "timestamp": 1795496100.0, "uuid": "zz", "exception": "KeyError('x')"},
			"w@h [2026-11-24 04:55:00] task failed: exception=KeyError('x')"},
		{events.Event{"type": "worker-offline", "hostname": "w@h", "timestamp": ts, "terminated": true},
			"w@h [2026-11-24 04:55:00.046255] shutdown: terminated=True"},
	} {
		if got := dumpLine(tc.ev, names); got != tc.want {
			t.Errorf("dumpLine:\n got %q\nwant %q", got, tc.want)
		}
	}
	names.put("a", "A")
	names.put("b", "B")
	names.put("c", "C")
	if _, ok := names.m["id1"]; ok || len(names.m) != 2 {
		t.Errorf("name cache not bounded: %v", names.m)
	}
}

func TestLiveViewRender(t *testing.T) {
	t.Parallel()
	var s events.State
	now := float64(time.Now().UnixNano()) / 1e9
	s.Apply(events.Event{"type": "worker-heartbeat", "hostname": "w1@h", "timestamp": now, "freq": 2.0,
		"active": 1.0, "processed": 10.0, "sw_ident": "celerity", "sw_ver": "devel", "loadavg": []any{0.5, 0.2, 0.1}})
	s.Apply(events.Event{"type": "task-received", "hostname": "w1@h", "timestamp": now, "uuid": "u1", "name": "t.add"})
	s.Apply(events.Event{"type": "task-failed", "hostname": "w1@h", "timestamp": now, "uuid": "u1", "exception": "ValueError('x')"})
	var b bytes.Buffer
	renderView(&b, s.Snapshot(), events.Snapshot{}, time.Second, false)
	out := b.String()
	for _, want := range []string{"w1@h", "ONLINE", "celerity devel", "0.50 0.20 0.10", "t.add", "task-failed=1.0",
		"t.add[u1] ValueError('x')"} {
		if !strings.Contains(out, want) {
			t.Errorf("live view lacks %q:\n%s", want, out)
		}
	}
}
