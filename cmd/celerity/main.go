package main

import (
	"os"

	"github.com/celerity-go/celerity/cmd/celerity/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], cli.Options{Stdout: os.Stdout, Stderr: os.Stderr}))
}
