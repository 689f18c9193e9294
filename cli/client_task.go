package cli

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/servicekit/servicekit/httpapi"
	"github.com/servicekit/servicekit/task"
)

// newTaskCommand is `servicekit task`: the task API, plus `run`, which is
// how a user turns a task into a job and watches it.
func newTaskCommand() *cobra.Command {
	var f clientFlags
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Create, list, change and run tasks on a servicekit server",
		RunE:  groupRunE,
	}
	f.register(cmd)
	cmd.AddCommand(
		newTaskCreateCommand(&f),
		newTaskListCommand(&f),
		newTaskGetCommand(&f),
		newTaskUpdateCommand(&f),
		newTaskDeleteCommand(&f),
		newTaskOrphanedCommand(&f),
		newTaskFunctionsCommand(&f),
		newTaskRunCommand(&f),
		newTaskScheduleCommand(&f),
	)
	return cmd
}

func newTaskCreateCommand(f *clientFlags) *cobra.Command {
	var typ string
	var params, env []string
	var disabled bool
	var timeout time.Duration
	var retries int
	var sched scheduleFlags
	cmd := &cobra.Command{
		Use:   "create COMMAND...",
		Short: "Create a task: a registered function's name or a shell command line",
		Long: `Create a task. COMMAND is a registered function's name or a shell command line; several
words are joined with spaces (as ssh does), so quote a line that uses shell syntax, and put
it after -- when it has dashes of its own. The type is inferred when --type is not given.

A COMMAND that looks like a function name (one word of letters, digits and _) but names no
function the server has registered is refused, with the nearest registered name, since it
is far more often a typo than a shell command: give --type shell to mean the command (for
example 'uptime'), or --type function for a function the server will register later.

--schedule makes the task fire on its own, read in --timezone (default UTC); every server
on the same database fires each slot once between them. --overlap says what a slot does
while a job of the task is still going, --catch-up what start-up does with slots missed
while no server ran. --max-concurrent and --priority apply to every job of the task,
scheduled or not.`,
		Example: `  servicekit task create greet_user --param name=Alice
  servicekit task create 'echo a; echo b >&2' --timeout 30s
  servicekit task create --retries 2 -- rsync -a src/ dst/
  servicekit task create ./backup.sh --schedule '*/15 * * * *' --timezone Europe/Oslo
  servicekit task create 'make report' --schedule @daily --overlap queue --catch-up all
  servicekit task create resize_image --max-concurrent 2 --priority 10`,
		Args: cobra.MinimumNArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			in := task.Input{Command: strings.Join(args, " "), Type: typ}
			if in.Params, err = parseParams(params); err != nil {
				return err
			}
			if in.Env, err = parseEnv(env); err != nil {
				return err
			}
			if typ == "" {
				if err := c.checkFunctionName(cmd.Context(), in.Command); err != nil {
					return err
				}
			}
			if disabled {
				in.Enabled = new(bool)
			}
			if cmd.Flags().Changed("timeout") {
				if timeout <= 0 {
					return usagef("--timeout must be positive")
				}
				in.TimeoutSeconds = new(timeout.Seconds())
			}
			if cmd.Flags().Changed("retries") {
				in.Retries = &retries
			}
			if err := sched.input(cmd, &in); err != nil {
				return err
			}
			data, err := c.call(cmd.Context(), http.MethodPost, "/api/v1/tasks", nil, in)
			if err != nil {
				return err
			}
			return c.printTask(data)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&typ, "type", "", "function or shell (default: function if COMMAND names a registered function, else shell)")
	fl.StringArrayVar(&params, "param", nil, "function argument key=value, value parsed as JSON when it is JSON (repeatable)")
	fl.StringArrayVar(&env, "env", nil, "environment variable NAME=value for a shell task (repeatable)")
	fl.BoolVar(&disabled, "disabled", false, "create the task disabled, so it cannot run until enabled")
	fl.DurationVar(&timeout, "timeout", 0, "cancel and fail a job of this task after this long, e.g. 30s")
	fl.IntVar(&retries, "retries", 0, "extra attempts after a failure")
	sched.register(cmd, false)
	return cmd
}

