// Command servicekit is the servicekit server and its command-line client.
package main

import (
	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/cli"
)

func main() {
	cli.Main(servicekit.Info{DisplayName: "servicekit", Summary: "Tasks as durable jobs over a REST API",
		Description: "Runs shell commands and registered Go functions as durable jobs: create a task, $execute it, " +
			"follow the job's status and output over $stream, read the result from its artifact. " +
			"The API is described at /openapi.json and /docs; the console is at /."})
}
