// Package interoptest holds what the interop tests of several packages
// share: the Go versions of the Python interop app's tasks
// (RegisterTasks), and helpers that run the real Python Celery worker
// (Worker) and Python scripts (Script).
package interoptest