func newTaskListCommand(f *clientFlags) *cobra.Command {
	var enabled, typ string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tasks, oldest first, with their schedule, params and how their last job went",
		Args:  cobra.NoArgs,
		RunE: reported(func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			q := url.Values{}
			if enabled != "" {
				q.Set("enabled", enabled)
			}
			if typ != "" {
				q.Set("type", typ)
			}
			var tasks []task.Task
			data, err := c.get(cmd.Context(), "/api/v1/tasks", q, &tasks)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(data)
			}
			if len(tasks) == 0 {
				fmt.Fprintln(c.errOut, "no tasks"+filtered(cmd, "enabled", "type"))
				return nil
			}
			last, err := c.lastJobs(cmd.Context(), tasks)
			if err != nil {
				return err
			}
			tw := c.table()
			fmt.Fprintln(tw, "ID\tTYPE\tENABLED\tSCHEDULE\tNEXT FIRE\tRETRIES\tTIMEOUT\tCOMMAND\tPARAMS\tJOBS\tLAST JOB")
			for i, t := range tasks {
				fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", t.ID, t.Type, t.Enabled,
					scheduleCell(&t), when(t.NextFireAt), t.Retries, seconds(t.TimeoutSeconds),
					cell(t.Command, 50), cell(compactJSON(t.Params), 40), last[i].count, last[i].summary())
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().StringVar(&enabled, "enabled", "", "only enabled (true) or disabled (false) tasks")
	cmd.Flags().StringVar(&typ, "type", "", "only function or shell tasks")
	return cmd
}

func newTaskGetCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a task",
		Args:  cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			data, err := c.call(cmd.Context(), http.MethodGet, "/api/v1/tasks/"+pathID(args[0]), nil, nil)
			if err != nil {
				return err
			}
			return c.printTask(data)
		}),
	}
}

func newTaskUpdateCommand(f *clientFlags) *cobra.Command {
	var command, typ string
	var enable, disable bool
	var params, env []string
	var timeout time.Duration
	var retries int
	var sched scheduleFlags
	cmd := &cobra.Command{
		Use:   "update ID",
		Short: "Change the given fields of a task and keep the others",
		Long: `Change the given fields of a task and keep the others. --param and --env replace the
task's whole params or env object. --timeout 0 removes the timeout, --no-schedule (or
--schedule '') the schedule, --timezone '' resets the zone to UTC, and --max-concurrent 0
removes the limit.`,
		Example: `  servicekit task update 01K… --disable
  servicekit task update 01K… --param name=Bob --retries 3
  servicekit task update 01K… --schedule '0 9 * * MON-FRI' --timezone America/New_York
  servicekit task update 01K… --no-schedule
  servicekit task update 01K… --max-concurrent 1 --priority -5`,
		Args: cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			// A map, not task.Patch, because clearing the timeout is an
			// explicit JSON null, which Patch cannot encode.
			patch := map[string]any{}
			fl := cmd.Flags()
			if fl.Changed("command") {
				if !fl.Changed("type") {
					if err := c.checkFunctionName(cmd.Context(), command); err != nil {
						return err
					}
				}
				patch["command"] = command
			}
			if fl.Changed("type") {
				patch["type"] = typ
			}
			if enable || disable {
				patch["enabled"] = enable
			}
			if fl.Changed("param") {
				if patch["params"], err = parseParams(params); err != nil {
					return err
				}
			}
			if fl.Changed("env") {
				if patch["env"], err = parseEnv(env); err != nil {
					return err
				}
			}
			if fl.Changed("timeout") {
				switch {
				case timeout < 0:
					return usagef("--timeout must not be negative")
				case timeout == 0:
					patch["timeout_seconds"] = nil
				default:
					patch["timeout_seconds"] = timeout.Seconds()
				}
			}
			if fl.Changed("retries") {
				patch["retries"] = retries
			}
			if err := sched.patch(cmd, patch); err != nil {
				return err
			}
			if len(patch) == 0 {
				return usagef("nothing to update: give --command, --type, --enable, --disable, --param, --env, --timeout, " +
					"--retries, --schedule, --no-schedule, --timezone, --overlap, --catch-up, --max-concurrent or --priority")
			}
			data, err := c.call(cmd.Context(), http.MethodPatch, "/api/v1/tasks/"+pathID(args[0]), nil, patch)
			if err != nil {
				return err
			}
			return c.printTask(data)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&command, "command", "", "new command (the type is inferred again unless --type is given)")
	fl.StringVar(&typ, "type", "", "function or shell")
	fl.BoolVar(&enable, "enable", false, "allow the task to run")
	fl.BoolVar(&disable, "disable", false, "stop the task from running")
	cmd.MarkFlagsMutuallyExclusive("enable", "disable")
	fl.StringArrayVar(&params, "param", nil, "function argument key=value; replaces the task's params (repeatable)")
	fl.StringArrayVar(&env, "env", nil, "environment variable NAME=value; replaces the task's env (repeatable)")
	fl.DurationVar(&timeout, "timeout", 0, "job time limit, e.g. 30s; 0 removes it")
	fl.IntVar(&retries, "retries", 0, "extra attempts after a failure")
	sched.register(cmd, true)
	return cmd
}

func newTaskDeleteCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "delete ID",
		Short: "Delete a task (its jobs keep running)",
		Args:  cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if _, err := c.call(cmd.Context(), http.MethodDelete, "/api/v1/tasks/"+pathID(args[0]), nil, nil); err != nil {
				return err
			}
			if !c.json { // 204 has no body; a script has the exit status
				fmt.Fprintf(c.out, "deleted task %s\n", args[0])
			}
			return nil
		}),
	}
}

