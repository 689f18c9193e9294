package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/servicekit/servicekit/artifact"
)

// newArtifactCommand is `servicekit artifact`: reading the stored results
// that finished jobs (and programs) left behind.
func newArtifactCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "artifact",
		Short: "Read artifacts (stored job results) on a servicekit server",
	}
	f.register(cmd)
	cmd.AddCommand(newArtifactGetCommand(&f), newArtifactTreeCommand(&f))
	return cmd
}

func newArtifactGetCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show an artifact with its data",
		Args:  cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var a artifact.Artifact
			data, err := c.get(cmd.Context(), "/api/v1/artifacts/"+pathID(args[0]), nil, &a)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(data)
			}
			tw := c.table()
			fmt.Fprintf(tw, "ID:\t%s\n", a.ID)
			if a.ParentID != nil {
				fmt.Fprintf(tw, "Parent:\t%s\n", *a.ParentID)
			}
			fmt.Fprintf(tw, "Level:\t%d\n", a.Level)
			fmt.Fprintf(tw, "Created:\t%s\n", when(&a.CreatedAt))
			fmt.Fprintf(tw, "Updated:\t%s\n", when(&a.UpdatedAt))
			if err := tw.Flush(); err != nil {
				return err
			}
			// The data is free-form and often large (a job's whole output),
			// so it goes below the fields, indented, not into a cell.
			var buf bytes.Buffer
			if err := json.Indent(&buf, a.Data, "  ", "  "); err != nil {
				return fmt.Errorf("unexpected answer from the server: %w", err)
			}
			_, err = fmt.Fprintf(c.out, "Data:\n  %s\n", buf.String())
			return err
		}),
	}
}

func newArtifactTreeCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "tree ID",
		Short: "Show an artifact and all its descendants as a tree",
		Args:  cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var root artifact.TreeNode
			data, err := c.get(cmd.Context(), "/api/v1/artifacts/"+pathID(args[0])+"/$tree", nil, &root)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(data)
			}
			tw := c.table()
			fmt.Fprintln(tw, "ID\tLEVEL\tLABEL\tCREATED")
			printTree(tw, &root, 0)
			return tw.Flush()
		}),
	}
}

// printTree writes one row per node, depth-first, the id indented by its
// depth below the root so the nesting reads at a glance.
func printTree(w io.Writer, n *artifact.TreeNode, depth int) {
	fmt.Fprintf(w, "%s%s\t%d\t%s\t%s\n", strings.Repeat("  ", depth), n.ID, n.Level, n.LevelLabel, when(&n.CreatedAt))
	for _, child := range n.Children {
		printTree(w, child, depth+1)
	}
}
