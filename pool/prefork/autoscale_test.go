package prefork

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

func TestAutoscalerNext(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(1000, 0)
	type step struct {
		at         time.Duration // since t0
		size, load int
		want       int
	}
	for _, tc := range []struct {
		name  string
		a     Autoscaler
		steps []step
	}{
		{"grows at once to the load, capped at max", Autoscaler{Min: 2, Max: 10}, []step{
			{0, 2, 5, 5},
			{time.Second, 5, 50, 10},
			{2 * time.Second, 10, 50, 10},
		}},
		{"shrinks only after keepalive since the last growth", Autoscaler{Min: 2, Max: 10, Keepalive: 30 * time.Second}, []step{
			{0, 2, 8, 8},
			{10 * time.Second, 8, 0, 8},
			{30 * time.Second, 8, 0, 8},
			{31 * time.Second, 8, 3, 3},
			{32 * time.Second, 3, 0, 2},
		}},
		{"a new growth restarts the keepalive", Autoscaler{Min: 1, Max: 10, Keepalive: 10 * time.Second}, []step{
			{0, 1, 4, 4},
			{9 * time.Second, 4, 6, 6},
			{15 * time.Second, 6, 0, 6},
			{20 * time.Second, 6, 0, 1},
		}},
		{"default keepalive is 30s", Autoscaler{Min: 1, Max: 4}, []step{
			{0, 1, 4, 4},
			{29 * time.Second, 4, 0, 4},
			{31 * time.Second, 4, 0, 1},
		}},
		{"min below one counts as one", Autoscaler{Min: 0, Max: 3, Keepalive: time.Second}, []step{
			{0, 3, 0, 3},
			{2 * time.Second, 3, 0, 1},
		}},
		{"below min grows to min", Autoscaler{Min: 4, Max: 8}, []step{
			{0, 1, 0, 4},
		}},
		{"above max shrinks at once", Autoscaler{Min: 1, Max: 4}, []step{
			{0, 4, 4, 4},
			{time.Second, 9, 9, 4},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			a := tc.a
			for i, s := range tc.steps {
				if got := a.Next(t0.Add(s.at), s.size, s.load); got != s.want {
					t.Fatalf("step %d (t+%v, size %d, load %d): Next = %d, want %d", i, s.at, s.size, s.load, got, s.want)
				}
			}
		})
	}
}

func TestAutoscalerValidate(t *testing.T) {
	t.Parallel()
	for _, a := range []Autoscaler{{Min: 1, Max: 0}, {Min: 5, Max: 4}} {
		if err := a.Validate(); err == nil {
			t.Errorf("%+v: no error", a)
		}
	}
	if err := (&Autoscaler{Min: 0, Max: 1}).Validate(); err != nil {
		t.Error(err)
	}
}

// fakePool is a Resizer that records its sizes.
type fakePool struct {
	mu    sync.Mutex
	size  int
	sizes []int
	err   error
}

func (f *fakePool) Size() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.size
}

func (f *fakePool) Resize(n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.size = n
	f.sizes = append(f.sizes, n)
	return nil
}

func TestAutoscalerRun(t *testing.T) {
	t.Parallel()
	f := &fakePool{size: 1}
	var mu sync.Mutex
	load := 7
	a := &Autoscaler{Min: 1, Max: 5, Interval: time.Millisecond, Keepalive: time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- a.Run(ctx, f, func() int { mu.Lock(); defer mu.Unlock(); return load }, quietLogger())
	}()
	eventually(t, "grow to max under backlog", func() bool { return f.Size() == 5 })
	mu.Lock()
	load = 0
	mu.Unlock()
	eventually(t, "shrink to min when idle", func() bool { return f.Size() == 1 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.sizes[0] != 5 || f.sizes[len(f.sizes)-1] != 1 {
		t.Fatalf("sizes %v", f.sizes)
	}

	// A stopped pool ends Run; a bad config is refused.
	stopped := &fakePool{size: 1, err: ErrStopped}
	if err := a.Run(context.Background(), stopped, func() int { return 3 }, quietLogger()); err != nil {
		t.Fatalf("Run on a stopped pool: %v", err)
	}
	bad := &Autoscaler{Min: 3, Max: 2}
	if err := bad.Run(context.Background(), stopped, func() int { return 3 }, nil); err == nil {
		t.Fatal("Run with min > max succeeded")
	}
}

// The autoscaler drives a real prefork pool.
func TestAutoscalerPrefork(t *testing.T) {
	t.Parallel()
	p := newHarness(t).pool(Config{Procs: 1})
	a := &Autoscaler{Min: 1, Max: 3, Interval: 5 * time.Millisecond, Keepalive: 5 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, p, p.Load, quietLogger()) }()
	// Three tasks that block: they can only all start if the pool grew.
	dir := t.TempDir()
	var chans []<-chan Result
	for i := range 3 {
		chans = append(chans, submit(t, p, "block:"+filepath.Join(dir, strconv.Itoa(i)), 0))
	}
	for i := range 3 {
		if err := syscall.Kill(blockedPid(t, filepath.Join(dir, strconv.Itoa(i))), syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	for _, ch := range chans {
		if r := wait(t, ch); !errors.Is(r.Err, ErrChildLost) {
			t.Fatal(r.Err)
		}
	}
	eventually(t, "shrink when idle", func() bool { return p.Size() == 1 && p.Stats().Children == 1 })
	cancel()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
}
