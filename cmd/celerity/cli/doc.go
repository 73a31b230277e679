// Package cli implements the celerity command line (the commands table in
// cli.go): demo, worker, beat, call, result, purge, inspect, control,
// status, events and bench. cmd/celerity is a thin main around Main.
//
// A Go service that wants `celerity worker` to run its own tasks builds its
// own binary: a main that calls Main with Options.Setup registering the
// tasks on the app the command creates.
package cli
