package events

import (
	"sort"
	"sync"
	"time"
)

// State is what a monitor knows from the events it received, like
// celery.events.state.State (used by `celery events` and Flower): the
// workers and whether they are alive, recent tasks and their states,
// counts per event type and task name, and recent failures. It keeps at
// most MaxTasks tasks and MaxFailures failures. Feed it with Apply; it is
// safe for concurrent use.
type State struct {
	// MaxTasks bounds the tasks remembered (default 10000): the oldest
	// is forgotten first.
	MaxTasks int
	// MaxFailures bounds the failures remembered (default 20).
	MaxFailures int

	mu       sync.Mutex
	workers  map[string]*WorkerState
	tasks    map[string]*TaskState
	order    []string // task ids, oldest first (a ring once full)
	head     int
	byType   map[string]int64
	byName   map[string]*NameCounts
	failures []TaskState
	events   int64
}

// WorkerState is one worker as its events describe it.
type WorkerState struct {
	Hostname       string
	SWIdent, SWVer string
	SWSys          string
	Freq           float64 // heartbeat interval in seconds
	Active         int
	Processed      int64
	LoadAvg        []float64
	LastHeartbeat  time.Time
	Offline        bool
	PID            int
}

// Alive reports whether the worker is considered up at now: not gone
// offline and heard from within twice its heartbeat interval (Celery's
// 200% expire window).
func (w *WorkerState) Alive(now time.Time) bool {
	if w.Offline || w.LastHeartbeat.IsZero() {
		return false
	}
	freq := w.Freq
	if freq <= 0 {
		freq = 2
	}
	return now.Before(w.LastHeartbeat.Add(time.Duration(2 * freq * float64(time.Second))))
}

// TaskState is one task as its events describe it.
type TaskState struct {
	UUID, Name, State, Worker string
	Args, Kwargs              string
	Result, Exception         string
	Traceback                 string
	Received, Started, Done   time.Time
	Runtime                   float64
	Retries                   int
}

// NameCounts counts outcomes for one task name.
type NameCounts struct {
	Received, Succeeded, Failed, Retried, Revoked int64
	// Runtime is the total runtime of the successes, in seconds.
	Runtime float64
}

func (s *State) init() {
	if s.workers == nil {
		s.workers = map[string]*WorkerState{}
		s.tasks = map[string]*TaskState{}
		s.byType = map[string]int64{}
		s.byName = map[string]*NameCounts{}
		if s.MaxTasks <= 0 {
			s.MaxTasks = 10000
		}
		if s.MaxFailures <= 0 {
			s.MaxFailures = 20
		}
	}
}

