package pprof

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	runtimepprof "runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/celerity-go/celerity/engine"
	"github.com/celerity-go/celerity/transport/memory"
)

func TestResolveAddr(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"", "", ErrDisabled},
		{"  ", "", ErrDisabled},
		{"off", "", ErrDisabled},
		{"OFF", "", ErrDisabled},
		{":6060", "127.0.0.1:6060", nil},
		{"6060", "127.0.0.1:6060", nil},
		{"127.0.0.1:0", "127.0.0.1:0", nil},
		{"localhost:6060", "localhost:6060", nil},
		{"0.0.0.0:6060", "0.0.0.0:6060", nil},
		{"[::1]:6060", "[::1]:6060", nil},
		{"127.0.0.1", "", ErrBadAddr},
		{"127.0.0.1:http", "", ErrBadAddr},
		{"127.0.0.1:99999", "", ErrBadAddr},
		{"99999", "", ErrBadAddr},
	} {
		got, err := ResolveAddr(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
			t.Errorf("ResolveAddr(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestRefusesWhenDisabled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Serve returns at once instead of blocking until ctx ends.
	if err := Serve(ctx, ""); !errors.Is(err, ErrDisabled) {
		t.Fatalf("Serve(\"\") = %v, want ErrDisabled", err)
	}
	if s, err := Start("off"); !errors.Is(err, ErrDisabled) || s != nil {
		t.Fatalf("Start(off) = %v, %v", s, err)
	}
}

func TestNothingRegisteredOnDefaultServeMux(t *testing.T) {
	t.Parallel()
	_ = Handler() // building a handler must not touch the global mux either
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/profile", "/metrics"} {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if _, pattern := http.DefaultServeMux.Handler(req); pattern != "" {
			t.Errorf("http.DefaultServeMux serves %s with pattern %q", path, pattern)
		}
	}
}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: read: %v", url, err)
	}
	return resp.StatusCode, resp.Header, string(body)
}

// The tests that take a CPU profile do not run in parallel: the runtime
// has one CPU profiler.

func TestServesProfiles(t *testing.T) {
	s, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := s.URL()

	for _, tc := range []struct {
		path     string
		status   int
		contains string // in the body ("" = not checked)
		gzipped  bool   // a binary profile (gzip-compressed protobuf)
	}{
		{"/debug/pprof/", 200, "goroutine?debug=1", false},
		{"/", 200, "/debug/pprof/", false}, // redirected to the index
		{"/debug/pprof/goroutine?debug=1", 200, "goroutine profile: total", false},
		{"/debug/pprof/goroutine?debug=2", 200, "goroutine ", false},
		{"/debug/pprof/heap?gc=1", 200, "", true},
		{"/debug/pprof/allocs", 200, "", true},
		{"/debug/pprof/profile?seconds=0.05", 200, "", true},
		{"/debug/pprof/trace?seconds=0.05", 200, "go 1.", false},
		{"/debug/pprof/cmdline", 200, "pprof.test", false},
		{"/debug/pprof/symbol", 200, "num_symbols: 1", false},
		{"/debug/pprof/nosuch", 404, "Unknown profile", false},
		{"/debug/pprof/heap?seconds=5", 400, "go tool pprof -base", false},
		{"/debug/pprof/profile?seconds=100000", 400, "at most", false},
		{"/metrics", 200, "go_goroutines", false},
	} {
		status, _, body := get(t, base+tc.path)
		if status != tc.status {
			t.Errorf("GET %s: status %d, want %d (%.200q)", tc.path, status, tc.status, body)
			continue
		}
		if tc.contains != "" && !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: body lacks %q: %.300q", tc.path, tc.contains, body)
		}
		if tc.gzipped && !strings.HasPrefix(body, "\x1f\x8b") {
			t.Errorf("GET %s: not a gzipped profile: %.40q", tc.path, body)
		}
	}

	// Symbol lookups by POST, as go tool pprof sends them.
	resp, err := http.Post(base+"/debug/pprof/symbol", "text/plain", strings.NewReader("0x1+0x2"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("POST symbol: %d", resp.StatusCode)
	}
	// Profiles are read-only.
	resp, err = http.Post(base+"/debug/pprof/heap", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST heap: %d, want 405", resp.StatusCode)
	}
}

