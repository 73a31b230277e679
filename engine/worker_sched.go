package engine

import (
	"container/heap"
	"context"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var pid = os.Getpid()

// etaQueue holds tasks until their ETA (or rate-limit slot): one min-heap
// and one timer for the whole worker, not a goroutine or timer per task.
type etaQueue struct {
	mu       sync.Mutex
	items    etaHeap
	wake     chan struct{}
	prefetch atomic.Int64 // last bound sent to the consumer (+1: 0 is "unset")
}

type etaItem struct {
	due time.Time
	seq uint64 // FIFO among equal due times
	j   job
}

type etaHeap struct {
	list []etaItem
	seq  uint64
}

func (h *etaHeap) Len() int { return len(h.list) }
func (h *etaHeap) Less(i, j int) bool {
	a, b := &h.list[i], &h.list[j]
	if a.due.Equal(b.due) {
		return a.seq < b.seq
	}
	return a.due.Before(b.due)
}
func (h *etaHeap) Swap(i, j int) { h.list[i], h.list[j] = h.list[j], h.list[i] }
func (h *etaHeap) Push(x any)    { h.list = append(h.list, x.(etaItem)) }
func (h *etaHeap) Pop() any {
	n := len(h.list) - 1
	it := h.list[n]
	h.list[n] = etaItem{}
	h.list = h.list[:n]
	return it
}

func newETAQueue() *etaQueue { return &etaQueue{wake: make(chan struct{}, 1)} }

// push schedules j at due.
func (q *etaQueue) push(j job, due time.Time) {
	q.mu.Lock()
	q.items.seq++
	heap.Push(&q.items, etaItem{due: due, seq: q.items.seq, j: j})
	first := q.items.list[0].j.m == j.m
	q.mu.Unlock()
	if first {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// drain removes and returns every held job.
func (q *etaQueue) drain() []job {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]job, len(q.items.list))
	for i, it := range q.items.list {
		out[i] = it.j
	}
	q.items.list = nil
	return out
}

// setPrefetch records want as the consumer's bound; it reports whether it
// changed.
func (q *etaQueue) setPrefetch(want int) bool {
	v := int64(want) + 1
	// Loaded first: it is called for every fetched batch, from the fetch
	// loop and polling executors on other processors, and mostly finds the
	// bound unchanged; a load leaves the cache line shared.
	return q.prefetch.Load() != v && q.prefetch.Swap(v) != v
}

// run releases due jobs to w until ctx ends.
func (q *etaQueue) run(ctx context.Context, w *Worker) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var due []job
	for {
		q.mu.Lock()
		now := time.Now()
		due = due[:0]
		for len(q.items.list) > 0 && !q.items.list[0].due.After(now) {
			due = append(due, heap.Pop(&q.items).(etaItem).j)
		}
		wait := time.Hour
		if len(q.items.list) > 0 {
			wait = q.items.list[0].due.Sub(now)
		}
		q.mu.Unlock()
		if len(due) > 0 {
			w.release(due, now)
			clear(due)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-timer.C:
		}
	}
}

// revokedSet is Celery's LimitedSet of revoked ids: at most revokedMax
// entries, entries older than revokedExpiry dropped when it is full.
type revokedSet struct {
	mu  sync.RWMutex
	ids map[string]time.Time
	n   atomic.Int64 // len(ids), read without the lock on the hot path
}

const (
	revokedMax    = 50000
	revokedExpiry = 10800 * time.Second
)

func (s *revokedSet) has(id []byte) bool {
	// Small enough to inline: the worker asks twice per task (as it
	// receives it and as it starts it), and the set is mostly empty.
	return s.n.Load() != 0 && s.lookup(id)
}

func (s *revokedSet) lookup(id []byte) bool {
	s.mu.RLock()
	_, ok := s.ids[string(id)]
	s.mu.RUnlock()
	return ok
}

func (s *revokedSet) add(ids ...string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = make(map[string]time.Time)
	}
	for _, id := range ids {
		s.ids[id] = now
	}
	if len(s.ids) > revokedMax {
		for id, at := range s.ids {
			if now.Sub(at) > revokedExpiry {
				delete(s.ids, id)
			}
		}
		for id := range s.ids { // still full: drop arbitrary oldest-ish entries
			if len(s.ids) <= revokedMax {
				break
			}
			delete(s.ids, id)
		}
	}
	s.n.Store(int64(len(s.ids)))
}

// list returns the revoked ids.
func (s *revokedSet) list() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.ids))
	for id := range s.ids {
		out = append(out, id)
	}
	return out
}

// terminate cancels the context of any of ids running on w now.
func (w *Worker) terminate(ids ...string) {
	w.slots.Range(func(k, _ any) bool {
		st := k.(*slotState)
		if st.visit() != 0 {
			for _, id := range ids {
				if string(st.running) == id {
					st.cancel(ErrTerminated)
				}
			}
		}
		st.leave()
		return true
	})
}

// Revoked returns the ids this worker treats as revoked.
func (w *Worker) Revoked() []string { return w.app.revoked.list() }
