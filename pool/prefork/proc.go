package prefork

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/celerity-go/celerity/timelimit"
)

// slot is one unit of the pool's concurrency: a goroutine that starts a
// child, serves it until it exits, and starts the next, until the slot is
// removed (Resize) or the pool stops.
type slot struct {
	id      int
	removed bool          // guarded by Pool.mu
	child   *child        // current child; guarded by Pool.mu
	wake    chan struct{} // cap 1: interrupts a back-off
	first   chan error    // Start waits for the first child's greeting; nil otherwise
}

func (s *slot) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// child is one child process and the parent's view of it.
//
// The tasks sent to it live in ring, indexed by their 1-based sequence
// number within the child; the counters obey
// answered <= encoded <= assigned <= answered+len(ring) and are guarded by
// Pool.mu:
//   - assigned: tasks given to the child;
//   - encoded: tasks whose frames the writer has copied out of their
//     payloads (a reply beyond it is a protocol violation);
//   - answered: tasks whose reply has been read.
type child struct {
	p    *Pool
	slot *slot
	cmd  *exec.Cmd
	pid  int
	reqW *os.File // request pipe, parent's end; the writer closes it
	repR *os.File // reply pipe, parent's end
	prog *progress
	rss  *os.File // /proc/<pid>/statm; nil without MaxMemoryPerChild
	errs *tail    // last lines of stderr; nil if Command set Stderr

	ring                        []task
	assigned, encoded, answered uint64
	ready, retiring             bool
	listed                      bool // in Pool.hungry
	prev, next                  *child
	h                           timelimit.Handle // hard limit of the head task

	timed     atomic.Uint64          // sequence number the tracker times
	killedSeq atomic.Uint64          // task killed at its hard limit
	reason    atomic.Pointer[string] // why the parent killed the child

	kick  chan struct{} // cap 1: work for the writer
	quit  chan struct{} // closed when the writer must exit
	wdone chan struct{} // closed when the writer has exited
	batch []task        // reader's scratch: tasks answered in one batch
}

func (c *child) hasRoomLocked() bool {
	return c.ready && !c.retiring && c.assigned-c.answered < uint64(len(c.ring))
}

func (c *child) kickWriter() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// trackHeadLocked starts the hard-limit clock of the oldest unanswered task
// and tells its Started function. Pool.mu is held and the previous handle
// is done.
func (c *child) trackHeadLocked() {
	seq := c.answered + 1
	t := &c.ring[(seq-1)%uint64(len(c.ring))]
	if t.req.Started != nil {
		t.req.Started()
	}
	if t.req.HardLimit <= 0 {
		return
	}
	c.timed.Store(seq)
	c.h = c.p.tracker.Track(timelimit.Limits{Hard: t.req.HardLimit}, c)
}

// TimeLimitExceeded implements timelimit.Target: the timed task reached its
// hard limit. If the child has finished it, its reply is on the way and
// nothing happens; otherwise the child is killed and the reader fails the
// task with ErrTimeLimitExceeded.
func (c *child) TimeLimitExceeded(l timelimit.Limit) {
	if l != timelimit.Hard {
		return
	}
	seq := c.timed.Load()
	if c.prog.finished() >= seq {
		return
	}
	c.killedSeq.Store(seq)
	c.kill("hard time limit")
}

// kill sends SIGKILL; the first non-empty reason is kept for the report.
func (c *child) kill(reason string) {
	if reason != "" {
		c.reason.CompareAndSwap(nil, &reason)
	}
	_ = c.cmd.Process.Kill() // fails only if the child is already reaped
}

// spawnReq asks the spawner to start a command.
type spawnReq struct {
	cmd *exec.Cmd
	res chan error
}

// spawner starts every child from one goroutine locked to its OS thread.
// Pdeathsig fires when the thread that started a child exits, not the
// process; a thread that never exits while children live keeps it meaning
// "the parent died". The goroutine ends (and its thread with it) after
// Stop has reaped every child.
func (p *Pool) spawner() {
	runtime.LockOSThread()
	for r := range p.spawnCh {
		r.res <- r.cmd.Start()
	}
}

