// Package cli implements the celerity command line: worker, call, result,
// purge and demo. cmd/celerity is a thin main around Main.
//
// A Go service that wants `celerity worker` to run its own tasks builds its
// own binary: a main that calls Main with Options.Setup registering the
// tasks on the app the command creates.
package cli
