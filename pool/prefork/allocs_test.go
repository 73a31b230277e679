//go:build !race

package prefork

import (
	"bufio"
	"bytes"
	"testing"
	"time"
)

func TestAllocsFrames(t *testing.T) {
	dst := make([]byte, 0, 64)
	payload := []byte("celery task payload")
	if n := testing.AllocsPerRun(100, func() { dst = appendFrame(dst[:0], payload) }); n != 0 {
		t.Errorf("appendFrame: %v allocs, want 0", n)
	}
	in := bytes.Repeat(frames("abc", "defgh"), 2000)
	r := &frameReader{br: bufio.NewReaderSize(bytes.NewReader(in), bufSize), max: 64}
	if n := testing.AllocsPerRun(1000, func() {
		if r.complete(8) < 0 {
			t.Fatal("negative")
		}
		if _, err := r.next(); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("frameReader.next: %v allocs, want 0", n)
	}
}

// A task's whole round trip through a child, hard limit included, does not
// allocate in the parent once the pool is warm (the child is another
// process: its allocations are not counted, and it makes none per task
// either beyond the handler's).
func TestAllocsRoundTrip(t *testing.T) {
	p := newHarness(t).pool(Config{Procs: 1})
	ch := make(chan struct{}, 1)
	done := func(r Result) {
		if r.Err != nil {
			t.Error(r.Err)
		}
		ch <- struct{}{}
	}
	req := Request{Payload: []byte("noop"), HardLimit: time.Minute}
	roundTrip := func() {
		if err := p.Submit(req, done); err != nil {
			t.Fatal(err)
		}
		<-ch
	}
	for range 100 {
		roundTrip()
	}
	if n := testing.AllocsPerRun(2000, roundTrip); n != 0 {
		t.Errorf("Submit to done: %v allocs per task, want 0", n)
	}
}
