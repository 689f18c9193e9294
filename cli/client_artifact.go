package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
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
		RunE:  groupRunE,
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
			labels := namedLevels(&root)
			if labels {
				fmt.Fprintln(tw, "ID\tLEVEL\tLABEL\tCREATED")
			} else {
				fmt.Fprintln(tw, "ID\tLEVEL\tCREATED")
			}
			printTree(tw, &root, 0, labels)
			return tw.Flush()
		}),
	}
}

// printTree writes one row per node, depth-first, the id indented by its
// depth below the root so the nesting reads at a glance. The LABEL column
// is there only when labels is set.
func printTree(w io.Writer, n *artifact.TreeNode, depth int, labels bool) {
	label := ""
	if labels {
		label = n.LevelLabel + "\t"
	}
	fmt.Fprintf(w, "%s%s\t%d\t%s%s\n", strings.Repeat("  ", depth), n.ID, n.Level, label, when(&n.CreatedAt))
	for _, child := range n.Children {
		printTree(w, child, depth+1, labels)
	}
}

// namedLevels reports whether any node's level label says more than its
// level: with no hierarchy labels configured every label is "level_<n>",
// and a LABEL column would only repeat LEVEL.
func namedLevels(n *artifact.TreeNode) bool {
	if n.LevelLabel != "level_"+strconv.Itoa(n.Level) {
		return true
	}
	for _, child := range n.Children {
		if namedLevels(child) {
			return true
		}
	}
	return false
}
