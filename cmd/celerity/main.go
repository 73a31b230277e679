// Command celerity is the celerity CLI: worker, call, result, purge, demo.
// All logic lives in package cli, so that a service can build its own
// worker binary with its tasks registered (see cli.Options.Setup).
package main

import (
	"os"

	"github.com/celerity-go/celerity/cmd/celerity/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Options{Stdout: os.Stdout, Stderr: os.Stderr}))
}
