package prefork

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Resizer is a pool an Autoscaler can resize: a prefork Pool, or the
// goroutine pool (pool.Goroutine) through the engine.
type Resizer interface {
	Size() int
	Resize(n int) error
}

// Autoscaler sizes a pool between Min and Max from its load, as Celery's
// --autoscale=MAX,MIN does: grow at once to the load (tasks the worker
// holds: running and waiting), capped at Max; shrink to the load, floored
// at Min, only once Keepalive has passed since the last growth, so that a
// bursty queue does not make the pool flap.
//
// Celery lets Min be 0; a pool here keeps at least one executor, so a Min
// below 1 counts as 1. Unlike Celery, which never shrinks a pool it has
// not grown, an Autoscaler counts its first decision as a growth: a pool
// grown by hand (pool_grow) shrinks back after Keepalive of low load.
//
// An Autoscaler is not safe for concurrent use: one goroutine runs it.
type Autoscaler struct {
	Min, Max int
	// Keepalive is how long after the last growth the pool may shrink;
	// default 30s (Celery's AUTOSCALE_KEEPALIVE).
	Keepalive time.Duration
	// Interval is how often Run looks at the load; default 1s (the
	// period of Celery's autoscaler thread).
	Interval time.Duration

	lastGrow time.Time
}

// Validate checks Min and Max.
func (a *Autoscaler) Validate() error {
	if a.Max < 1 {
		return fmt.Errorf("prefork: autoscale max %d < 1", a.Max)
	}
	if a.Min > a.Max {
		return fmt.Errorf("prefork: autoscale min %d > max %d", a.Min, a.Max)
	}
	return nil
}

// Next returns the size a pool of the given size should have at now, with
// load tasks held. It records a growth; it does not resize anything.
func (a *Autoscaler) Next(now time.Time, size, load int) int {
	lo, hi := max(a.Min, 1), max(a.Max, 1)
	keep := a.Keepalive
	if keep <= 0 {
		keep = 30 * time.Second
	}
	if a.lastGrow.IsZero() {
		a.lastGrow = now
	}
	if up := min(max(load, lo), hi); up > size {
		a.lastGrow = now
		return up
	}
	if size > hi {
		return hi // Max was lowered: shrink at once, as Celery's update does
	}
	if down := max(min(load, hi), lo); down < size && now.Sub(a.lastGrow) > keep {
		return down
	}
	return size
}

// Run resizes p every Interval from load() until ctx ends, and returns
// nil then; cancel ctx before stopping the pool. A failed Resize is logged
// (log may be nil) and retried at the next tick; this package's ErrStopped
// ends Run.
func (a *Autoscaler) Run(ctx context.Context, p Resizer, load func() int, log *slog.Logger) error {
	if err := a.Validate(); err != nil {
		return err
	}
	if log == nil {
		log = slog.Default()
	}
	every := a.Interval
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			size := p.Size()
			n := a.Next(now, size, load())
			if n == size {
				continue
			}
			if err := p.Resize(n); err != nil {
				if errors.Is(err, ErrStopped) {
					return nil
				}
				log.Warn("prefork: autoscale resize failed", "from", size, "to", n, "err", err)
				continue
			}
			log.Info("prefork: autoscaled pool", "from", size, "to", n)
		}
	}
}
