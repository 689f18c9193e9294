package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/servicekit/servicekit/httpapi"
	"github.com/servicekit/servicekit/job"
)

// newJobCommand is `servicekit job`: looking at, following and canceling
// the jobs that running tasks created.
func newJobCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "job",
		Short: "List, inspect, follow and cancel jobs on a servicekit server",
		RunE:  groupRunE,
	}
	f.register(cmd)
	cmd.AddCommand(newJobListCommand(&f), newJobGetCommand(&f), newJobWaitCommand(&f), newJobCancelCommand(&f), newJobLogsCommand(&f))
	return cmd
}

func newJobListCommand(f *clientFlags) *cobra.Command {
	var status, taskID, trigger string
	var limit, page int
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first (the newest 100, or one page with --limit/--page)",
		Example: `  servicekit job list --status failed
  servicekit job list --trigger schedule --task 01K…   # what a task's schedule fired, with each slot
  servicekit job list --limit 20 --page 2`,
		Args: cobra.NoArgs,
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
				q.Set("task_id", normalizeID(taskID))
			}
			if trigger != "" {
				q.Set("trigger", trigger)
			}
			paged := cmd.Flags().Changed("limit") || cmd.Flags().Changed("page")
			if paged {
				if limit < 1 || limit > 1000 {
					return usagef("--limit %d: want 1 to 1000", limit)
				}
				if page < 1 {
					return usagef("--page %d: want 1 or more", page)
				}
				q.Set("size", strconv.Itoa(limit))
				q.Set("page", strconv.Itoa(page))
			}
			var jobs []job.Record
			var pg httpapi.Page[job.Record]
			var data []byte
			if paged {
				data, err = c.get(cmd.Context(), "/api/v1/jobs", q, &pg)
				jobs = pg.Items
			} else {
				data, err = c.get(cmd.Context(), "/api/v1/jobs", q, &jobs)
			}
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(data)
			}
			switch {
			case len(jobs) == 0 && paged && pg.Total > 0:
				fmt.Fprintf(c.errOut, "no jobs on page %d: there are %d pages of %d\n", page, pg.Pages, limit)
				return nil
			case len(jobs) == 0:
				fmt.Fprintln(c.errOut, "no jobs"+filtered(cmd, "status", "task", "trigger"))
				return nil
			}
			tw := c.table()
			fmt.Fprintln(tw, "ID\tSTATUS\tTYPE\tTASK\tTRIGGER\tSLOT\tSUBMITTED\tDURATION\tCOMMAND\tERROR")
			for i := range jobs {
				r := &jobs[i]
				errText := ""
				if r.Error != nil && r.Status != job.Completed {
					errText = cell(*r.Error, 40)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Status, r.Type, r.TaskID,
					r.Trigger, when(r.ScheduledFor), when(&r.SubmittedAt), runTime(r), cell(r.Command, 40), errText)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if paged && pg.Pages > 1 {
				more := ""
				if pg.Page < pg.Pages {
					more = fmt.Sprintf("; next: --page %d", pg.Page+1)
				}
				fmt.Fprintf(c.errOut, "page %d of %d (%d jobs)%s\n", pg.Page, pg.Pages, pg.Total, more)
			}
			return nil
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&status, "status", "", "only jobs in this status: pending, running, completed, failed or canceled")
	fl.StringVar(&taskID, "task", "", "only jobs of this task id")
	fl.StringVar(&trigger, "trigger", "", "only jobs made by api ($execute, task run) or by a schedule")
	fl.IntVar(&limit, "limit", 50, "jobs per page (1 to 1000); turns on paging")
	fl.IntVar(&page, "page", 1, "page to show, 1 for the newest; turns on paging")
	return cmd
}

// filtered tells an empty answer's reader that filters were given, so
// "no jobs" after --status failed is not taken for "no jobs at all".
func filtered(cmd *cobra.Command, flags ...string) string {
	var used []string
	for _, name := range flags {
		if fl := cmd.Flags().Lookup(name); fl != nil && fl.Changed {
			used = append(used, "--"+name+" "+fl.Value.String())
		}
	}
	if len(used) == 0 {
		return ""
	}
	return " match " + strings.Join(used, " ")
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

func newJobWaitCommand(f *clientFlags) *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "wait ID",
		Short: "Wait for a job to end and exit with its outcome",
		Long: `Wait for a job to end, print one line with its status, duration and result or error
(on stderr), and exit with its outcome: 0 completed, a failed shell job's own exit code,
1 otherwise. On a terminal a function job's progress is drawn as a bar. -o json prints
the finished job on stdout. Ctrl-C stops waiting; the job keeps running.`,
		Example: `  servicekit job wait 01K… && echo done`,
		Args:    cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			d := c.newDisplay(normalizeID(args[0]), quiet)
			raw, err := c.follow(cmd.Context(), d, watchOpts{final: true})
			if raw != nil && c.json {
				if perr := c.printJSON(raw); perr != nil {
					return perr
				}
			}
			return err
		}),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print no status lines, only errors")
	return cmd
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
With -f, print the lines so far and then new ones live until the job ends, and exit
with the job's outcome as job wait does; Ctrl-C stops following (the job keeps
running). The output is plain text whatever -o says.`,
		Args: cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if stream != "" && stream != "stdout" && stream != "stderr" {
				return usagef("--stream %q: want stdout or stderr", stream)
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
			d := c.newDisplay(normalizeID(args[0]), false)
			_, err = c.follow(cmd.Context(), d, watchOpts{logs: true, stream: stream, toStdout: true})
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
	row("Trigger", r.Trigger)
	row("Slot", when(r.ScheduledFor))
	if r.Priority != 0 {
		row("Priority", strconv.Itoa(r.Priority))
	}
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

// runTime is how long a job has run so far, or ran; "" if it never started.
func runTime(r *job.Record) string {
	if r.StartedAt == nil {
		return ""
	}
	end := time.Now()
	if r.FinishedAt != nil {
		end = *r.FinishedAt
	}
	return duration(end.Sub(*r.StartedAt))
}

// duration formats a run time for people: whole milliseconds under a
// second (where Go's 1.234567ms is noise), tenths of a second under a
// minute, whole seconds beyond.
func duration(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return "<1ms"
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	}
	return d.Round(time.Second).String()
}
