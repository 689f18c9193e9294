// Package cli is the servicekit command line: `serve`, `migrate`, and a
// client for the API. A program that registers its own task functions
// reuses it whole, so "your binary = servicekit + your functions":
//
//	func main() {
//		task.MustRegister("greet_user", greet)
//		cli.Main(servicekit.Info{DisplayName: "My Tasks"})
//	}
//
// Exit statuses are distinct so scripts can act on them without reading
// messages: 0 success; 1 the job failed (a failed shell job exits with its
// own code instead); 2 a usage error, or the server refused the request
// (its problem detail is printed as one line, `title: detail`); 3 the
// server cannot be reached; 130 interrupted by Ctrl-C. See the Exit*
// constants.
//
// Output follows one rule: stdout carries data (tables, -o json, a followed
// job's own stdout), stderr carries what servicekit says about it (the job
// id, attempts, the final status line, errors), so pipes see only data.
package cli

import (
	"context"
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

// Main runs the command line and exits with its status (see the Exit*
// constants). The first Ctrl-C cancels the command's context, so a
// followed job can be canceled on the way out; a second one kills at once.
func Main(info servicekit.Info) {
	ctx, stop := withInterrupt(context.Background())
	code, _ := execute(ctx, NewRootCommand(info))
	stop()
	os.Exit(code)
}
