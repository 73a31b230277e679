package prefetch

import (
	"testing"
	"unsafe"
)

// Lines returns for live memory and for none (n <= 0).
func TestLines(t *testing.T) {
	buf := make([]byte, 4096)
	Lines(unsafe.Pointer(&buf[0]), len(buf)/64)
	Lines(nil, 0)
	Lines(nil, -1)
}