// Apply updates the state with one event.
func (s *State) Apply(e Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.events++
	typ := e.Type()
	s.byType[typ]++
	host := e.Hostname()
	ts := e.Timestamp()
	switch typ {
	case "worker-online", "worker-heartbeat", "worker-offline":
		w := s.worker(host)
		w.SWIdent, w.SWVer, w.SWSys = e.str("sw_ident"), e.str("sw_ver"), e.str("sw_sys")
		w.Freq = e.num("freq")
		w.Active = int(e.num("active"))
		w.Processed = int64(e.num("processed"))
		w.PID = int(e.num("pid"))
		w.LoadAvg = w.LoadAvg[:0]
		if la, ok := e["loadavg"].([]any); ok {
			for _, v := range la {
				f, _ := v.(float64)
				w.LoadAvg = append(w.LoadAvg, f)
			}
		}
		w.Offline = typ == "worker-offline"
		if !w.Offline {
			w.LastHeartbeat = ts
		}
		return
	}
	if host != "" && len(typ) > 5 && typ[:5] == "task-" {
		if w := s.worker(host); !w.Offline && w.LastHeartbeat.IsZero() {
			w.LastHeartbeat = ts // a worker heard of only through task events
		}
	}
	id := e.UUID()
	if id == "" {
		return
	}
	t := s.task(id)
	if host != "" && typ != "task-sent" {
		t.Worker = host
	}
	if n := e.str("name"); n != "" {
		t.Name = n
	}
	var nc *NameCounts
	if t.Name != "" {
		nc = s.byName[t.Name]
		if nc == nil {
			nc = &NameCounts{}
			s.byName[t.Name] = nc
		}
	} else {
		nc = &NameCounts{} // unknown name: counted by type only
	}
	switch typ {
	case "task-sent":
		t.State = "PENDING"
		t.Args, t.Kwargs = e.str("args"), e.str("kwargs")
	case "task-received":
		t.State, t.Received = "RECEIVED", ts
		t.Args, t.Kwargs = e.str("args"), e.str("kwargs")
		t.Retries = int(e.num("retries"))
		nc.Received++
	case "task-started":
		t.State, t.Started = "STARTED", ts
	case "task-succeeded":
		t.State, t.Done = "SUCCESS", ts
		t.Result, t.Runtime = e.str("result"), e.num("runtime")
		nc.Succeeded++
		nc.Runtime += t.Runtime
	case "task-failed":
		t.State, t.Done = "FAILURE", ts
		t.Exception, t.Traceback = e.str("exception"), e.str("traceback")
		nc.Failed++
		s.failures = append(s.failures, *t)
		if len(s.failures) > s.MaxFailures {
			s.failures = append(s.failures[:0], s.failures[len(s.failures)-s.MaxFailures:]...)
		}
	case "task-retried":
		t.State = "RETRY"
		t.Exception, t.Traceback = e.str("exception"), e.str("traceback")
		nc.Retried++
	case "task-revoked":
		t.State, t.Done = "REVOKED", ts
		nc.Revoked++
	case "task-rejected":
		t.State, t.Done = "REJECTED", ts
	}
}

func (s *State) worker(host string) *WorkerState {
	w := s.workers[host]
	if w == nil {
		w = &WorkerState{Hostname: host}
		s.workers[host] = w
	}
	return w
}

func (s *State) task(id string) *TaskState {
	if t := s.tasks[id]; t != nil {
		return t
	}
	t := &TaskState{UUID: id}
	if len(s.order) < s.MaxTasks {
		s.order = append(s.order, id)
	} else {
		delete(s.tasks, s.order[s.head])
		s.order[s.head] = id
		s.head = (s.head + 1) % len(s.order)
	}
	s.tasks[id] = t
	return t
}

// Snapshot is a copy of a State at one moment.
type Snapshot struct {
	// Events is the number of events applied.
	Events int64
	// Workers, sorted by hostname.
	Workers []WorkerState
	// ByType counts events per type.
	ByType map[string]int64
	// ByName counts outcomes per task name.
	ByName map[string]NameCounts
	// Failures are the most recent failures, oldest first.
	Failures []TaskState
	// Tasks is the number of tasks remembered.
	Tasks int
}

// Snapshot copies the state.
func (s *State) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	out := Snapshot{Events: s.events, ByType: make(map[string]int64, len(s.byType)),
		ByName: make(map[string]NameCounts, len(s.byName)), Tasks: len(s.tasks),
		Failures: append([]TaskState(nil), s.failures...)}
	for _, w := range s.workers {
		c := *w
		c.LoadAvg = append([]float64(nil), w.LoadAvg...)
		out.Workers = append(out.Workers, c)
	}
	sort.Slice(out.Workers, func(i, j int) bool { return out.Workers[i].Hostname < out.Workers[j].Hostname })
	for k, v := range s.byType {
		out.ByType[k] = v
	}
	for k, v := range s.byName {
		out.ByName[k] = *v
	}
	return out
}

// Task returns a copy of the task's state, if it is remembered.
func (s *State) Task(id string) (TaskState, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := s.tasks[id]; t != nil {
		return *t, true
	}
	return TaskState{}, false
}
