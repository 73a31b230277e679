package cli

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	json "github.com/goccy/go-json"

	"github.com/celerity-go/celerity/internal/interoptest"
)

func TestBenchFlags(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, Options{}, "bench", "--help")
	for _, flag := range []string{"-n ", "-latency-n", "-c ", "-prefetch-multiplier", "-payload", "-serializer",
		"-compression", "-acks-late", "-pool", "-compare", "-json", "-html", "-scenarios", "-broker", "-canvas-width"} {
		if !strings.Contains(stderr, flag) {
			t.Errorf("bench --help lacks %s", flag)
		}
	}
	if code != 0 {
		t.Errorf("--help exit %d", code)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "--bogus"}, 2, "flag provided but not defined"},
		{[]string{"bench", "extra"}, 2, "usage: celerity bench"},
		{[]string{"bench", "-n", "-5"}, 1, "n -5 < 0"},
		{[]string{"bench", "--serializer", "pickle"}, 1, `serializer "pickle"`},
		{[]string{"bench", "--scenarios", "drain,nosuch"}, 1, `unknown scenario "nosuch"`},
		{[]string{"bench", "--compare", "rq"}, 1, `compare "rq"`},
		{[]string{"bench", "--broker", "kafka://x"}, 1, "unsupported transport"},
		{[]string{"bench", "--loglevel", "loud"}, 1, "--loglevel"},
	} {
		code, _, stderr := run(t, Options{}, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%v: code %d (want %d), stderr %q (want %q)", tc.args, code, tc.code, stderr, tc.want)
		}
	}
}

func TestBenchPrintsTableJSONAndHTML(t *testing.T) {
	t.Parallel()
	code, stdout, stderr := run(t, Options{}, "bench", "-n", "2000", "--latency-n", "100")
	if code != 0 {
		t.Fatalf("bench exit %d: %s", code, stderr)
	}
	for _, want := range []string{"celerity bench: memory", "enqueue-batch", "drain", "throughput", "p99.9", "buffered chan", "canvas   2000"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "100% 2000/2000") {
		t.Errorf("no progress on stderr: %q", stderr)
	}

	html := filepath.Join(t.TempDir(), "bench.html")
	code, stdout, stderr = run(t, Options{}, "bench", "-n", "1000", "--latency-n", "50", "--scenarios", "drain,latency",
		"--json", "--quiet", "--html", html, "-c", "1", "--payload", "10", "--acks-late")
	if code != 0 || stderr != "" {
		t.Fatalf("bench --json exit %d: %q", code, stderr)
	}
	var rep struct {
		Settings struct {
			N           int  `json:"n"`
			Concurrency int  `json:"concurrency"`
			Payload     int  `json:"payload_bytes"`
			AcksLate    bool `json:"acks_late"`
		} `json:"settings"`
		Results []struct {
			Scenario string  `json:"scenario"`
			Rate     float64 `json:"rate"`
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("--json output: %v\n%s", err, stdout)
	}
	if rep.Settings.N != 1000 || rep.Settings.Concurrency != 1 || rep.Settings.Payload != 10 || !rep.Settings.AcksLate ||
		len(rep.Results) != 2 || rep.Results[0].Scenario != "drain" || rep.Results[1].Rate <= 0 {
		t.Fatalf("report: %+v", rep)
	}
	page, err := os.ReadFile(html)
	if err != nil || !strings.Contains(string(page), "<svg") {
		t.Fatalf("--html: %v, %.100q", err, page)
	}
}

func TestWorkerPprofFlag(t *testing.T) {
	t.Parallel()
	code, _, stderr := run(t, Options{}, "worker", "--pprof", "127.0.0.1:notaport")
	if code != 1 || !strings.Contains(stderr, "--pprof") {
		t.Fatalf("bad --pprof address: code %d, %q", code, stderr)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wctx, stop := context.WithCancel(ctx)
	var out, errb interoptest.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(wctx, []string{"worker", "--pprof", "127.0.0.1:0", "-c", "1"}, Options{Stdout: &out, Stderr: &errb})
	}()
	var base string
	for base == "" {
		if _, rest, ok := strings.Cut(errb.String(), "metrics on "); ok {
			base = strings.TrimSuffix(strings.Fields(rest)[0], "/metrics")
			break
		}
		select {
		case code := <-done:
			t.Fatalf("worker exited %d: %s", code, errb.String())
		case <-ctx.Done():
			t.Fatalf("no pprof address printed: %s", errb.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	for _, tc := range []struct{ path, want string }{
		{"/metrics", "celerity_worker_tasks_received_total"},
		{"/metrics", `celerity_queue_depth{queue="celery"} 0`},
		{"/debug/pprof/goroutine?debug=1", "goroutine profile"},
	} {
		resp, err := http.Get(base + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), tc.want) {
			t.Errorf("GET %s: %d, lacks %q", tc.path, resp.StatusCode, tc.want)
		}
	}
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("worker exit %d: %s", code, errb.String())
	}
	if conn, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second); err == nil {
		conn.Close()
		t.Fatal("the pprof listener outlived the worker")
	}
}
