package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/pool/prefork"
)

// parseAutoscale reads --autoscale "max,min" (Celery's order; "max" alone
// means min 0, as Celery reads it, clamped to 1 here).
func parseAutoscale(s string) (prefork.Autoscaler, error) {
	parts := strings.Split(s, ",")
	if len(parts) > 2 {
		return prefork.Autoscaler{}, fmt.Errorf("--autoscale %q: want max,min", s)
	}
	hi, err := strconv.Atoi(strings.TrimSpace(parts[0]))
	if err != nil {
		return prefork.Autoscaler{}, fmt.Errorf("--autoscale %q: %w", s, err)
	}
	lo := 1
	if len(parts) == 2 {
		if lo, err = strconv.Atoi(strings.TrimSpace(parts[1])); err != nil {
			return prefork.Autoscaler{}, fmt.Errorf("--autoscale %q: %w", s, err)
		}
	}
	a := prefork.Autoscaler{Min: max(lo, 1), Max: hi}
	if err := a.Validate(); err != nil {
		return prefork.Autoscaler{}, fmt.Errorf("--autoscale %q: %w", s, err)
	}
	return a, nil
}

// workerPool adapts a worker's pool to prefork.Resizer.
type workerPool struct{ w *engine.Worker }

func (p workerPool) Size() int          { return p.w.PoolSize() }
func (p workerPool) Resize(n int) error { return p.w.ResizePool(n) }

// startAutoscale grows and shrinks the worker's pool between a.Min and
// a.Max with its backlog (running + reserved tasks), as Celery's
// --autoscale does, until ctx ends.
func startAutoscale(ctx context.Context, a prefork.Autoscaler, w *engine.Worker, app *engine.App) {
	load := func() int { return len(w.Active()) + len(w.Reserved()) }
	go a.Run(ctx, workerPool{w}, load, app.Logger())
}
