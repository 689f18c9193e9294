package cli

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/servicekit/servicekit/task"
)

// scheduleFlags are the flags `task create` and `task update` share for a
// task's schedule and its limits. The values are passed to the server as
// given: it validates them (a bad expression or zone is a 422 naming
// body.schedule or body.timezone), so the CLI never disagrees with it on
// what a valid schedule is. Only what the CLI itself gives a meaning to
// (an empty --schedule, a 0 --max-concurrent) is checked here.
type scheduleFlags struct {
	schedule      string
	noSchedule    bool
	timezone      string
	overlap       string
	catchUp       string
	maxConcurrent int
	priority      int
}

func (s *scheduleFlags) register(cmd *cobra.Command, update bool) {
	fl := cmd.Flags()
	sched := "fire the task on a schedule: 5 cron fields ('*/15 * * * *'), @hourly, @daily, @weekly, @monthly, @yearly, or '@every 10m'"
	zone := "IANA zone the schedule is read in, e.g. Europe/Oslo (default UTC)"
	limit := "at most N jobs of the task run at once, over all nodes (default unlimited)"
	if update {
		sched += "; '' removes the schedule"
		zone = "IANA zone the schedule is read in, e.g. Europe/Oslo; '' resets it to UTC"
		limit = "at most N jobs of the task run at once, over all nodes; 0 removes the limit"
		fl.BoolVar(&s.noSchedule, "no-schedule", false, "remove the schedule (the same as --schedule '')")
	}
	fl.StringVar(&s.schedule, "schedule", "", sched)
	fl.StringVar(&s.timezone, "timezone", "", zone)
	fl.StringVar(&s.overlap, "overlap", "", "when a slot comes while a job of the task is still pending or running: skip (default), queue, allow or cancel_previous")
	fl.StringVar(&s.catchUp, "catch-up", "", "slots missed while no server ran: fire none, the latest (default), or all (the 10 latest)")
	fl.IntVar(&s.maxConcurrent, "max-concurrent", 0, limit)
	fl.IntVar(&s.priority, "priority", 0, "higher runs first among ready jobs, -1000 to 1000 (default 0)")
}

// input sets the flags given on a create.
func (s *scheduleFlags) input(cmd *cobra.Command, in *task.Input) error {
	fl := cmd.Flags()
	if fl.Changed("schedule") && s.schedule != "" {
		in.Schedule = &s.schedule
	}
	if fl.Changed("timezone") && s.timezone != "" {
		in.Timezone = &s.timezone
	}
	if fl.Changed("overlap") {
		in.Overlap = &s.overlap
	}
	if fl.Changed("catch-up") {
		in.CatchUp = &s.catchUp
	}
	if fl.Changed("max-concurrent") {
		if s.maxConcurrent < 1 {
			return usagef("--max-concurrent %d: want 1 or more (leave it out for no limit)", s.maxConcurrent)
		}
		in.MaxConcurrent = &s.maxConcurrent
	}
	if fl.Changed("priority") {
		in.Priority = &s.priority
	}
	return nil
}

