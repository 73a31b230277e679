// Command celerity is the celerity CLI: demo, worker, beat, call, result,
// purge, inspect, control, status, events and bench (`celerity` alone lists
// them).
//
// All logic lives in package cli, so that a service can build its own
// worker binary with its tasks registered (see cli.Options.Setup).
package main
