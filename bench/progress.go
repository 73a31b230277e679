package bench

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// progress draws a one-line progress bar, redrawn with "\r" on a
// terminal; elsewhere (a file, a pipe, CI logs) it writes each phase's
// final line only. A nil *progress draws nothing.
type progress struct {
	w   io.Writer
	tty bool
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// phase follows counter towards total under label, redrawing every
// 100ms, until the returned stop function draws the final state and ends
// the line.
func (p *progress) phase(label string, total int64, counter *atomic.Int64) (stop func()) {
	if p == nil || p.w == nil {
		return func() {}
	}
	quit := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(finished)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-quit:
				p.draw(label, counter.Load(), total, time.Since(start))
				fmt.Fprintln(p.w)
				return
			case <-t.C:
				if p.tty {
					p.draw(label, counter.Load(), total, time.Since(start))
				}
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// note prints a line of its own (for a phase without a counter).
func (p *progress) note(format string, args ...any) {
	if p == nil || p.w == nil {
		return
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *progress) draw(label string, n, total int64, elapsed time.Duration) {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = min(1, float64(n)/float64(total))
	}
	full := int(frac * width)
	cr := ""
	if p.tty {
		cr = "\r"
	}
	fmt.Fprintf(p.w, cr+"%-22s [%s%s] %3.0f%% %d/%d %s   ", label, strings.Repeat("#", full),
		strings.Repeat(".", width-full), frac*100, n, total, elapsed.Round(100*time.Millisecond))
}
