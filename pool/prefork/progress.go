package prefork

import (
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// progressSize is the size of a progress page.
const progressSize = 4096

// progress is a page of memory shared by the parent and one child (a memfd
// mapped by both). The child stores how many tasks it has started and how
// many it has finished, in that order, around each handler call: two atomic
// stores per task, no system call. The parent reads them only when it must
// know what the child is doing: when a hard limit fires (is the task still
// running, or is its reply on the way?) and when the child dies (which of
// the tasks it was sent finished, which one was running, which never
// started).
//
// The counters are a child's claim; the parent clamps them to what it sent.
// A progress value is safe for concurrent use.
type progress struct {
	mem []byte
}

// newProgress creates a page and returns it with the file to pass to the
// child. The caller closes the file once the child has started.
func newProgress() (*progress, *os.File, error) {
	fd, err := unix.MemfdCreate("celerity-prefork", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, nil, fmt.Errorf("prefork: progress page: memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "celerity-prefork-progress")
	if err := f.Truncate(progressSize); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("prefork: progress page: %w", err)
	}
	pg, err := mapProgress(fd)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return pg, f, nil
}

// mapProgress maps the page behind fd.
func mapProgress(fd int) (*progress, error) {
	mem, err := unix.Mmap(fd, 0, progressSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("prefork: progress page: mmap: %w", err)
	}
	return &progress{mem: mem}, nil
}

// word returns the i-th 8-byte counter of the page. The page is
// page-aligned, so every word is aligned for atomic access.
func (p *progress) word(i int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&p.mem[8*i]))
}

// start records that the child has begun its seq-th task.
func (p *progress) start(seq uint64) { p.word(0).Store(seq) }

// finish records that the handler of the child's seq-th task has returned.
func (p *progress) finish(seq uint64) { p.word(1).Store(seq) }

// started returns the number of tasks the child has begun.
func (p *progress) started() uint64 { return p.word(0).Load() }

// finished returns the number of tasks whose handler has returned.
func (p *progress) finished() uint64 { return p.word(1).Load() }

// close unmaps the page. The page must not be used afterwards.
func (p *progress) close() error {
	return unix.Munmap(p.mem)
}
