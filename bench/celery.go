package bench

import (
	"bytes"
	"context"
	_ "embed" // the Python side of --compare celery
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	json "github.com/goccy/go-json"
)

//go:embed testdata/bench_app.py
var benchAppPy []byte

// celeryRunner runs the scenarios with Python Celery: its worker
// (prefork, or solo when our pool is solo) and its client, on our broker,
// with our N, concurrency, prefetch, payload, serializer, compression and
// acks_late.
type celeryRunner struct {
	cfg  Config
	once sync.Once
	// dir holds bench_app.py; err says why Python Celery cannot run.
	dir string
	err error
}

func newCeleryRunner(cfg Config) *celeryRunner { return &celeryRunner{cfg: cfg} }

// ready checks once that Python imports celery and writes the app file.
func (py *celeryRunner) ready(tr Transport) error {
	py.once.Do(func() {
		if _, _, err := tr.CeleryURLs(); err != nil {
			py.err = err
			return
		}
		out, err := exec.Command(py.cfg.Python, "-c", "import celery; print(celery.__version__)").CombinedOutput()
		if err != nil {
			py.err = fmt.Errorf("Python Celery is not importable by %s (%v): %s", py.cfg.Python, err, lastLine(out))
			return
		}
		dir, err := os.MkdirTemp("", "celerity-bench-py-")
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, "bench_app.py"), benchAppPy, 0o644)
		}
		if err != nil {
			py.err = fmt.Errorf("write bench_app.py: %w", err)
			return
		}
		py.dir = dir
	})
	return py.err
}

// close removes the app file.
func (py *celeryRunner) close() {
	if py.dir != "" {
		os.RemoveAll(py.dir)
	}
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// env returns the environment of a Python process working on queue.
func (py *celeryRunner) env(tr Transport, queue string, extra ...string) []string {
	broker, backend, _ := tr.CeleryURLs()
	pool := "prefork"
	if py.cfg.Pool == "solo" {
		pool = "solo"
	}
	acks := "0"
	if py.cfg.AcksLate {
		acks = "1"
	}
	e := append(os.Environ(),
		"CELERY_BROKER_URL="+broker, "CELERY_RESULT_BACKEND="+backend,
		"BENCH_QUEUE="+queue, "BENCH_SERIALIZER="+py.cfg.Serializer, "BENCH_COMPRESSION="+py.cfg.Compression,
		"BENCH_PAYLOAD="+strconv.Itoa(py.cfg.Payload), "BENCH_ACKS_LATE="+acks,
		"BENCH_PREFETCH="+strconv.Itoa(py.cfg.PrefetchMultiplier),
		"BENCH_CONCURRENCY="+strconv.Itoa(py.cfg.Concurrency), "BENCH_POOL="+pool)
	if tr.Name() == "amqp" {
		// Our AMQP transport waits for publisher confirms; so must Celery.
		e = append(e, "BENCH_CONFIRM_PUBLISH=1")
	}
	return append(e, extra...)
}

// script runs bench_app.py with args to completion and decodes the JSON
// line it prints into v.
func (py *celeryRunner) script(ctx context.Context, env []string, v any, args ...string) error {
	cmd := exec.CommandContext(ctx, py.cfg.Python, append([]string{filepath.Join(py.dir, "bench_app.py")}, args...)...)
	cmd.Env = env
	cmd.Dir = py.dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("python %s: %w: %s", strings.Join(args, " "), err, lastLine(stderr.Bytes()))
	}
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), v); err != nil {
		return fmt.Errorf("python %s: bad output %.200q: %w", strings.Join(args, " "), stdout.String(), err)
	}
	return nil
}

// pyWorker is a running Python Celery worker.
type pyWorker struct {
	cmd    *exec.Cmd
	out    string // BENCH_OUT
	stderr bytes.Buffer
	exited chan error
}

// startWorker starts a Python worker on queue that reports when it has
// finished expect tasks, and waits until it consumes.
func (py *celeryRunner) startWorker(ctx context.Context, tr Transport, queue string, expect int) (*pyWorker, error) {
	out := filepath.Join(py.dir, queue+".json")
	os.Remove(out)
	os.Remove(out + ".ready")
	w := &pyWorker{out: out, exited: make(chan error, 1)}
	w.cmd = exec.Command(py.cfg.Python, filepath.Join(py.dir, "bench_app.py"), "worker")
	w.cmd.Env = py.env(tr, queue, "BENCH_EXPECT="+strconv.Itoa(expect), "BENCH_OUT="+out)
	w.cmd.Dir = py.dir
	w.cmd.Stdout, w.cmd.Stderr = &w.stderr, &w.stderr
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // stop the prefork children with it
	if err := w.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start Python worker: %w", err)
	}
	go func() { w.exited <- w.cmd.Wait() }()
	if _, err := w.await(ctx, out+".ready"); err != nil {
		w.stop()
		return nil, fmt.Errorf("Python worker did not start: %w", err)
	}
	return w, nil
}