// runSlot is a slot's goroutine.
func (p *Pool) runSlot(s *slot) {
	defer p.slotsWG.Done()
	failures := 0
	for {
		p.mu.Lock()
		removed, running := s.removed, p.state == stateRunning
		p.mu.Unlock()
		if removed || !running {
			if s.first != nil {
				if running {
					s.first <- nil // removed by Resize before its first child
				} else {
					s.first <- ErrStopped
				}
			}
			return
		}
		greeted, err := p.runChild(s)
		if s.first != nil {
			s.first <- err
			s.first = nil
		}
		if greeted {
			failures = 0
			continue
		}
		failures++
		wait := backoff(failures)
		p.log.Error("prefork: cannot start child", "slot", s.id, "err", err, "attempt", failures, "retry_in", wait)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-s.wake:
		case <-p.stopCh:
		}
		t.Stop()
	}
}

// backoff is the wait before the n-th retry of a failing spawn.
func backoff(n int) time.Duration {
	return min(50*time.Millisecond<<min(n-1, 10), 5*time.Second)
}

// runChild starts one child in s, serves it until it exits and accounts
// for its tasks. It reports whether the child greeted the parent (if not,
// err says why).
func (p *Pool) runChild(s *slot) (greeted bool, err error) {
	c, err := p.spawn(s)
	if err != nil {
		return false, err
	}
	timer := time.AfterFunc(p.cfg.StartTimeout, func() { c.kill("no greeting within StartTimeout") })
	br := acquireReader(c.repR)
	defer releaseReader(br)
	var got [len(hello)]byte
	_, err = io.ReadFull(br, got[:])
	timer.Stop()
	if err == nil && got != hello {
		err = fmt.Errorf("%w: child %d greeted with %q, want %q (does Command run a program that calls ServeChild?)", ErrMalformedFrame, c.pid, got[:], hello[:])
	}
	if err != nil {
		what := err.Error()
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			what, err = "exited before greeting", io.EOF
		}
		lost := p.reap(c, err)
		return false, fmt.Errorf("prefork: child %d %s: %w", c.pid, what, lost)
	}

	if s.first != nil {
		s.first <- nil
		s.first = nil
	}
	p.mu.Lock()
	c.ready = true
	if c.hasRoomLocked() {
		p.hungry.pushBack(c)
		p.dispatchLocked()
	}
	p.unlockSettlingSkipped()

	fr := &frameReader{br: br, max: p.cfg.MaxFrame}
	p.reap(c, p.readReplies(c, fr))
	return true, nil
}

// spawn starts a child for s and registers it.
func (p *Pool) spawn(s *slot) (*child, error) {
	cmd := p.cfg.Command()
	if cmd == nil {
		return nil, errors.New("prefork: Config.Command returned nil")
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("prefork: spawn: %w", err)
	}
	repR, repW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, fmt.Errorf("prefork: spawn: %w", err)
	}
	prog, progFile, err := newProgress()
	if err != nil {
		reqR.Close()
		reqW.Close()
		repR.Close()
		repW.Close()
		return nil, err
	}
	base := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, reqR, repW, progFile)
	env := childEnv{in: base, out: base + 1, progress: base + 2, maxFrame: p.cfg.MaxFrame}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	cmd.Env = append(cmd.Env, EnvChild+"="+env.String())
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	if cmd.SysProcAttr.Pdeathsig == 0 {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if cmd.Stdout == nil {
		cmd.Stdout = os.Stdout
	}
	var errs *tail
	if cmd.Stderr == nil {
		errs = &tail{w: p.cfg.Stderr}
		cmd.Stderr = errs
		if cmd.WaitDelay == 0 {
			cmd.WaitDelay = time.Second // a grandchild holding stderr open must not hang Wait
		}
	}

	res := make(chan error, 1)
	p.spawnCh <- spawnReq{cmd: cmd, res: res}
	err = <-res
	reqR.Close()
	repW.Close()
	progFile.Close()
	if err != nil {
		reqW.Close()
		repR.Close()
		prog.close()
		return nil, fmt.Errorf("prefork: spawn: %w", err)
	}

	c := &child{
		p: p, slot: s, cmd: cmd, pid: cmd.Process.Pid, reqW: reqW, repR: repR, prog: prog, errs: errs,
		ring: make([]task, p.cfg.PipelineDepth),
		kick: make(chan struct{}, 1), quit: make(chan struct{}), wdone: make(chan struct{}),
	}
	if p.cfg.MaxMemoryPerChild > 0 {
		if c.rss, err = os.Open("/proc/" + strconv.Itoa(c.pid) + "/statm"); err != nil {
			p.log.Warn("prefork: cannot watch child memory", "pid", c.pid, "err", err)
		}
	}
	p.mu.Lock()
	s.child = c
	p.children[c] = struct{}{}
	p.stats.Spawned++
	if s.removed || p.state != stateRunning {
		c.retiring = true
		c.kickWriter() // the writer closes the request pipe at once
	}
	if p.hard {
		c.kill("pool stopped")
	}
	p.mu.Unlock()
	go c.writeLoop()
	return c, nil
}

