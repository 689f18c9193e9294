package cli

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"

	"github.com/hbollon/go-edlib"

	"github.com/servicekit/servicekit/task"
)

// functionLike matches a command that reads as a function name rather than
// a shell command line: one identifier, no spaces, paths or options.
var functionLike = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkFunctionName refuses a command that looks like a function name but
// names no function registered on the server. The server would silently
// make it a shell task, which fails at run time with "command not found" —
// for `greet_usr` that is a typo found far too late. The refusal names the
// nearest registered function, and --type says what to do when a shell
// command was meant. A one-word command that is close to no function and is
// a program on this machine's PATH (uptime, true, date) is taken as the
// shell command it most likely is.
func (c *apiClient) checkFunctionName(ctx context.Context, command string) error {
	if !functionLike.MatchString(command) {
		return nil
	}
	var fns []task.FunctionInfo
	if _, err := c.get(ctx, "/api/v1/tasks/$functions", nil, &fns); err != nil {
		return err
	}
	names := make([]string, len(fns))
	for i, fn := range fns {
		if fn.Name == command {
			return nil
		}
		names[i] = fn.Name
	}
	near := nearest(command, names)
	if _, err := exec.LookPath(command); err == nil && near == "" {
		return nil
	}
	msg := fmt.Sprintf("no function %q is registered on the server", command)
	switch {
	case near != "":
		msg += fmt.Sprintf(" (did you mean %s?)", near)
	case len(names) == 0:
		msg += " (it has none)"
	}
	return usagef("%s; for the shell command %q give --type shell, or --type function for a function the server will register later", msg, command)
}

// nearest is the name closest to typed by edit distance, if it is close
// enough to be a likely typo: at most a third of the typed name's letters
// off (and at least 2 allowed, for short names).
func nearest(typed string, names []string) string {
	best, bestDist := "", max(2, len(typed)/3)+1
	for _, n := range names {
		if d := edlib.LevenshteinDistance(typed, n); d < bestDist {
			best, bestDist = n, d
		}
	}
	return best
}