// pyTimes is what the Python worker reports (Unix seconds).
type pyTimes struct {
	Ready float64 `json:"ready"`
	First float64 `json:"first"`
	Last  float64 `json:"last"`
	Done  int     `json:"done"`
}

// await waits for the file path to appear and decodes it.
func (w *pyWorker) await(ctx context.Context, path string) (pyTimes, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			var t pyTimes
			if err := json.Unmarshal(b, &t); err != nil {
				return t, fmt.Errorf("%s: %w", path, err)
			}
			return t, nil
		}
		select {
		case err := <-w.exited:
			w.exited <- err
			return pyTimes{}, fmt.Errorf("worker exited (%v): %s", err, lastLine(w.stderr.Bytes()))
		case <-ctx.Done():
			return pyTimes{}, ctx.Err()
		case <-tick.C:
		}
	}
}

// stop shuts the worker down: SIGTERM (warm), then SIGKILL after 10s.
func (w *pyWorker) stop() {
	pg := -w.cmd.Process.Pid
	syscall.Kill(pg, syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		syscall.Kill(pg, syscall.SIGKILL)
		<-w.exited
	}
}

// run measures one scenario with Python Celery.
func (py *celeryRunner) run(ctx context.Context, r *runner, scenario string, n int) (*Figure, error) {
	if err := py.ready(r.tr); err != nil {
		return nil, err
	}
	name := "celery-" + scenario
	queue := r.queue(name)
	fig := &Figure{What: "python celery", Tasks: n}
	switch scenario {
	case ScenarioEnqueue:
		var out struct{ Start, Elapsed float64 }
		if err := py.script(ctx, py.env(r.tr, queue), &out, "send", strconv.Itoa(n)); err != nil {
			return nil, err
		}
		fig.Elapsed = seconds(out.Elapsed)
		if err := r.purge(ctx, name); err != nil {
			return nil, err
		}
	case ScenarioDrain:
		// The same pre-loaded messages as ours: celerity sends them.
		if err := r.preloadQueue(ctx, name, n); err != nil {
			return nil, err
		}
		w, err := py.startWorker(ctx, r.tr, queue, n)
		if err != nil {
			return nil, err
		}
		defer w.stop()
		t, err := w.await(ctx, w.out)
		if err != nil {
			return nil, err
		}
		fig.Elapsed = seconds(t.Last - t.Ready)
	case ScenarioThroughput:
		w, err := py.startWorker(ctx, r.tr, queue, n)
		if err != nil {
			return nil, err
		}
		defer w.stop()
		var out struct{ Start, Elapsed float64 }
		if err := py.script(ctx, py.env(r.tr, queue), &out, "send", strconv.Itoa(n)); err != nil {
			return nil, err
		}
		t, err := w.await(ctx, w.out)
		if err != nil {
			return nil, err
		}
		fig.Elapsed = seconds(t.Last - out.Start)
	case ScenarioLatency:
		w, err := py.startWorker(ctx, r.tr, queue, 0)
		if err != nil {
			return nil, err
		}
		defer w.stop()
		var out struct{ Latencies []float64 }
		if err := py.script(ctx, py.env(r.tr, queue), &out, "latency", strconv.Itoa(n), strconv.Itoa(warmup(n))); err != nil {
			return nil, err
		}
		h := NewHistogram()
		total := 0.0
		for _, s := range out.Latencies {
			h.RecordDuration(seconds(s))
			total += s
		}
		l := h.Summary()
		fig.Latency, fig.CDF, fig.Elapsed = &l, h.CDF(), seconds(total)
	case ScenarioCanvas:
		w, err := py.startWorker(ctx, r.tr, queue, 0)
		if err != nil {
			return nil, err
		}
		defer w.stop()
		width := min(py.cfg.CanvasWidth, n)
		fig.Tasks = max(n/width, 1) * width
		var out struct{ Start, Elapsed float64 }
		if err := py.script(ctx, py.env(r.tr, queue), &out, "canvas", strconv.Itoa(n), strconv.Itoa(width)); err != nil {
			return nil, err
		}
		fig.Elapsed = seconds(out.Elapsed)
		n = fig.Tasks
	default:
		return nil, errors.New("no Python Celery counterpart")
	}
	fig.Rate = Rate(n, fig.Elapsed)
	return fig, nil
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
