// Command task_execution is the Go version of servicekit's "Task Execution"
// guide: a service that registers a handful of Go functions as tasks —
// simple ones, ones that take parameters, ones that get the database and
// the artifact manager injected, a file-processing one, a long-running one
// that reports progress, and two that show how errors surface — and then
// runs the stock servicekit command line around them.
//
// Because main only calls cli.Main, the binary is "servicekit plus these
// functions": `go run ./examples/task_execution serve` takes exactly the
// flags and SERVICEKIT_* variables of `servicekit serve`, and every other
// subcommand of the servicekit command line is there as well. See README.md
// for a curl walk-through.
package main

import (
	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/cli"
)

// info names the service in GET /api/v1/info. It is a package variable so
// the tests build the command tree exactly as main does.
var info = servicekit.Info{
	DisplayName: "Task Service",
	Summary:     "Go functions run as durable jobs (servicekit task execution example)",
}

func main() {
	// The functions are already in task.Default: functions.go registers
	// them from init, which runs before main.
	cli.Main(info)
}
