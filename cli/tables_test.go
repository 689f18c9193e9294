package cli

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit/task"
)

// row returns the fields of the table line that contains key.
func row(t *testing.T, table, key string) []string {
	t.Helper()
	for line := range strings.Lines(table) {
		if strings.Contains(line, key) {
			return strings.Fields(line)
		}
	}
	t.Fatalf("no row with %q in:\n%s", key, table)
	return nil
}

func TestTaskListShowsParamsAndLastJob(t *testing.T) {
	e := newClientEnv(t)
	var greet, failing, idle task.Task
	e.okJSON(&greet, "task", "create", "greet_user", "--param", "name=Alice")
	e.okJSON(&failing, "task", "create", "exit 3")
	e.okJSON(&idle, "task", "create", "echo never")
	e.run("task", "run", greet.ID, "--wait")
	e.run("task", "run", failing.ID, "--wait")
	e.run("task", "run", failing.ID, "--wait")

	_, n := e.requestsSince(0)
	out := e.ok("task", "list")
	header := strings.Fields(strings.SplitN(out, "\n", 2)[0])
	if strings.Join(header, " ") != "ID TYPE ENABLED SCHEDULE NEXT FIRE RETRIES TIMEOUT COMMAND PARAMS JOBS LAST JOB" {
		t.Errorf("header %q", header)
	}
	contains(t, "greet row", strings.Join(row(t, out, greet.ID), " "), `{"name":"Alice"} 1 completed`)
	contains(t, "failing row", strings.Join(row(t, out, failing.ID), " "), " 2 failed ")
	contains(t, "idle row", strings.Join(row(t, out, idle.ID), " "), " 0 never run")

	// One request for the tasks, then one per task for its newest job.
	reqs, _ := e.requestsSince(n)
	perTask := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, "GET /api/v1/jobs?") {
			perTask++
			contains(t, "last job request", r, "page=1", "size=1", "task_id=")
		}
	}
	if len(reqs) != 4 || perTask != 3 {
		t.Errorf("task list made %d requests, %d of them for jobs: %v", len(reqs), perTask, reqs)
	}
}

func TestJobListPagesErrorsAndDurations(t *testing.T) {
	e := newClientEnv(t)
	var failing, ok task.Task
	e.okJSON(&failing, "task", "create", "echo oops >&2; exit 3")
	e.okJSON(&ok, "task", "create", "exit 0")
	for _, id := range []string{failing.ID, ok.ID, failing.ID} {
		e.run("task", "run", id, "--wait")
	}

	out := e.ok("job", "list")
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "ID STATUS TYPE TASK TRIGGER SLOT SUBMITTED DURATION COMMAND ERROR" {
		t.Fatalf("job list:\n%s", out)
	}
	ms := regexp.MustCompile(`^(<1ms|\d{1,3}ms)$`)
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		// ID STATUS TYPE TASK TRIGGER (no SLOT) DATE TIME DURATION COMMAND… [ERROR…]
		if f[4] != "api" {
			t.Errorf("trigger %q of a job run by the client, want api: %q", f[4], line)
		}
		if !ms.MatchString(f[7]) {
			t.Errorf("duration %q of a short job is not in ms: %q", f[7], line)
		}
		switch f[1] {
		case "failed":
			if !strings.HasSuffix(line, "exit status 3") {
				t.Errorf("failed row without its error: %q", line)
			}
		case "completed":
			if strings.Contains(line, "exit status") {
				t.Errorf("completed row with an error: %q", line)
			}
		}
	}

	// --limit/--page: one page, newest first, and a pointer to the next.
	r := e.run("job", "list", "--limit", "1", "--page", "2")
	rows := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if r.code != 0 || len(rows) != 2 || !strings.Contains(rows[1], ok.ID) {
		t.Errorf("page 2 of 1: exit %d\n%s", r.code, r.stdout)
	}
	if r.stderr != "page 2 of 3 (3 jobs); next: --page 3\n" {
		t.Errorf("page footer %q", r.stderr)
	}
	r = e.run("job", "list", "--limit", "2", "--page", "9")
	if r.code != 0 || r.stdout != "" || r.stderr != "no jobs on page 9: there are 2 pages of 2\n" {
		t.Errorf("past the last page: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	var page struct {
		Items []any `json:"items"`
		Total int   `json:"total"`
	}
	e.okJSON(&page, "job", "list", "--limit", "2")
	if len(page.Items) != 2 || page.Total != 3 {
		t.Errorf("--limit 2 -o json: %+v", page)
	}
	// A lower-case task id filters as well as the upper-case one.
	out = e.ok("job", "list", "--task", strings.ToLower(ok.ID))
	if strings.Count(out, "\n") != 2 || !strings.Contains(out, ok.ID) {
		t.Errorf("--task lower-case:\n%s", out)
	}
}

