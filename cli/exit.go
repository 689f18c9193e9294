package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"

	"github.com/spf13/cobra"
)

// Exit statuses of the command line. They are distinct so that a script can
// tell "the job failed" from "I typed it wrong" from "the server is down"
// without parsing messages. A failed shell job exits with its own code
// instead of ExitJobFailed, so `servicekit task run ID --wait` can stand in
// for the command itself.
const (
	ExitOK          = 0   // the command did what it was asked
	ExitJobFailed   = 1   // the job failed or was canceled; also any error not listed below
	ExitUsage       = 2   // a usage error, or the server refused the request (a problem answer)
	ExitUnreachable = 3   // the server could not be reached, or the connection was lost
	ExitInterrupted = 130 // Ctrl-C (128 + SIGINT, as a shell reports a process killed by it)
)

// errInterrupted is the cause of the command's context when the user
// pressed Ctrl-C. Commands tell it apart from a timeout or a closed stream
// with context.Cause, and exit ExitInterrupted.
var errInterrupted = errors.New("interrupted")

// usageError is a mistake in how the command was called that the command
// found itself (a bad --output, a malformed --param), as opposed to the
// ones cobra finds while parsing; both exit ExitUsage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError is an error that has already been printed: execute exits with
// its code without printing it again.
type exitError struct {
	err  error
	code int
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }
func (e *exitError) ExitCode() int { return e.code }

// exitCodeOf is the exit status for a command's error. Errors that carry
// their own code (a watched job's outcome, an already reported error) keep
// it; every other error reaching here was found by cobra before any RunE
// ran (an unknown command or flag, a wrong number of arguments), which is a
// usage error, because every RunE returns coded errors.
func exitCodeOf(err error) int {
	if err == nil {
		return ExitOK
	}
	var coded interface{ ExitCode() int }
	if errors.As(err, &coded) {
		return coded.ExitCode()
	}
	return ExitUsage
}

// classify is the exit status for an error a command's own code returned.
func classify(ctx context.Context, err error) int {
	var coded interface{ ExitCode() int }
	var usage *usageError
	var problem *ProblemError
	var connect *ConnectError
	var lost *lostError
	switch {
	case errors.As(err, &coded):
		return coded.ExitCode()
	case errors.Is(context.Cause(ctx), errInterrupted):
		return ExitInterrupted
	case errors.As(err, &usage), errors.As(err, &problem):
		return ExitUsage
	case errors.As(err, &connect), errors.As(err, &lost):
		return ExitUnreachable
	}
	return ExitJobFailed
}

// reported wraps a command's RunE. Errors are printed on the command's own
// stderr (which tests and embedding programs can capture, unlike os.Stderr)
// as one line and returned as an exitError with their exit status, so
// execute does not print them twice. Errors that carry their own exit code,
// like a followed job's outcome, pass through untouched: whatever had to be
// said about them was said where they arose.
func reported(run func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := run(cmd, args)
		if err == nil {
			return nil
		}
		var coded interface{ ExitCode() int }
		if errors.As(err, &coded) {
			return err
		}
		code := classify(cmd.Context(), err)
		msg := err.Error()
		if code == ExitInterrupted {
			msg = "interrupted"
		}
		fmt.Fprintln(cmd.ErrOrStderr(), "servicekit: "+msg)
		return &exitError{err: err, code: code}
	}
}

// execute runs the command tree with ctx and returns the exit status. A
// usage error cobra found is printed here with a pointer to the right
// --help, since cobra's own usage dump is silenced (it would bury the one
// line that says what was wrong).
func execute(ctx context.Context, root *cobra.Command) (int, error) {
	cmd, err := root.ExecuteContextC(ctx)
	code := exitCodeOf(err)
	if err != nil && code == ExitUsage && !errors.As(err, new(*exitError)) {
		w := root.ErrOrStderr()
		fmt.Fprintln(w, "servicekit: "+err.Error())
		if cmd != nil {
			fmt.Fprintf(w, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
	}
	return code, err
}

// withInterrupt returns a context canceled with cause errInterrupted at the
// first Ctrl-C. After that first one it lets go of the signal, so a second
// Ctrl-C kills the process at once if cleaning up (canceling a job) hangs.
func withInterrupt(parent context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt)
	done := make(chan struct{})
	go func() {
		select {
		case <-sig:
			signal.Stop(sig)
			cancel(errInterrupted)
		case <-done:
		}
	}()
	return ctx, func() {
		signal.Stop(sig)
		close(done)
		cancel(nil)
	}
}

// groupRunE is the RunE of a command that only groups others (`task`,
// `job`, `artifact`). Without it cobra prints the help and exits 0 for
// `servicekit task bogus`, so a typo in a script would pass unnoticed.
func groupRunE(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return cmd.Help()
	}
	msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
	if cmd.SuggestionsMinimumDistance <= 0 {
		cmd.SuggestionsMinimumDistance = 2 // cobra's default, which it sets on the root only
	}
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += "; did you mean " + strings.Join(s, " or ") + "?"
	}
	return errors.New(msg) // uncoded: execute prints it as a usage error
}
