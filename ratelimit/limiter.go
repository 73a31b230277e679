package ratelimit

import (
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Limiter holds one Bucket per task name: a worker's rate limits.
//
// A Limiter is safe for concurrent use and its zero value is ready (every
// task unlimited). Lookups (Reserve, Allow, Bucket of a known name) read a
// copy-on-write map through an atomic pointer: lock-free, no allocation.
// Writers (Set, and Bucket of a new name) are serialised by a mutex and copy
// the map only when a name is added, which happens about once per task type.
type Limiter struct {
	mu      sync.Mutex // serialises writers of buckets
	buckets atomic.Pointer[map[string]*Bucket]
}

// Set gives task the rate r, with Celery's capacity of one token, effective
// immediately; Unlimited lifts the limit. Changing a rate refills the bucket,
// as Celery does; see Bucket.Set.
func (l *Limiter) Set(task string, r Rate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.lookup(task)
	if b == nil {
		if r.Unlimited() {
			return
		}
		b = l.addLocked(task)
	}
	b.Set(r, 1)
}

// Rate returns the rate of task, Unlimited if it has none.
func (l *Limiter) Rate(task string) Rate {
	if b := l.lookup(task); b != nil {
		r, _ := b.Rate()
		return r
	}
	return Unlimited
}

// Bucket returns the bucket of task, creating an unlimited one if the name is
// new. The pointer stays valid and current for the life of the Limiter: Set
// changes the bucket in place, so a caller may resolve it once per task type
// and skip the map lookup on the hot path.
func (l *Limiter) Bucket(task string) *Bucket {
	if b := l.lookup(task); b != nil {
		return b
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.lookup(task); b != nil {
		return b
	}
	return l.addLocked(task)
}

// Find returns the bucket of task, nil if it has none (it is unlimited).
func (l *Limiter) Find(task string) *Bucket { return l.lookup(task) }

// Reserve is Bucket.Reserve for task's bucket; an unknown task is unlimited.
func (l *Limiter) Reserve(task string, now int64) time.Duration {
	if b := l.lookup(task); b != nil {
		return b.Reserve(now)
	}
	return 0
}

// Allow is Bucket.Allow for task's bucket; an unknown task is unlimited.
func (l *Limiter) Allow(task string, now int64) bool {
	if b := l.lookup(task); b != nil {
		return b.Allow(now)
	}
	return true
}

// Limits returns the tasks whose rate is limited and their rates, as a new
// map owned by the caller (for inspect-style reports).
func (l *Limiter) Limits() map[string]Rate {
	out := make(map[string]Rate)
	if m := l.buckets.Load(); m != nil {
		for name, b := range *m {
			if r, _ := b.Rate(); !r.Unlimited() {
				out[name] = r
			}
		}
	}
	return out
}

func (l *Limiter) lookup(task string) *Bucket {
	if m := l.buckets.Load(); m != nil {
		return (*m)[task]
	}
	return nil
}

// addLocked adds an unlimited bucket for task; l.mu must be held.
func (l *Limiter) addLocked(task string) *Bucket {
	b := new(Bucket)
	m := make(map[string]*Bucket, 1)
	if old := l.buckets.Load(); old != nil {
		m = maps.Clone(*old)
	}
	m[task] = b
	l.buckets.Store(&m)
	return b
}