func TestEmptyResultsSaySo(t *testing.T) {
	e := newClientEnv(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"task", "list"}, "no tasks\n"},
		{[]string{"task", "list", "--type", "shell"}, "no tasks match --type shell\n"},
		{[]string{"task", "orphaned"}, "no orphaned tasks\n"},
		{[]string{"job", "list"}, "no jobs\n"},
		{[]string{"job", "list", "--status", "failed"}, "no jobs match --status failed\n"},
	} {
		r := e.run(c.args[0], c.args[1:]...)
		if r.code != 0 || r.stdout != "" || r.stderr != c.want {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want stderr %q", c.args, r.code, r.stdout, r.stderr, c.want)
		}
		// -o json keeps the API's empty array for scripts.
		if out := e.ok(c.args[0], append(c.args[1:], "-o", "json")...); strings.TrimSpace(out) == "" {
			t.Errorf("%v -o json printed nothing", c.args)
		}
	}
}

func TestTaskCreateChecksFunctionNames(t *testing.T) {
	e := newClientEnv(t)
	r := e.run("task", "create", "greet_usr", "--param", "name=Al")
	if r.code != ExitUsage {
		t.Fatalf("greet_usr: exit %d; stderr %s", r.code, r.stderr)
	}
	contains(t, "typo", r.stderr, `no function "greet_usr" is registered on the server (did you mean greet_user?)`, "--type shell")
	var tasks []task.Task
	if e.okJSON(&tasks, "task", "list"); len(tasks) != 0 {
		t.Fatalf("a refused create made a task: %+v", tasks)
	}

	// Far from any name and not a program here: no suggestion, but the way out.
	r = e.run("task", "create", "no_such_program_here")
	if r.code != ExitUsage || strings.Contains(r.stderr, "did you mean") ||
		!strings.Contains(r.stderr, `for the shell command "no_such_program_here" give --type shell`) {
		t.Errorf("no_such_program_here: exit %d, stderr %s", r.code, r.stderr)
	}
	// A one-word program on the PATH, close to no function, is the shell command it looks like.
	var up task.Task
	if e.okJSON(&up, "task", "create", "uptime"); up.Type != "shell" {
		t.Errorf("uptime: type %s, want shell", up.Type)
	}

	// --type says what was meant, and skips the check.
	var sh, fn task.Task
	e.okJSON(&sh, "task", "create", "uptime", "--type", "shell")
	e.okJSON(&fn, "task", "create", "later_fn", "--type", "function")
	if sh.Type != "shell" || fn.Type != "function" {
		t.Errorf("--type: %s %s", sh.Type, fn.Type)
	}

	// A command line with spaces is not a name: no check, no extra request.
	_, n := e.requestsSince(0)
	e.ok("task", "create", "echo", "hi")
	if reqs, _ := e.requestsSince(n); len(reqs) != 1 {
		t.Errorf("shell line create made requests %v", reqs)
	}

	// Changing the command is checked the same way.
	r = e.run("task", "update", sh.ID, "--command", "greet_usr")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "did you mean greet_user?") {
		t.Errorf("update --command greet_usr: exit %d, stderr %s", r.code, r.stderr)
	}
	e.ok("task", "update", strings.ToLower(sh.ID), "--command", "greet_user")
}

func TestNearest(t *testing.T) {
	names := []string{"greet_user", "send_email", "resize_image"}
	for typed, want := range map[string]string{
		"greet_usr": "greet_user", "greetuser": "greet_user", "send_mail": "send_email",
		"resize": "", "uptime": "", "ls": "",
	} {
		if got := nearest(typed, names); got != want {
			t.Errorf("nearest(%q) = %q, want %q", typed, got, want)
		}
	}
}

func TestNormalizeID(t *testing.T) {
	for in, want := range map[string]string{
		"01arz3ndektsv4rrffq69g5fav": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"01ARZ3NDEKTSV4RRFFQ69G5FAV": "01ARZ3NDEKTSV4RRFFQ69G5FAV",
		"not-an-id":                  "not-an-id",
		"01arz3ndektsv4rrffq69g5fa/": "01arz3ndektsv4rrffq69g5fa/",
	} {
		if got := normalizeID(in); got != want {
			t.Errorf("normalizeID(%q) = %q", in, got)
		}
	}
}

func TestDuration(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
	}{{"400us", "<1ms"}, {"12.7ms", "12ms"}, {"999ms", "999ms"}, {"1.26s", "1.3s"}, {"59.9s", "59.9s"}, {"125.4s", "2m5s"}} {
		d, _ := time.ParseDuration(c.in)
		if got := duration(d); got != c.want {
			t.Errorf("duration(%s) = %q, want %q", c.in, got, c.want)
		}
	}
}
