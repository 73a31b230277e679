//go:build !amd64

package prefetch

import "unsafe"

// Lines does nothing on this architecture (see the package doc).
func Lines(p unsafe.Pointer, n int) {}
