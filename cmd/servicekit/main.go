// Command servicekit is the servicekit server and its command-line client.
package main

import (
	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/cli"
)

func main() {
	cli.Main(servicekit.Info{DisplayName: "servicekit", Summary: "Tasks as durable jobs over a REST API"})
}
