// Command sluice is a log aggregator that runs Fluentd configurations.
package main

import (
	"os"

	"github.com/sluice-log/sluice/internal/cli"
	_ "github.com/sluice-log/sluice/internal/plugins/all"
)

func main() { os.Exit(cli.Main(os.Args[1:], os.Stdout, os.Stderr)) }
