package pprof

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/celerity-go/celerity/codec"
	"github.com/celerity-go/celerity/engine"
)

// Metrics is a Prometheus registry with celerity's metrics:
//
//	go_*, process_*                          the Go runtime and process collectors
//	celerity_worker_tasks_received_total     per worker (label worker = node name)
//	celerity_worker_tasks_succeeded_total    ... and failed, retried, revoked, rejected
//	celerity_worker_tasks_inflight           received and not finished yet: prefetched,
//	                                         held for an ETA or rate limit, or running
//	celerity_task_runtime_seconds            histogram of handler run time per task
//	                                         (label task), recorded by Hooks
//	celerity_queue_depth                     ready messages per queue (WatchQueues)
//
// Add workers with AddWorker and install Hooks on the app to get the
// run-time histogram; Registry is there for a service's own collectors.
// A Metrics is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	mu      sync.Mutex
	workers []*engine.Worker
	queues  []queueWatch

	runtime *prometheus.HistogramVec
	obsMu   sync.RWMutex
	byTask  map[string]prometheus.Observer // task name (owned copy) -> child

}

type queueWatch struct {
	queue string
	depth func(ctx context.Context, queue string) (int, error)
}

// queueDepthTimeout bounds one queue-depth lookup during a scrape.
const queueDepthTimeout = 2 * time.Second

// NewMetrics returns a registry holding the Go runtime and process
// collectors and celerity's task metrics.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg:    prometheus.NewRegistry(),
		byTask: make(map[string]prometheus.Observer),
		runtime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "celerity_task_runtime_seconds",
			Help: "Run time of task handlers (task_prerun to task_postrun).",
			// 10µs to ~84s, x2.5 per bucket.
			Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 18),
		}, []string{"task"}),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.runtime,
		(*engineCollector)(m),
	)
	return m
}

// Registry returns the registry served on /metrics, for a service's own
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// AddWorker exports w's counters (engine.WorkerStats), labelled with its
// node name. Workers that share a node name are summed.
func (m *Metrics) AddWorker(w *engine.Worker) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.workers = append(m.workers, w)
}

// WatchQueues exports celerity_queue_depth for each queue, asking depth at
// every scrape (bounded by a 2s timeout; a failed lookup leaves the queue
// out of that scrape). For the brokers of this repository depth is their
// QueueLen method, or for the memory broker
// func(_ context.Context, q string) (int, error) { return b.Len(q), nil }.
func (m *Metrics) WatchQueues(depth func(ctx context.Context, queue string) (int, error), queues ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
next:
	for _, q := range queues {
		for _, w := range m.queues {
			if w.queue == q {
				continue next // one series per queue
			}
		}
		m.queues = append(m.queues, queueWatch{queue: q, depth: depth})
	}
}

// Hooks returns the engine hooks that record the task run-time histogram,
// from Task.Runtime. Install them with app.AddHooks before starting
// workers; the program's own hooks keep running.
func (m *Metrics) Hooks() engine.Hooks {
	return engine.Hooks{TaskPostrun: func(t *engine.Task, _ codec.State) {
		m.observer(t.Name).Observe(t.Runtime().Seconds())
	}}
}

// observer returns the histogram child of a task. name may be a view into
// a message buffer: it is copied before the registry keeps it.
func (m *Metrics) observer(name string) prometheus.Observer {
	m.obsMu.RLock()
	o := m.byTask[name]
	m.obsMu.RUnlock()
	if o != nil {
		return o
	}
	m.obsMu.Lock()
	defer m.obsMu.Unlock()
	if o = m.byTask[name]; o == nil {
		name = strings.Clone(name)
		o = m.runtime.WithLabelValues(name)
		m.byTask[name] = o
	}
	return o
}

// engineCollector collects the worker counters and queue depths at scrape
// time.
type engineCollector Metrics

var (
	descCounters = []struct {
		desc *prometheus.Desc
		get  func(*engine.WorkerStats) int64
	}{
		{workerDesc("received", "Task messages the worker received."), func(s *engine.WorkerStats) int64 { return s.Received.Load() }},
		{workerDesc("succeeded", "Tasks that succeeded."), func(s *engine.WorkerStats) int64 { return s.Succeeded.Load() }},
		{workerDesc("failed", "Tasks that failed."), func(s *engine.WorkerStats) int64 { return s.Failed.Load() }},
		{workerDesc("retried", "Tasks that asked to be retried."), func(s *engine.WorkerStats) int64 { return s.Retried.Load() }},
		{workerDesc("revoked", "Tasks discarded as revoked or expired."), func(s *engine.WorkerStats) int64 { return s.Revoked.Load() }},
		{workerDesc("rejected", "Task messages rejected (unknown task, bad message, Reject)."), func(s *engine.WorkerStats) int64 { return s.Rejected.Load() }},
	}
	descInflight = prometheus.NewDesc("celerity_worker_tasks_inflight",
		"Tasks received and not finished: prefetched, held for an ETA or rate limit, or running.",
		[]string{"worker"}, nil)
	descQueueDepth = prometheus.NewDesc("celerity_queue_depth",
		"Messages ready in the queue (not yet delivered to a consumer).", []string{"queue"}, nil)
)

func workerDesc(what, help string) *prometheus.Desc {
	return prometheus.NewDesc("celerity_worker_tasks_"+what+"_total", help, []string{"worker"}, nil)
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range descCounters {
		ch <- d.desc
	}
	ch <- descInflight
	ch <- descQueueDepth
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	workers := append([]*engine.Worker(nil), c.workers...)
	queues := append([]queueWatch(nil), c.queues...)
	c.mu.Unlock()

	type sums struct{ counters [6]int64 }
	byHost := map[string]*sums{}
	var hosts []string
	for _, w := range workers {
		h := w.Hostname()
		s := byHost[h]
		if s == nil {
			s = &sums{}
			byHost[h] = s
			hosts = append(hosts, h)
		}
		st := w.Stats()
		for i, d := range descCounters {
			s.counters[i] += d.get(st)
		}
	}
	for _, h := range hosts {
		s := byHost[h]
		for i, d := range descCounters {
			ch <- prometheus.MustNewConstMetric(d.desc, prometheus.CounterValue, float64(s.counters[i]), h)
		}
		finished := int64(0)
		for _, v := range s.counters[1:] {
			finished += v
		}
		ch <- prometheus.MustNewConstMetric(descInflight, prometheus.GaugeValue, float64(max(0, s.counters[0]-finished)), h)
	}
	for _, q := range queues {
		ctx, cancel := context.WithTimeout(context.Background(), queueDepthTimeout)
		n, err := q.depth(ctx, q.queue)
		cancel()
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(descQueueDepth, prometheus.GaugeValue, float64(n), q.queue)
	}
}