// exitGrace is how long a child that closed its reply pipe unasked may take
// to exit before it is killed.
const exitGrace = 5 * time.Second

// maxBatch bounds the replies handled under one lock.
const maxBatch = 256

// readReplies reads reply batches from c until the pipe ends or breaks.
func (p *Pool) readReplies(c *child, fr *frameReader) error {
	for {
		payload, err := fr.next()
		if err != nil {
			return err
		}
		k := 1 + fr.complete(maxBatch-1)
		var rss int64
		if c.rss != nil {
			rss = residentKiB(c.rss)
		}

		p.mu.Lock()
		if c.answered+uint64(k) > c.encoded {
			p.mu.Unlock()
			return fmt.Errorf("%w: %d replies for %d outstanding tasks", ErrMalformedFrame, k, c.encoded-c.answered)
		}
		c.h.Done() // after it, the head's limit cannot fire any more
		c.h = timelimit.Handle{}
		killed := c.killedSeq.Load()
		first := c.answered + 1
		batch := c.batch[:0]
		for range k {
			i := c.answered % uint64(len(c.ring))
			batch = append(batch, c.ring[i])
			c.ring[i] = task{}
			c.answered++
		}
		c.batch = batch
		p.load -= k
		if rss > p.cfg.MaxMemoryPerChild && c.rss != nil && !c.retiring {
			p.log.Info("prefork: recycling child over its memory limit", "pid", c.pid, "rss_kib", rss, "limit_kib", p.cfg.MaxMemoryPerChild)
			p.stats.Recycled++
			p.retireLocked(c)
		}
		if c.answered < c.assigned {
			c.trackHeadLocked()
		}
		if c.hasRoomLocked() {
			for p.queue.n > 0 && c.hasRoomLocked() {
				p.assignLocked(c)
			}
			if c.hasRoomLocked() {
				p.hungry.pushBack(c)
			}
		}
		p.unlockSettlingSkipped()

		for i := range batch {
			if i > 0 {
				if payload, err = fr.next(); err != nil {
					// Cannot happen (complete counted the frame); if it
					// did, every task must still get its call.
					for j := i; j < len(batch); j++ {
						batch[j].done(Result{Err: fmt.Errorf("%w: reading its reply: %v", ErrChildLost, err)})
						batch[j] = task{}
					}
					return err
				}
			}
			var res Result
			if seq := first + uint64(i); seq == killed {
				res.Err = fmt.Errorf("%w (hard limit %v; child %d killed)", ErrTimeLimitExceeded, batch[i].req.HardLimit, c.pid)
			} else {
				res.Payload = payload
			}
			batch[i].done(res)
			batch[i] = task{}
		}
	}
}

// residentKiB returns the resident memory (VmRSS) in KiB that statm, an
// open /proc/<pid>/statm, reports now, or 0 if it cannot be read. One
// pread: reading a seq_file at offset 0 regenerates it.
func residentKiB(statm *os.File) int64 {
	var buf [128]byte
	n, err := statm.ReadAt(buf[:], 0)
	if n == 0 && err != nil {
		return 0
	}
	return parseStatm(buf[:n])
}

