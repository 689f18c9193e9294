package cli

import "github.com/spf13/cobra"

// addClientCommands adds the API client commands (task, job, artifact).
func addClientCommands(root *cobra.Command) {}