func newTaskOrphanedCommand(f *clientFlags) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "orphaned",
		Short: "List tasks no job will run as they stand (never run, or function not registered)",
		Args:  cobra.NoArgs,
		RunE: reported(func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			q := url.Values{}
			if reason != "" {
				q.Set("reason", reason)
			}
			var out httpapi.OrphanedOut
			data, err := c.get(cmd.Context(), "/api/v1/tasks/$orphaned", q, &out)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(data)
			}
			if len(out.OrphanedTasks) == 0 {
				fmt.Fprintln(c.errOut, "no orphaned tasks"+filtered(cmd, "reason"))
				return nil
			}
			tw := c.table()
			fmt.Fprintln(tw, "ID\tTYPE\tENABLED\tREASON\tCOMMAND")
			for _, o := range out.OrphanedTasks {
				fmt.Fprintf(tw, "%s\t%s\t%t\t%s\t%s\n", o.ID, o.Type, o.Enabled, o.Reason, cell(o.Command, 60))
			}
			return tw.Flush()
		}),
	}
	cmd.Flags().StringVar(&reason, "reason", "", "only no_job or function_not_registered")
	return cmd
}

func newTaskFunctionsCommand(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "functions",
		Short: "List the Go functions the server can run, with their parameters",
		Args:  cobra.NoArgs,
		RunE: reported(func(cmd *cobra.Command, _ []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			var fns []task.FunctionInfo
			data, err := c.get(cmd.Context(), "/api/v1/tasks/$functions", nil, &fns)
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(data)
			}
			if len(fns) == 0 {
				fmt.Fprintln(c.errOut, "no functions registered on this server (shell tasks still run)")
				return nil
			}
			tw := c.table()
			fmt.Fprintln(tw, "NAME\tPARAMS\tINJECTS\tDESCRIPTION")
			for _, fn := range fns {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", fn.Name, paramsSummary(fn.ParamsSchema),
					strings.Join(fn.Injects, ", "), cell(fn.Description, 60))
			}
			return tw.Flush()
		}),
	}
}