// parseStatm returns the resident field of a statm line ("size resident
// shared text lib data dt", in pages) in KiB, or 0 if it is not one.
func parseStatm(b []byte) int64 {
	_, rest, ok := bytes.Cut(b, []byte{' '})
	if !ok {
		return 0
	}
	var pages int64
	for _, ch := range rest {
		if ch < '0' || ch > '9' {
			break
		}
		pages = pages*10 + int64(ch-'0')
		if pages > 1<<40 {
			return 0
		}
	}
	return pages * int64(pageSize) / 1024
}

var pageSize = os.Getpagesize()

// reap waits for c to exit after its reply pipe ended (readErr says how),
// settles every task it held and unregisters it. It returns the error
// describing the child's end, nil for an orderly exit.
func (p *Pool) reap(c *child, readErr error) error {
	p.mu.Lock()
	orderly := readErr == io.EOF && c.retiring && c.answered == c.assigned
	p.mu.Unlock()
	var grace *time.Timer
	switch {
	case orderly:
	case readErr == io.EOF:
		// The child closed its end: it is probably exiting (a panic is
		// printed after deferred calls ran). Let it finish, within reason.
		grace = time.AfterFunc(exitGrace, func() { c.kill("did not exit after closing its reply pipe") })
	default:
		c.kill(readErr.Error())
	}
	waitErr := c.cmd.Wait()
	if grace != nil {
		grace.Stop()
	}
	close(c.quit)
	c.reqW.Close() // unblocks a writer stuck on a full pipe
	<-c.wdone
	c.repR.Close()
	if c.rss != nil {
		c.rss.Close()
	}

	var lost error
	switch {
	case !orderly:
		lost = c.describe(waitErr)
		if c.killedSeq.Load() != 0 {
			p.log.Warn("prefork: child killed at a task's hard time limit", "pid", c.pid)
		} else {
			p.log.Warn("prefork: child lost", "pid", c.pid, "err", lost)
		}
	case waitErr != nil:
		p.log.Warn("prefork: retired child exited badly", "pid", c.pid, "err", waitErr)
	default:
		p.log.Debug("prefork: child retired", "pid", c.pid)
	}

	var failed []Result
	var tasks []task
	p.mu.Lock()
	c.retiring = true // never again in Pool.hungry
	c.h.Done()
	c.h = timelimit.Handle{}
	started := min(max(c.prog.started(), c.answered), c.encoded)
	finished := min(max(c.prog.finished(), c.answered), started)
	requeue := p.state == stateRunning && !p.hard
	for seq := c.assigned; seq > c.answered; seq-- {
		i := (seq - 1) % uint64(len(c.ring))
		t := c.ring[i]
		c.ring[i] = task{}
		var err error
		switch {
		case seq <= finished:
			err = fmt.Errorf("%w: the task finished but its reply died with the child: %v", ErrChildLost, lost)
		case seq == started && seq == c.killedSeq.Load():
			err = fmt.Errorf("%w (hard limit %v; child %d killed)", ErrTimeLimitExceeded, t.req.HardLimit, c.pid)
		case seq == started:
			err = lost
		case requeue:
			p.queue.pushFront(t) // never started: another child runs it
			continue
		default:
			err = ErrStopped
		}
		tasks = append(tasks, t)
		failed = append(failed, Result{Err: err})
		p.load--
	}
	c.answered = c.assigned
	switch {
	case c.killedSeq.Load() != 0:
		p.stats.TimeLimit++
	case !orderly:
		p.stats.Lost++
	}
	p.hungry.remove(c)
	delete(p.children, c)
	if c.slot.child == c {
		c.slot.child = nil
	}
	p.dispatchLocked()
	p.unlockSettlingSkipped()
	c.prog.close()

	for i := len(tasks) - 1; i >= 0; i-- { // oldest first
		tasks[i].done(failed[i])
	}
	return lost
}