// patch adds the flags given on an update to a PATCH body, where a JSON
// null resets a field: no schedule, UTC, no limit.
func (s *scheduleFlags) patch(cmd *cobra.Command, patch map[string]any) error {
	fl := cmd.Flags()
	if s.noSchedule && fl.Changed("schedule") {
		return usagef("--no-schedule and --schedule: give one (--schedule '' also removes it)")
	}
	switch {
	case s.noSchedule, fl.Changed("schedule") && s.schedule == "":
		patch["schedule"] = nil
	case fl.Changed("schedule"):
		patch["schedule"] = s.schedule
	}
	if fl.Changed("timezone") {
		patch["timezone"] = nullIfEmpty(s.timezone)
	}
	if fl.Changed("overlap") {
		patch["overlap"] = s.overlap
	}
	if fl.Changed("catch-up") {
		patch["catch_up"] = s.catchUp
	}
	if fl.Changed("max-concurrent") {
		switch {
		case s.maxConcurrent < 0:
			return usagef("--max-concurrent %d: want 1 or more, or 0 for no limit", s.maxConcurrent)
		case s.maxConcurrent == 0:
			patch["max_concurrent"] = nil
		default:
			patch["max_concurrent"] = s.maxConcurrent
		}
	}
	if fl.Changed("priority") {
		patch["priority"] = s.priority
	}
	return nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// scheduleCell is a task's schedule for a table: the expression, and its
// zone when that is not UTC (an @every schedule ignores its zone, so it is
// left out there too). Empty without a schedule.
func scheduleCell(t *task.Task) string {
	if t.Schedule == nil {
		return ""
	}
	if t.Timezone == "" || t.Timezone == "UTC" || isEvery(*t.Schedule) {
		return *t.Schedule
	}
	return *t.Schedule + " (" + t.Timezone + ")"
}

func isEvery(expr string) bool { return strings.HasPrefix(expr, "@every ") }

// Layouts of the `task schedule` times: the slot in UTC, and the same
// instant in the task's zone with its offset, which is what changes on a
// daylight-saving day.
const (
	utcLayout   = "2006-01-02 15:04:05"
	localLayout = "2006-01-02 15:04:05 -07:00"
)

func newTaskScheduleCommand(f *clientFlags) *cobra.Command {
	var n int
	cmd := &cobra.Command{
		Use:   "schedule ID",
		Short: "Show when a task fires next, in UTC and in its zone, and what it fired last",
		Long: `Show a task's schedule: the next N slots (default 5) in UTC and in the task's own
zone, with that zone's UTC offset at each (so a daylight-saving change shows), and the
last job the schedule fired: its id, its slot and its status. A disabled task, or one
without a schedule, has no next slots. Times here are not converted to your local zone,
unlike the other tables: a schedule is read in its own.`,
		Example: `  servicekit task schedule 01K…
  servicekit task schedule 01K… --n 20`,
		Args: cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if n < 1 || n > 100 {
				return usagef("--n %d: want 1 to 100", n)
			}
			var info task.ScheduleInfo
			data, err := c.get(cmd.Context(), "/api/v1/tasks/"+pathID(args[0])+"/$schedule", url.Values{"n": {strconv.Itoa(n)}}, &info)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(data)
			}
			return c.printSchedule(&info)
		}),
	}
	cmd.Flags().IntVar(&n, "n", 5, "how many next slots to show (1 to 100)")
	return cmd
}

// printSchedule prints a $schedule answer: a field list, then the next
// slots as a table. Why there are none (no schedule, disabled) goes to
// stderr, like the other commands' empty answers.
func (c *apiClient) printSchedule(info *task.ScheduleInfo) error {
	loc, err := time.LoadLocation(info.Timezone)
	if err != nil {
		loc = nil // a zone this binary does not know: the API's own offsets are used
	}
	inZone := func(t time.Time) time.Time {
		if loc != nil {
			return t.In(loc)
		}
		return t
	}
	tw := c.table()
	fmt.Fprintf(tw, "Task:\t%s\n", info.TaskID)
	if info.Schedule == nil {
		fmt.Fprintf(tw, "Schedule:\tnone\n")
	} else {
		fmt.Fprintf(tw, "Schedule:\t%s\n", *info.Schedule)
		fmt.Fprintf(tw, "Timezone:\t%s\n", info.Timezone)
		fmt.Fprintf(tw, "Enabled:\t%t\n", info.Enabled)
		fmt.Fprintf(tw, "Overlap:\t%s\n", info.Overlap)
		fmt.Fprintf(tw, "Catch-up:\t%s\n", info.CatchUp)
	}
	// A schedule read in UTC gets one column of times, not the same twice.
	utcOnly := info.Timezone == "UTC"
	if lf := info.LastFire; lf != nil {
		local := ""
		if !utcOnly {
			local = " (" + inZone(lf.ScheduledFor).Format(localLayout) + ")"
		}
		fmt.Fprintf(tw, "Last fire:\t%s %s, slot %s UTC%s\n", lf.JobID, lf.Status, lf.ScheduledFor.UTC().Format(utcLayout), local)
	} else {
		fmt.Fprintf(tw, "Last fire:\tnever\n")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	switch {
	case info.Schedule == nil:
		fmt.Fprintf(c.errOut, "no schedule: set one with servicekit task update %s --schedule '*/15 * * * *'\n", info.TaskID)
		return nil
	case len(info.Next) == 0 && !info.Enabled:
		fmt.Fprintf(c.errOut, "the task is disabled, so it does not fire: servicekit task update %s --enable\n", info.TaskID)
		return nil
	case len(info.Next) == 0:
		return nil
	}
	fmt.Fprintln(c.out)
	tw = c.table()
	if utcOnly {
		fmt.Fprintln(tw, "NEXT (UTC)")
	} else {
		fmt.Fprintf(tw, "NEXT (UTC)\tNEXT (%s)\n", info.Timezone)
	}
	for _, ft := range info.Next {
		if utcOnly {
			fmt.Fprintln(tw, ft.UTC.UTC().Format(utcLayout))
			continue
		}
		local := ft.Local
		if loc != nil {
			local = ft.UTC.In(loc)
		}
		fmt.Fprintf(tw, "%s\t%s\n", ft.UTC.UTC().Format(utcLayout), local.Format(localLayout))
	}
	return tw.Flush()
}
