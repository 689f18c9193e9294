package cli

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/servicekit/servicekit/job"
)

// newJobCommand is `servicekit job`: looking at, following and canceling
// the jobs that running tasks created.
func newJobCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "job",
		Short: "List, inspect, follow and cancel jobs on a servicekit server",
	}
	f.register(cmd)
	cmd.AddCommand(newJobListCommand(&f), newJobGetCommand(&f), newJobCancelCommand(&f), newJobLogsCommand(&f))
	return cmd
}

func newJobListCommand(f *clientFlags) *cobra.Command {
	var status, taskID string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first (at most 100)",
		Args:  cobra.NoArgs,
		RunE: reported(func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			q := url.Values{}
			if status != "" {
				q.Set("status", status)
			}
			if taskID != "" {
				q.Set("task_id", taskID)
			}
			var jobs []job.Record
			data, err := c.get(cmd.Context(), "/api/v1/jobs", q, &jobs)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(data)
			}
			tw := c.table()
			fmt.Fprintln(tw, "ID\tSTATUS\tTYPE\tTASK\tSUBMITTED\tDURATION\tCOMMAND")
			for i := range jobs {
				r := &jobs[i]
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, r.Type, r.TaskID,
					when(&r.SubmittedAt), runTime(r), cell(r.Command, 50))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().StringVar(&status, "status", "", "only jobs in this status: pending, running, completed, failed or canceled")
	cmd.Flags().StringVar(&taskID, "task", "", "only jobs of this task id")
	return cmd
}

func newJobGetCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a job: status, timing, result or error",
		Args:  cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			data, err := c.call(cmd.Context(), http.MethodGet, "/api/v1/jobs/"+pathID(args[0]), nil, nil)
			if err != nil {
				return err
			}
			return c.printJobData(data)
		}),
	}
}

func newJobCancelCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a pending or running job (a shell job's whole process tree is stopped)",
		Args:  cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			data, err := c.call(cmd.Context(), http.MethodPost, "/api/v1/jobs/"+pathID(args[0])+"/$cancel", nil, nil)
			if err != nil {
				return err
			}
			return c.printJobData(data)
		}),
	}
}

func newJobLogsCommand(f *clientFlags) *cobra.Command {
	var stream string
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a job's captured output",
		Long: `Print a job's captured output, both streams in the order received, on stdout.
With -f, print the lines so far and then new ones live until the job ends. The output
is plain text whatever -o says.`,
		Args: cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if stream != "" && stream != "stdout" && stream != "stderr" {
				return fmt.Errorf("--stream %q: want stdout or stderr", stream)
			}
			if !follow {
				q := url.Values{}
				if stream != "" {
					q.Set("stream", stream)
				}
				text, err := c.call(cmd.Context(), http.MethodGet, "/api/v1/jobs/"+pathID(args[0])+"/$logs", q, nil)
				if err != nil {
					return err
				}
				_, err = c.out.Write(text)
				return err
			}
			_, _, err = c.watchJob(cmd.Context(), args[0], func(s, line string) {
				if stream == "" || s == stream {
					fmt.Fprintln(c.out, line)
				}
			})
			return err
		}),
	}
	cmd.Flags().StringVar(&stream, "stream", "", "only stdout or stderr")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines until the job ends")
	return cmd
}

// printJobData prints a JobRecord answer: as it came for -o json, else as a
// field list that leaves out what does not apply (no exit code for a
// function job, no result for a running one).
func (c *apiClient) printJobData(data []byte) error {
	if c.json {
		return c.printJSON(data)
	}
	var r job.Record
	if err := decode(data, &r); err != nil {
		return err
	}
	tw := c.table()
	row := func(name, value string) {
		if value != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", name, value)
		}
	}
	row("ID", r.ID)
	row("Task", r.TaskID)
	row("Type", r.Type)
	row("Command", r.Command)
	row("Status", string(r.Status))
	row("Attempt", fmt.Sprintf("%d/%d", r.Attempt, r.MaxAttempts))
	row("Submitted", when(&r.SubmittedAt))
	row("Started", when(r.StartedAt))
	row("Finished", when(r.FinishedAt))
	row("Duration", runTime(&r))
	if r.ExitCode != nil {
		row("Exit code", fmt.Sprint(*r.ExitCode))
	}
	row("Result", compactJSON(r.Result))
	if r.Error != nil {
		row("Error", *r.Error)
	}
	if p := r.Progress; p != nil {
		row("Progress", strings.TrimSpace(fmt.Sprintf("%d/%d %s", p.Current, p.Total, p.Message)))
	}
	if len(r.Params) > 0 {
		row("Params", compactJSON(r.Params))
	}
	if len(r.Env) > 0 {
		row("Env", compactJSON(r.Env))
	}
	if r.ArtifactID != nil {
		row("Artifact", *r.ArtifactID)
	}
	if r.Node != nil {
		row("Node", *r.Node)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.ErrorTraceback != nil && *r.ErrorTraceback != "" {
		// A stack is many lines; in the aligned list it would be unreadable.
		fmt.Fprintf(c.out, "Traceback:\n%s\n", strings.TrimRight(*r.ErrorTraceback, "\n"))
	}
	return nil
}

// runTime is how long a job has run so far, or ran.
func runTime(r *job.Record) string {
	if r.StartedAt == nil {
		return ""
	}
	end := time.Now()
	if r.FinishedAt != nil {
		end = *r.FinishedAt
	}
	return end.Sub(*r.StartedAt).Round(time.Millisecond).String()
}

// printLogLine writes a followed job's output line to the stream it came
// from, so `2>/dev/null` and pipes work on it as on the job itself.
func (c *apiClient) printLogLine(stream, line string) {
	w := c.out
	if stream == "stderr" {
		w = c.errOut
	}
	fmt.Fprintln(w, line)
}

// JobOutcomeError reports a watched job that did not complete. Its exit
// code is the job's, so `servicekit task run --follow` exits like the job:
// a shell job's own non-zero exit code, 1 for anything else.
type JobOutcomeError struct {
	JobID  string
	Status job.Status
	Code   int
	Reason string
}

func (e *JobOutcomeError) Error() string {
	msg := fmt.Sprintf("job %s %s", e.JobID, e.Status)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// ExitCode makes cli.Main exit with the job's code, printing nothing.
func (e *JobOutcomeError) ExitCode() int { return e.Code }

// jobOutcome turns a terminal job into the command's result: nil when it
// completed, else a JobOutcomeError. With explain, a failure that the job's
// own output may not show (a function's error, a timeout, a cancel) is also
// written to w; a shell job's non-zero exit needs no words, its stderr has
// already said what went wrong.
func jobOutcome(r *job.Record, w io.Writer, explain bool) error {
	if r.Status == job.Completed {
		return nil
	}
	e := &JobOutcomeError{JobID: r.ID, Status: r.Status, Code: 1}
	if r.Error != nil {
		e.Reason = *r.Error
	}
	if r.Type == "shell" && r.Status == job.Failed && r.ExitCode != nil && *r.ExitCode > 0 {
		e.Code = *r.ExitCode
		return e
	}
	if explain {
		fmt.Fprintln(w, "servicekit: "+e.Error())
	}
	return e
}