// paramsSummary renders a params JSON Schema as a usage line: required
// arguments as name:type, optional ones in brackets with their default,
// e.g. `a:integer [name:string="World"]`.
func paramsSummary(schema any) string {
	s, _ := schema.(map[string]any)
	props, _ := s["properties"].(map[string]any)
	if len(props) == 0 {
		if s["additionalProperties"] == true {
			return "{any object}"
		}
		return ""
	}
	required := map[string]bool{}
	if req, ok := s["required"].([]any); ok {
		for _, r := range req {
			if name, ok := r.(string); ok {
				required[name] = true
			}
		}
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, name := range names {
		p, _ := props[name].(map[string]any)
		arg := name
		if t, ok := p["type"].(string); ok {
			arg += ":" + t
		}
		if def, ok := p["default"]; ok {
			arg += "=" + compactJSON(def)
		}
		if !required[name] {
			arg = "[" + arg + "]"
		}
		parts = append(parts, arg)
	}
	return strings.Join(parts, " ")
}

// printTask prints a TaskOut answer: as it came for -o json, else as a
// field list.
func (c *apiClient) printTask(data []byte) error {
	if c.json {
		return c.printJSON(data)
	}
	var t task.Task
	if err := decode(data, &t); err != nil {
		return err
	}
	tw := c.table()
	fmt.Fprintf(tw, "ID:\t%s\n", t.ID)
	fmt.Fprintf(tw, "Command:\t%s\n", t.Command)
	fmt.Fprintf(tw, "Type:\t%s\n", t.Type)
	fmt.Fprintf(tw, "Enabled:\t%t\n", t.Enabled)
	if t.Params != nil {
		fmt.Fprintf(tw, "Params:\t%s\n", compactJSON(t.Params))
	}
	if t.Env != nil {
		fmt.Fprintf(tw, "Env:\t%s\n", compactJSON(t.Env))
	}
	if t.TimeoutSeconds != nil {
		fmt.Fprintf(tw, "Timeout:\t%s\n", seconds(t.TimeoutSeconds))
	}
	fmt.Fprintf(tw, "Retries:\t%d\n", t.Retries)
	if t.Schedule != nil {
		fmt.Fprintf(tw, "Schedule:\t%s\n", *t.Schedule)
		fmt.Fprintf(tw, "Timezone:\t%s\n", t.Timezone)
		fmt.Fprintf(tw, "Overlap:\t%s\n", t.Overlap)
		fmt.Fprintf(tw, "Catch-up:\t%s\n", t.CatchUp)
		next := when(t.NextFireAt)
		if next == "" {
			next = "none (the task is disabled)"
		}
		fmt.Fprintf(tw, "Next fire:\t%s\n", next)
	}
	if t.MaxConcurrent != nil {
		fmt.Fprintf(tw, "Max concurrent:\t%d\n", *t.MaxConcurrent)
	}
	fmt.Fprintf(tw, "Priority:\t%d\n", t.Priority)
	fmt.Fprintf(tw, "Created:\t%s\n", when(&t.CreatedAt))
	fmt.Fprintf(tw, "Updated:\t%s\n", when(&t.UpdatedAt))
	return tw.Flush()
}

// seconds shows a timeout_seconds value as a Go duration (30s, 1m30s), the
// form --timeout takes.
func seconds(s *float64) string {
	if s == nil {
		return ""
	}
	d := time.Duration(*s * float64(time.Second))
	if d <= 0 {
		return strconv.FormatFloat(*s, 'g', -1, 64) + "s"
	}
	return d.String()
}

// executeBody is the $execute body, or nil when there is nothing to merge
// or override, so the request carries no body at all. priority, when not
// nil, overrides the task's for this job.
func executeBody(params []string, env []string, priority *int) (any, error) {
	p, err := parseParams(params)
	if err != nil {
		return nil, err
	}
	e, err := parseEnv(env)
	if err != nil {
		return nil, err
	}
	if p == nil && e == nil && priority == nil {
		return nil, nil
	}
	return task.ExecuteInput{Params: p, Env: e, Priority: priority}, nil
}

func newTaskRunCommand(f *clientFlags) *cobra.Command {
	var params, env []string
	var wait, follow, detach, quiet bool
	var priority int
	cmd := &cobra.Command{
		Use:   "run ID",
		Short: "Run a task as a new job",
		Long: `Run a task as a new job and print the job's id on stdout.

--wait waits for the job to end; --follow also prints its output live, stdout lines on
stdout and stderr lines on stderr. With either, the job's id comes first, attempts of a
retried job are marked, a function job's progress is drawn as a bar on a terminal, and
one last line gives the status, the duration and the result or error (all on stderr;
-q leaves them out, -o json prints the finished job on stdout). The exit status is the
job's outcome: 0 if it completed, a failed shell job's own exit code, else 1.

Ctrl-C cancels the job, since this command started it; with --detach it only stops
watching and the job keeps running. Either way the command exits 130.`,
		Example: `  servicekit task run 01K… --param name=Alice --wait
  servicekit task run 01K… --follow
  servicekit task run 01K… --follow --detach   # Ctrl-C leaves the job running
  servicekit task run 01K… --priority 100      # ahead of the queue's other ready jobs`,
		Args: cobra.ExactArgs(1),
		RunE: reported(func(cmd *cobra.Command, args []string) error {
			c, err := f.client(cmd)
			if err != nil {
				return err
			}
			if detach && !wait && !follow {
				return usagef("--detach only applies with --wait or --follow")
			}
			var prio *int
			if cmd.Flags().Changed("priority") {
				prio = &priority
			}
			body, err := executeBody(params, env, prio)
			if err != nil {
				return err
			}
			data, err := c.call(cmd.Context(), http.MethodPost, "/api/v1/tasks/"+pathID(args[0])+"/$execute", nil, body)
			if err != nil {
				return err
			}
			var acc httpapi.ExecuteAccepted
			if err := decode(data, &acc); err != nil {
				return err
			}
			if !wait && !follow {
				if c.json {
					return c.printJSON(data)
				}
				fmt.Fprintln(c.out, acc.JobID)
				return nil
			}
			d := c.newDisplay(acc.JobID, quiet)
			d.submitted(detach)
			raw, err := c.follow(cmd.Context(), d, watchOpts{logs: follow, cancel: !detach, final: true})
			if raw != nil && c.json {
				if perr := c.printJSON(raw); perr != nil {
					return perr
				}
			}
			return err
		}),
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&params, "param", nil, "function argument key=value, merged over the task's params (repeatable)")
	fl.StringArrayVar(&env, "env", nil, "environment variable NAME=value, merged over the task's env (repeatable)")
	fl.BoolVar(&wait, "wait", false, "wait until the job ends; exit with its outcome")
	fl.BoolVarP(&follow, "follow", "f", false, "print the job's output live until it ends; exit with its outcome")
	fl.BoolVar(&detach, "detach", false, "with --wait/--follow: Ctrl-C stops watching instead of canceling the job")
	fl.BoolVarP(&quiet, "quiet", "q", false, "with --wait/--follow: print no status lines, only the job's output and errors")
	fl.IntVar(&priority, "priority", 0, "this job's priority, -1000 to 1000, instead of the task's: higher runs first among ready jobs")
	return cmd
}
