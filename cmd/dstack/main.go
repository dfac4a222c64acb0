// Command dstack is the dstack CLI and server in one binary.
package main

import (
	"os"

	"github.com/dstackgo/dstack/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
