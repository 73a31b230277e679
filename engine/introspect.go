package engine

import (
	"slices"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/codec"
)

// TaskInfo describes a task a worker holds, as Celery's inspect commands
// report requests (active, reserved, scheduled). It owns its memory.
type TaskInfo struct {
	ID, Name                string
	Args, Kwargs            json.RawMessage
	ArgsRepr, KwargsRepr    string
	Hostname                string
	Exchange, RoutingKey    string
	Priority                int
	Redelivered             bool
	Acknowledged            bool
	ETA                     time.Time // scheduled: when it is due
	TimeStart               time.Time // active: when it started (zero unless timed, see Task.Started)
	RootID, ParentID, Group string
}

func (w *Worker) infoOf(m *codec.Message) TaskInfo {
	return TaskInfo{
		ID: string(m.ID), Name: string(m.Task), ArgsRepr: string(m.ArgsRepr), KwargsRepr: string(m.KwargsRepr),
		Hostname: w.app.cfg.Hostname, Exchange: string(m.Exchange), RoutingKey: string(m.RoutingKey),
		Priority: int(m.Priority), Redelivered: m.Redelivered, ETA: m.ETA,
		RootID: string(m.RootID), ParentID: string(m.ParentID), Group: string(m.Group),
	}
}

// withArgs fills info's Args and Kwargs from m's body: Celery's inspect
// reserved and scheduled report them decoded. A body that does not decode
// leaves them empty (the reprs are reported instead). The caller holds the
// lock of the queue m waits in, so no executor reads m meanwhile.
func withArgs(info TaskInfo, m *codec.Message) TaskInfo {
	body, err := m.BodyJSON(0)
	if err != nil {
		return info
	}
	args, kwargs, _, err := codec.SplitJSONBody(body)
	if err != nil {
		return info
	}
	info.Args = append(json.RawMessage(nil), args...)
	info.Kwargs = append(json.RawMessage(nil), kwargs...)
	return info
}

// Active returns the tasks running now (Celery's inspect active).
func (w *Worker) Active() []TaskInfo {
	var out []TaskInfo
	w.slots.Range(func(k, _ any) bool {
		st := k.(*slotState)
		if st.visit() != 0 {
			t := &st.task
			info := w.infoOf(t.msg)
			info.Args = append(json.RawMessage(nil), t.args...)
			info.Kwargs = append(json.RawMessage(nil), t.kwargs...)
			info.TimeStart = t.started
			info.Acknowledged = !st.lateAck
			out = append(out, info)
		}
		st.leave()
		return true
	})
	return out
}

// Reserved returns the tasks fetched and waiting for a pool slot (Celery's
// inspect reserved).
func (w *Worker) Reserved() []TaskInfo {
	var out []TaskInfo
	if !w.running.Load() {
		return nil
	}
	w.exec.Each(func(j job) { out = append(out, withArgs(w.infoOf(j.m), j.m)) })
	return out
}

// Scheduled returns the tasks held for their ETA or a rate-limit token
// (Celery's inspect scheduled).
func (w *Worker) Scheduled() []TaskInfo {
	if !w.running.Load() {
		return nil
	}
	w.eta.mu.Lock()
	defer w.eta.mu.Unlock()
	out := make([]TaskInfo, 0, len(w.eta.items.list))
	for _, it := range w.eta.items.list {
		info := withArgs(w.infoOf(it.j.m), it.j.m)
		info.ETA = it.due
		out = append(out, info)
	}
	return out
}

// PoolSize returns the number of pool executors.
func (w *Worker) PoolSize() int {
	if !w.running.Load() {
		return w.cfg.Concurrency
	}
	return w.exec.Size()
}

// ResizePool sets the number of pool executors (pool_grow, pool_shrink,
// autoscale). The prefetch window is not changed.
func (w *Worker) ResizePool(n int) error {
	if !w.running.Load() {
		return ErrClosed
	}
	return w.exec.Resize(n)
}

// Queues returns the queues the worker consumes now.
func (w *Worker) Queues() []string {
	w.queuesMu.Lock()
	defer w.queuesMu.Unlock()
	return slices.Clone(w.queues)
}

// Prefetch returns the prefetch window (concurrency x multiplier).
func (w *Worker) Prefetch() int { return w.prefetch }

// App returns the worker's app.
func (w *Worker) App() *App { return w.app }