// describe explains an unexpected end of c.
func (c *child) describe(waitErr error) error {
	status := "exited"
	if ps := c.cmd.ProcessState; ps != nil {
		status = ps.String()
	} else if waitErr != nil {
		status = waitErr.Error()
	}
	msg := fmt.Sprintf("child %d: %s", c.pid, status)
	if r := c.reason.Load(); r != nil {
		msg += " (killed: " + *r + ")"
	}
	if c.errs != nil {
		if line := c.errs.cause(); line != "" {
			msg += ": " + line
		}
	}
	return fmt.Errorf("%w: %s", ErrChildLost, msg)
}

// writeLoop is c's writer goroutine: it writes assigned tasks to the
// request pipe, as many per write as are waiting, and closes the pipe when
// the child retires.
func (c *child) writeLoop() {
	defer close(c.wdone)
	p := c.p
	bp := acquireWriteBuf()
	defer releaseWriteBuf(bp)
	buf := (*bp)[:0]
	depth := uint64(len(c.ring))
	for {
		select {
		case <-c.kick:
		case <-c.quit:
			return
		}
		p.mu.Lock()
		from, to, closing := c.encoded, c.assigned, c.retiring
		p.mu.Unlock()
		for seq := from + 1; seq <= to; seq++ {
			pl := c.ring[(seq-1)%depth].req.Payload
			buf = appendHeader(buf, len(pl))
			for len(pl) > 0 {
				if len(buf) >= bufSize {
					if !c.flush(buf, seq-1) {
						return
					}
					buf = buf[:0]
				}
				n := min(bufSize-len(buf), len(pl))
				buf = append(buf, pl[:n]...)
				pl = pl[n:]
			}
			if unbatched {
				if !c.flush(buf, seq) {
					return
				}
				buf = buf[:0]
			}
		}
		if len(buf) > 0 && !c.flush(buf, to) {
			return
		}
		buf = buf[:0]
		if closing {
			c.reqW.Close() // EOF: the child finishes what it holds and exits
			return
		}
	}
}

// flush publishes that tasks up to encoded no longer need their payloads,
// then writes buf. It reports whether the write succeeded.
func (c *child) flush(buf []byte, encoded uint64) bool {
	c.p.mu.Lock()
	c.encoded = max(c.encoded, encoded)
	c.p.mu.Unlock()
	_, err := c.reqW.Write(buf)
	return err == nil // the reader sees the child's end and reaps it
}

// appendHeader appends a frame header for an n-byte payload.
func appendHeader(dst []byte, n int) []byte {
	return append(dst, byte(n), byte(n>>8), byte(n>>16), byte(n>>24))
}

var readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, bufSize) }}

func acquireReader(r io.Reader) *bufio.Reader {
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}

func releaseReader(br *bufio.Reader) {
	br.Reset(nil)
	readerPool.Put(br)
}

var writeBufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, bufSize+headerLen)
	return &b
}}

func acquireWriteBuf() *[]byte { return writeBufPool.Get().(*[]byte) }

func releaseWriteBuf(b *[]byte) {
	if cap(*b) > maxKeep {
		return
	}
	*b = (*b)[:0]
	writeBufPool.Put(b)
}

// tail forwards a child's stderr and keeps its last bytes, to explain the
// child's death. Safe for concurrent use.
type tail struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

const tailKeep = 8 << 10

func (t *tail) Write(b []byte) (int, error) {
	_, _ = t.w.Write(b) // the child's stderr must not fail because ours does
	t.mu.Lock()
	t.buf = append(t.buf, b...)
	if len(t.buf) > tailKeep {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-tailKeep:]...)
	}
	t.mu.Unlock()
	return len(b), nil
}

// cause returns the line that best explains a death: the last "panic:" or
// "fatal error:" line, else the last non-empty line.
func (t *tail) cause() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var last, panicLine []byte
	for _, line := range bytes.Split(t.buf, []byte{'\n'}) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		last = line
		if bytes.HasPrefix(line, []byte("panic: ")) || bytes.HasPrefix(line, []byte("fatal error: ")) {
			panicLine = line
		}
	}
	if panicLine != nil {
		last = panicLine
	}
	if len(last) > 300 {
		last = last[:300]
	}
	return string(last)
}