func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	var addr net.Addr
	s, err := Start("127.0.0.1:0", WithTimeouts(3*time.Second, 7*time.Second, 11*time.Second),
		OnListen(func(a net.Addr) { addr = a }))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if addr == nil || addr.String() != s.Addr().String() {
		t.Fatalf("OnListen got %v, server listens on %v", addr, s.Addr())
	}
	if s.srv.ReadHeaderTimeout != 3*time.Second || s.srv.ReadTimeout != 3*time.Second ||
		s.srv.WriteTimeout != 7*time.Second || s.srv.IdleTimeout != 11*time.Second {
		t.Fatalf("timeouts: header %v read %v write %v idle %v", s.srv.ReadHeaderTimeout,
			s.srv.ReadTimeout, s.srv.WriteTimeout, s.srv.IdleTimeout)
	}
	d, err := Start("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.srv.ReadTimeout != DefaultReadTimeout || d.srv.WriteTimeout != DefaultWriteTimeout || d.srv.IdleTimeout != DefaultIdleTimeout {
		t.Fatalf("default timeouts: %v %v %v", d.srv.ReadTimeout, d.srv.WriteTimeout, d.srv.IdleTimeout)
	}
}

func TestServeShutsDownCleanly(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, "127.0.0.1:0", WithShutdownTimeout(200*time.Millisecond),
			OnListen(func(a net.Addr) { addrc <- a }))
	}()
	addr := (<-addrc).String()
	if status, _, _ := get(t, "http://"+addr+"/debug/pprof/"); status != 200 {
		t.Fatalf("index: %d", status)
	}
	// A CPU profile in flight when the context ends: Serve waits for it up
	// to the shutdown timeout, then closes the connection and returns nil.
	profiling := make(chan struct{})
	go func() {
		resp, err := http.Get("http://" + addr + "/debug/pprof/profile?seconds=30")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		close(profiling)
	}()
	time.Sleep(50 * time.Millisecond) // let the profile request arrive (not an assertion)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve returned %v after its context ended", err)
	}
	<-profiling
	waitCPUProfilerFree(t)
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Fatalf("%s still accepts connections after Serve returned", addr)
	}
}

// waitCPUProfilerFree waits until the handler of a cancelled CPU profile
// request has stopped the profiler, so that a later test can use it.
func waitCPUProfilerFree(t *testing.T) {
	t.Helper()
	for range 1000 {
		if err := runtimepprof.StartCPUProfile(io.Discard); err == nil {
			runtimepprof.StopCPUProfile()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the CPU profile of a closed connection was not stopped within 10s")
}

func TestServeReportsListenError(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	err = Serve(context.Background(), ln.Addr().String())
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Serve on a taken address: %v", err)
	}
}

func TestMetricsExportWorkerCountersRuntimeAndQueueDepth(t *testing.T) {
	t.Parallel()
	broker := memory.NewBroker()
	app := engine.MustNew(engine.Config{Broker: broker, Backend: memory.NewBackend(), Hostname: "celerity@metrics-test"})
	defer app.Close()
	engine.RegisterRaw(app, "m.ok", func(context.Context, *engine.Task) error { return nil })
	engine.RegisterRaw(app, "m.bad", func(context.Context, *engine.Task) error { return errors.New("boom") })

	m := NewMetrics()
	var prerun int
	app.SetHooks(engine.Hooks{TaskPrerun: func(*engine.Task) { prerun++ }})
	app.AddHooks(m.Hooks())
	m.WatchQueues(func(_ context.Context, q string) (int, error) { return broker.Len(q), nil }, "celery", "other", "celery")
	m.WatchQueues(func(context.Context, string) (int, error) { return 0, errors.New("down") }, "broken")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		if err := app.SendRaw(ctx, "m.ok", nil, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.SendRaw(ctx, "m.bad", nil, nil); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := app.SendRaw(ctx, "m.ok", nil, nil, engine.Queue("other")); err != nil {
			t.Fatal(err)
		}
	}
	w, err := app.Worker(engine.WorkerConfig{Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.AddWorker(w)
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	for w.Stats().Succeeded.Load()+w.Stats().Failed.Load() < 4 {
		if ctx.Err() != nil {
			t.Fatal("tasks did not finish")
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	rec := httptest.NewRecorder()
	Handler(WithMetrics(m)).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`celerity_worker_tasks_received_total{worker="celerity@metrics-test"} 4`,
		`celerity_worker_tasks_succeeded_total{worker="celerity@metrics-test"} 3`,
		`celerity_worker_tasks_failed_total{worker="celerity@metrics-test"} 1`,
		`celerity_worker_tasks_retried_total{worker="celerity@metrics-test"} 0`,
		`celerity_worker_tasks_inflight{worker="celerity@metrics-test"} 0`,
		`celerity_task_runtime_seconds_count{task="m.ok"} 3`,
		`celerity_task_runtime_seconds_count{task="m.bad"} 1`,
		`celerity_queue_depth{queue="other"} 2`,
		`celerity_queue_depth{queue="celery"} 0`,
		"go_goroutines ",
		"process_",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(body, `queue="broken"`) {
		t.Error("a failed depth lookup was exported")
	}
	if prerun != 4 {
		t.Errorf("the wrapped TaskPrerun hook ran %d times, want 4", prerun)
	}
}
