package memory

import (
	"testing"
	"unsafe"
)

// cacheLine is the size of a cache line on amd64 and arm64 (most cores).
const cacheLine = 64

// TestQueueLayout checks what queue's layout is for (see queue): what a
// publish and a take write under mu shares mu's cache line, the fields
// read before mu is taken are on another, and a queue starts on a line.
func TestQueueLayout(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("the layout is sized for 64-bit platforms")
	}
	var q queue
	line := func(off uintptr) uintptr { return off / cacheLine }
	mu := line(unsafe.Offsetof(q.mu))
	hot := map[string]uintptr{
		"filled":          unsafe.Offsetof(q.filled),
		"n":               unsafe.Offsetof(q.n),
		"staged":          unsafe.Offsetof(q.staged),
		"levels[0] start": unsafe.Offsetof(q.levels),
		"levels[0] end":   unsafe.Offsetof(q.levels) + unsafe.Sizeof(q.levels[0]) - 1,
	}
	for name, off := range hot {
		if line(off) != mu {
			t.Errorf("%s at offset %d is not on mu's line (mu at %d)", name, off, unsafe.Offsetof(q.mu))
		}
	}
	for name, off := range map[string]uintptr{"name": unsafe.Offsetof(q.name), "max": unsafe.Offsetof(q.max)} {
		if line(off) == mu {
			t.Errorf("%s at offset %d shares mu's line", name, off)
		}
	}
	b := NewBroker()
	defer b.Close()
	for _, name := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i"} {
		if p := uintptr(unsafe.Pointer(b.queue([]byte(name)))); p%cacheLine != 0 {
			t.Errorf("queue %q at %#x does not start on a cache line (size %d)", name, p, unsafe.Sizeof(q))
		}
	}
}
