// Package cli is the servicekit command line: `serve`, `migrate`, and a
// client for the API. A program that registers its own task functions
// reuses it whole, so "your binary = servicekit + your functions":
//
//	func main() {
//		task.MustRegister("greet_user", greet)
//		cli.Main(servicekit.Info{DisplayName: "My Tasks"})
//	}
package cli

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/servicekit/servicekit"
)

// NewRootCommand returns the servicekit command tree.
func NewRootCommand(info servicekit.Info) *cobra.Command {
	root := &cobra.Command{
		Use:           "servicekit",
		Short:         "Run tasks — Go functions and shell commands — as durable jobs behind a REST API",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       servicekit.Version,
	}
	root.AddCommand(newServeCommand(info), newMigrateCommand())
	addClientCommands(root)
	return root
}

// Main runs the command line and exits with its status.
func Main(info servicekit.Info) {
	err := NewRootCommand(info).ExecuteContext(context.Background())
	if err == nil {
		os.Exit(0)
	}
	code := 1
	if e, ok := err.(interface{ ExitCode() int }); ok {
		code = e.ExitCode()
	} else {
		fmt.Fprintln(os.Stderr, "servicekit:", err)
	}
	os.Exit(code)
}
