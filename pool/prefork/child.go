package prefork

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EnvChild is the environment variable the pool sets on every child it
// starts. Its value, "1:IN:OUT:PROGRESS:MAXFRAME", gives the protocol
// version, the descriptors of the request pipe, the reply pipe and the
// progress page, and the frame size limit. ServeChild reads it and removes
// it from the environment, so that programs the task starts do not take
// themselves for pool children.
const EnvChild = "CELERITY_PREFORK_CHILD"

// ErrFrameTooLarge is returned (wrapped) by Submit for a payload, and by a
// child for a reply, longer than the pool's frame limit.
var ErrFrameTooLarge = errors.New("prefork: frame too large")

// ErrNotChild is returned by ServeChild in a process that was not started
// by a Pool (EnvChild is not set or not understood).
var ErrNotChild = errors.New("prefork: not a pool child")

// flushDelay bounds how long a child holds finished replies while it runs
// the next pipelined task. Replies are normally written when the child's
// input runs dry; a background flush after flushDelay keeps a long task from
// delaying the results of the short ones before it.
const flushDelay = time.Millisecond

// unbatched makes both ends write every frame on its own, one write system
// call per task each way: BenchmarkNoop's baseline for batched framing.
// Set only by tests, before any pool or child starts.
var unbatched bool

// Handler runs one task in a child. It appends the reply to dst (an empty
// slice the child reuses) and returns it. payload is a view into the child's
// read buffer, valid only until Handler returns.
//
// A Handler that panics kills its child: the parent reports the task lost
// (ErrChildLost, with the panic's first line). Handlers that want task
// failures reported as results recover panics themselves.
type Handler func(dst, payload []byte) []byte

// IsChild reports whether this process was started by a Pool as a child
// (EnvChild is set). A program that may run as a child checks it first
// thing in main and calls ServeChild.
func IsChild() bool {
	return os.Getenv(EnvChild) != ""
}

// childEnv is the parsed value of EnvChild.
type childEnv struct {
	in, out, progress int
	maxFrame          int
}

func (e childEnv) String() string {
	return fmt.Sprintf("1:%d:%d:%d:%d", e.in, e.out, e.progress, e.maxFrame)
}

func parseChildEnv(s string) (childEnv, error) {
	f := strings.Split(s, ":")
	if len(f) != 5 || f[0] != "1" {
		return childEnv{}, fmt.Errorf("%w: %s=%q", ErrNotChild, EnvChild, s)
	}
	var n [4]int
	for i := range n {
		v, err := strconv.Atoi(f[i+1])
		if err != nil || v < 0 || (i < 3 && v < 3) {
			return childEnv{}, fmt.Errorf("%w: %s=%q", ErrNotChild, EnvChild, s)
		}
		n[i] = v
	}
	return childEnv{in: n[0], out: n[1], progress: n[2], maxFrame: n[3]}, nil
}

// ServeChild is a child's main loop: it reads requests from the parent,
// runs h on each, in order, one at a time, and writes the replies back,
// batched. It returns nil when the parent closes the request pipe (the
// child is being recycled or the pool is stopping); the caller should then
// exit. Any other return is an error the caller should report and exit on.
//
// ServeChild ignores SIGINT: a Ctrl-C in a terminal reaches the whole
// process group, and the parent decides what it means (a warm shutdown lets
// running tasks finish). The pool's descriptors are marked close-on-exec so
// that programs a task starts do not inherit them.
func ServeChild(h Handler) error {
	env, err := parseChildEnv(os.Getenv(EnvChild))
	if err != nil {
		return err
	}
	os.Unsetenv(EnvChild)
	signal.Ignore(os.Interrupt)
	for _, fd := range []int{env.in, env.out, env.progress} {
		syscall.CloseOnExec(fd)
	}
	in := os.NewFile(uintptr(env.in), "prefork-requests")
	out := os.NewFile(uintptr(env.out), "prefork-replies")
	pg, err := mapProgress(env.progress)
	if err != nil {
		return err
	}
	_ = syscall.Close(env.progress) // the mapping outlives the descriptor
	err = serve(in, out, pg, env.maxFrame, h)
	// Not deferred: if h panics, the pipes stay open until the process
	// dies, so that the parent sees the exit status and the panic message.
	in.Close()
	out.Close()
	pg.close()
	return err
}

