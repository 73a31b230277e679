package prefetch

import "unsafe"

// Lines asks for the n cache lines (64 bytes each) from p on. p need not
// point at live memory: a prefetch neither faults nor keeps anything
// alive.
func Lines(p unsafe.Pointer, n int) { lines(p, n) }

//go:noescape
func lines(p unsafe.Pointer, n int)
