//go:build !unix

package control

// rusage: not available on this system, as Celery reports it.
func rusage() any { return "N/A" }