// serve runs the child protocol over in and out; pg may be nil.
func serve(in io.Reader, out io.Writer, pg *progress, maxFrame int, h Handler) (err error) {
	if h == nil {
		return errors.New("prefork: child: handler is nil")
	}
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	w := &replyWriter{w: out, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	if _, err := out.Write(hello[:]); err != nil {
		return fmt.Errorf("prefork: child: greet: %w", err)
	}
	flushed := make(chan struct{})
	go w.flusher(flushed)
	defer func() {
		// Runs during a panic too, before the process dies: replies of
		// tasks that finished are not lost with it.
		if ferr := w.close(); err == nil && ferr != nil {
			err = ferr
		}
		<-flushed
	}()

	r := &frameReader{br: bufio.NewReaderSize(in, bufSize), max: maxFrame}
	scratch := make([]byte, 0, 4096)
	var seq uint64
	for {
		payload, err := r.next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("prefork: child: read request: %w", err)
		}
		seq++
		if pg != nil {
			pg.start(seq)
		}
		reply := h(scratch[:0], payload)
		if pg != nil {
			pg.finish(seq)
		}
		if len(reply) > maxFrame {
			return fmt.Errorf("%w: reply of %d bytes exceeds the limit of %d", ErrFrameTooLarge, len(reply), maxFrame)
		}
		// Flush when the next read would block: the parent gets every
		// reply of a batch in one write, and nothing waits on a stalled pipe.
		if err := w.add(reply, unbatched || r.complete(1) == 0); err != nil {
			return err
		}
		if cap(reply) <= maxKeep {
			scratch = reply[:0]
		}
	}
}

// replyWriter batches a child's reply frames. The serving loop adds replies;
// a flusher goroutine writes out replies that have waited flushDelay while
// the loop is busy in a long task. Safe for concurrent use.
type replyWriter struct {
	mu   sync.Mutex
	w    io.Writer
	buf  []byte
	err  error
	kick chan struct{} // cap 1: the buffer went from empty to non-empty
	stop chan struct{}
}

// add appends a reply frame and writes the buffer out if flush is set or
// the buffer is full.
func (w *replyWriter) add(reply []byte, flush bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	idle := len(w.buf) == 0
	w.buf = appendFrame(w.buf, reply)
	if flush || len(w.buf) >= bufSize {
		return w.flushLocked()
	}
	if idle {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

func (w *replyWriter) flushLocked() error {
	if w.err != nil || len(w.buf) == 0 {
		return w.err
	}
	if _, err := w.w.Write(w.buf); err != nil {
		w.err = fmt.Errorf("prefork: child: write replies: %w", err)
	}
	if cap(w.buf) > maxKeep {
		w.buf = nil
	} else {
		w.buf = w.buf[:0]
	}
	return w.err
}

// flusher writes out replies that have waited flushDelay, until close.
func (w *replyWriter) flusher(done chan<- struct{}) {
	defer close(done)
	t := time.NewTimer(flushDelay)
	t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-w.kick:
		}
		t.Reset(flushDelay)
		select {
		case <-w.stop:
			t.Stop()
			return
		case <-t.C:
		}
		w.mu.Lock()
		_ = w.flushLocked() // a write error is kept for add to return
		w.mu.Unlock()
	}
}

// close writes out what is buffered and stops the flusher.
func (w *replyWriter) close() error {
	w.mu.Lock()
	err := w.flushLocked()
	w.mu.Unlock()
	close(w.stop)
	return err
}
