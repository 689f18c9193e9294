package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/task"
)

// TestTaskScheduleFlags sets every schedule and limit field with the
// create and update flags, clears them again, and checks the server's
// refusals come back on one line that says what is wrong, once.
func TestTaskScheduleFlags(t *testing.T) {
	e := newClientEnv(t)

	var tk task.Task
	e.okJSON(&tk, "task", "create", "echo tick", "--schedule", "*/15 * * * *", "--timezone", "Europe/Oslo",
		"--overlap", "queue", "--catch-up", "all", "--max-concurrent", "2", "--priority", "7")
	if tk.Schedule == nil || *tk.Schedule != "*/15 * * * *" || tk.Timezone != "Europe/Oslo" || tk.Overlap != "queue" ||
		tk.CatchUp != "all" || tk.MaxConcurrent == nil || *tk.MaxConcurrent != 2 || tk.Priority != 7 {
		t.Fatalf("created: %+v", tk)
	}
	if tk.NextFireAt == nil || tk.NextFireAt.Minute()%15 != 0 || tk.NextFireAt.Second() != 0 || !tk.NextFireAt.After(time.Now()) {
		t.Fatalf("next fire %v, want the next quarter hour", tk.NextFireAt)
	}

	// nextAround is the task's next fire as read before and after a
	// command, since a quarter hour may pass in between.
	nextAround := func(before *time.Time) []string {
		var after task.Task
		e.okJSON(&after, "task", "get", tk.ID)
		return []string{when(before), when(after.NextFireAt)}
	}
	out := e.ok("task", "get", tk.ID)
	contains(t, "get", out, "Schedule:", "*/15 * * * *", "Timezone:", "Europe/Oslo", "Overlap:", "queue",
		"Catch-up:", "all", "Next fire:", "Max concurrent:", "Priority:", "7")
	if next, got := nextAround(tk.NextFireAt), strings.Join(row(t, out, "Next fire:"), " "); got != "Next fire: "+next[0] && got != "Next fire: "+next[1] {
		t.Errorf("get shows no next fire %q:\n%s", next, out)
	}

	var plain task.Task
	e.okJSON(&plain, "task", "create", "echo plain")
	if plain.Schedule != nil || plain.Timezone != "UTC" || plain.Overlap != "skip" || plain.CatchUp != "latest" ||
		plain.MaxConcurrent != nil || plain.Priority != 0 || plain.NextFireAt != nil {
		t.Errorf("defaults: %+v", plain)
	}
	if out := e.ok("task", "get", plain.ID); strings.Contains(out, "Schedule:") || strings.Contains(out, "Max concurrent:") {
		t.Errorf("get of an unscheduled task shows schedule fields:\n%s", out)
	}

	// The list shows the schedule with its zone and the next fire; both
	// cells are empty for a task without a schedule.
	var before task.Task
	e.okJSON(&before, "task", "get", tk.ID)
	out = e.ok("task", "list")
	scheduled := strings.Join(row(t, out, tk.ID), " ")
	if next := nextAround(before.NextFireAt); !strings.Contains(scheduled, " true */15 * * * * (Europe/Oslo) "+next[0]+" 0 ") &&
		!strings.Contains(scheduled, " true */15 * * * * (Europe/Oslo) "+next[1]+" 0 ") {
		t.Errorf("scheduled row %q: want the schedule with its zone, then the next fire %q", scheduled, next)
	}
	if f := row(t, out, plain.ID); f[2] != "true" || f[3] != "0" {
		t.Errorf("unscheduled row %q: want retries right after enabled (empty schedule and next fire)", f)
	}

	var got task.Task
	e.okJSON(&got, "task", "update", tk.ID, "--schedule", "@every 1h", "--timezone", "", "--overlap", "allow",
		"--catch-up", "none", "--max-concurrent", "0", "--priority", "-3")
	if got.Schedule == nil || *got.Schedule != "@every 1h" || got.Timezone != "UTC" || got.Overlap != "allow" ||
		got.CatchUp != "none" || got.MaxConcurrent != nil || got.Priority != -3 || got.NextFireAt == nil {
		t.Errorf("after update: %+v", got)
	}
	// An @every schedule ignores its zone, so the list leaves it out.
	e.ok("task", "update", tk.ID, "--timezone", "Asia/Tokyo")
	contains(t, "@every row", strings.Join(row(t, e.ok("task", "list"), tk.ID), " "), " true @every 1h ")

	e.okJSON(&got, "task", "update", tk.ID, "--no-schedule")
	if got.Schedule != nil || got.NextFireAt != nil || got.Priority != -3 {
		t.Errorf("after --no-schedule: %+v", got)
	}
	e.ok("task", "update", tk.ID, "--schedule", "@daily")
	e.okJSON(&got, "task", "update", tk.ID, "--schedule", "")
	if got.Schedule != nil || got.NextFireAt != nil {
		t.Errorf("after --schedule '': %+v", got)
	}

	oneLine := func(what string, r cliResult, wants ...string) {
		t.Helper()
		if r.code != ExitUsage || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "servicekit: ") || r.stdout != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q: want exit 2 and one line on stderr", what, r.code, r.stdout, r.stderr)
		}
		contains(t, what, r.stderr, wants...)
	}
	r := e.run("task", "create", "echo bad", "--schedule", "*/61 * * * *")
	oneLine("bad expression", r, `servicekit: Unprocessable Entity: schedule "*/61 * * * *": minute field: 61 is out of range 0-59 (body.schedule)`)
	if n := strings.Count(r.stderr, "out of range"); n != 1 {
		t.Errorf("the problem says it %d times: %s", n, r.stderr)
	}
	oneLine("bad zone", e.run("task", "update", tk.ID, "--schedule", "@hourly", "--timezone", "Europe/Olso"),
		`timezone "Europe/Olso": unknown IANA time zone (did you mean Europe/Oslo?) (body.timezone)`)
	oneLine("bad overlap and priority", e.run("task", "create", "echo bad", "--overlap", "later", "--priority", "5000"),
		"body.overlap: ", `got string "later"`, "body.priority: expected number <= 1000")
	oneLine("create --max-concurrent 0", e.run("task", "create", "echo bad", "--max-concurrent", "0"),
		"--max-concurrent 0: want 1 or more (leave it out for no limit)")
	oneLine("update --max-concurrent -1", e.run("task", "update", tk.ID, "--max-concurrent", "-1"), "--max-concurrent -1: want 1 or more, or 0 for no limit")
	oneLine("both ways", e.run("task", "update", tk.ID, "--no-schedule", "--schedule", "@daily"), "--no-schedule and --schedule: give one")
	var tasks []task.Task
	if e.okJSON(&tasks, "task", "list"); len(tasks) != 2 {
		t.Errorf("refused creates made tasks: %d tasks", len(tasks))
	}
}

// TestTaskScheduleCommand checks `task schedule`: the next slots in UTC and
// in the task's zone (with the zone's offset at each), the last fire of a
// schedule that has fired, and what it says without a schedule or when the
// task is disabled.
func TestTaskScheduleCommand(t *testing.T) {
	e := newClientEnv(t)
	var noon task.Task
	e.okJSON(&noon, "task", "create", "echo noon", "--schedule", "0 12 * * *", "--timezone", "America/New_York")

	r := e.run("task", "schedule", noon.ID, "--n", "7")
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("task schedule: exit %d, stderr %s", r.code, r.stderr)
	}
	fields, table, _ := strings.Cut(r.stdout, "\n\n")
	contains(t, "fields", fields, "Task:", noon.ID, "Schedule:", "0 12 * * *", "Timezone:", "America/New_York",
		"Enabled:", "true", "Overlap:", "skip", "Catch-up:", "latest", "Last fire:", "never")
	lines := strings.Split(strings.TrimRight(table, "\n"), "\n")
	if len(lines) != 8 || strings.Join(strings.Fields(lines[0]), " ") != "NEXT (UTC) NEXT (America/New_York)" {
		t.Fatalf("next table:\n%s", table)
	}
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Fatal(err)
	}
	prev := time.Now()
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 5 {
			t.Fatalf("row %q: want UTC date and time, local date, time and offset", line)
		}
		utc, err := time.Parse(utcLayout, f[0]+" "+f[1])
		if err != nil {
			t.Fatal(err)
		}
		local, err := time.Parse(localLayout, f[2]+" "+f[3]+" "+f[4])
		if err != nil {
			t.Fatal(err)
		}
		// The local column is the same instant, at noon in New York with
		// the offset New York has that day (-05:00 or -04:00).
		_, off := utc.In(ny).Zone()
		if !local.Equal(utc) || local.Hour() != 12 || local.Minute() != 0 || f[4] != time.Unix(0, 0).In(time.FixedZone("", off)).Format("-07:00") {
			t.Errorf("row %q: want the same instant at 12:00 New York time with its offset", line)
		}
		if !utc.After(prev) || utc.Sub(prev) > 25*time.Hour {
			t.Errorf("row %q does not follow %s by a day", line, prev)
		}
		prev = utc
	}
	var info task.ScheduleInfo
	e.okJSON(&info, "task", "schedule", noon.ID, "--n", "3")
	if len(info.Next) != 3 || info.LastFire != nil || info.Timezone != "America/New_York" {
		t.Errorf("schedule -o json: %+v", info)
	}
	// In UTC the times are given once, not twice.
	var hourly task.Task
	e.okJSON(&hourly, "task", "create", "echo hourly", "--schedule", "@hourly")
	_, table, _ = strings.Cut(e.ok("task", "schedule", hourly.ID, "--n", "2"), "\n\n")
	if lines := strings.Split(strings.TrimSpace(table), "\n"); len(lines) != 3 || strings.TrimSpace(lines[0]) != "NEXT (UTC)" ||
		!strings.HasSuffix(lines[1], ":00:00") || strings.Count(lines[1], ":") != 2 {
		t.Errorf("UTC schedule table:\n%s", table)
	}

	// A schedule that has fired: the last fire names the job, its slot and
	// its status. Disabling the task stops the firing and empties the next
	// slots, and says why on stderr.
	var sec task.Task
	e.okJSON(&sec, "task", "create", "echo tick", "--schedule", "@every 1s", "--timezone", "Asia/Kolkata")
	waitForScheduled(t, e, sec.ID)
	e.ok("task", "update", sec.ID, "--disable")
	// A slot being fired as the task was disabled may still land (the fire
	// read the task just before): so wait for the job shown to end, and
	// read again until the last fire stays the same.
	var last []string
	for try := 0; ; try++ {
		r = e.run("task", "schedule", sec.ID)
		if r.code != 0 || strings.Contains(r.stdout, "NEXT") ||
			r.stderr != "the task is disabled, so it does not fire: servicekit task update "+sec.ID+" --enable\n" {
			t.Fatalf("disabled: exit %d, stdout:\n%s\nstderr %q", r.code, r.stdout, r.stderr)
		}
		f := row(t, r.stdout, "Last fire:")
		if last != nil && f[2] == last[2] {
			last = f
			break
		}
		if try == 3 {
			t.Fatalf("the last fire kept changing after the task was disabled: %q", f)
		}
		last = f
		e.run("job", "wait", last[2])
	}
	kolkata, err := time.LoadLocation("Asia/Kolkata")
	if err != nil {
		t.Fatal(err)
	}
	var lastJob job.Record
	e.okJSON(&lastJob, "job", "get", last[2])
	if lastJob.TaskID != sec.ID || lastJob.Trigger != job.TriggerSchedule || lastJob.ScheduledFor == nil ||
		strings.Join(last[3:], " ") != "completed, slot "+lastJob.ScheduledFor.UTC().Format(utcLayout)+" UTC ("+
			lastJob.ScheduledFor.In(kolkata).Format(localLayout)+")" || !strings.HasSuffix(last[len(last)-1], "+05:30)") {
		t.Errorf("last fire %q, job %+v", last, lastJob)
	}

	var plain task.Task
	e.okJSON(&plain, "task", "create", "echo plain")
	r = e.run("task", "schedule", strings.ToLower(plain.ID))
	if r.code != 0 || !strings.Contains(r.stdout, "Schedule:") || strings.Join(row(t, r.stdout, "Schedule:"), " ") != "Schedule: none" ||
		!strings.HasPrefix(r.stderr, "no schedule: set one with servicekit task update "+plain.ID+" --schedule") {
		t.Errorf("no schedule: exit %d, stdout:\n%s\nstderr %q", r.code, r.stdout, r.stderr)
	}

	r = e.run("task", "schedule", noon.ID, "--n", "0")
	if r.code != ExitUsage || !strings.Contains(r.stderr, "--n 0: want 1 to 100") {
		t.Errorf("--n 0: exit %d, stderr %s", r.code, r.stderr)
	}
	r = e.run("task", "schedule", "01ARZ3NDEKTSV4RRFFQ69G5FAV")
	if r.code != ExitUsage || !strings.HasPrefix(r.stderr, "servicekit: Not Found: ") {
		t.Errorf("unknown task: exit %d, stderr %s", r.code, r.stderr)
	}
}

// TestJobTriggerAndPriority checks that jobs show what made them: the job
// list's TRIGGER and SLOT columns and --trigger filter, job get's rows,
// and task run --priority reaching the job.
func TestJobTriggerAndPriority(t *testing.T) {
	e := newClientEnv(t)
	var sec, manual task.Task
	e.okJSON(&sec, "task", "create", "echo tick", "--schedule", "@every 1s")
	e.okJSON(&manual, "task", "create", "echo manual", "--priority", "3")
	waitForScheduled(t, e, sec.ID)
	e.ok("task", "update", sec.ID, "--disable")

	var ran job.Record
	e.okJSON(&ran, "task", "run", manual.ID, "--priority", "9", "--wait")
	if ran.Priority != 9 || ran.Trigger != job.TriggerAPI || ran.ScheduledFor != nil {
		t.Errorf("task run --priority 9: %+v", ran)
	}
	var dflt job.Record
	e.okJSON(&dflt, "task", "run", manual.ID, "--wait")
	if dflt.Priority != 3 {
		t.Errorf("task run without --priority: priority %d, want the task's 3", dflt.Priority)
	}

	var scheduled []job.Record
	e.okJSON(&scheduled, "job", "list", "--trigger", "schedule")
	if len(scheduled) == 0 {
		t.Fatal("no scheduled jobs listed")
	}
	for _, j := range scheduled {
		if j.Trigger != job.TriggerSchedule || j.TaskID != sec.ID || j.ScheduledFor == nil {
			t.Errorf("--trigger schedule listed %+v", j)
		}
	}
	out := e.ok("job", "list", "--trigger", "schedule")
	f := row(t, out, scheduled[0].ID)
	// ID STATUS TYPE TASK TRIGGER SLOT-DATE SLOT-TIME SUBMITTED…
	if f[4] != "schedule" || f[5]+" "+f[6] != when(scheduled[0].ScheduledFor) {
		t.Errorf("scheduled row %q: want trigger schedule and the slot %s", f, when(scheduled[0].ScheduledFor))
	}
	out = e.ok("job", "list", "--trigger", "api")
	if strings.Count(out, "\n") != 3 || !strings.Contains(out, ran.ID) || strings.Contains(out, "schedule") {
		t.Errorf("--trigger api:\n%s", out)
	}

	out = e.ok("job", "get", scheduled[0].ID)
	contains(t, "scheduled job get", out, "Trigger:", "schedule", "Slot:", when(scheduled[0].ScheduledFor))
	if strings.Contains(out, "Priority:") {
		t.Errorf("job get shows the default priority:\n%s", out)
	}
	out = e.ok("job", "get", ran.ID)
	contains(t, "api job get", out, "Trigger:", "api", "Priority:", "9")
	if strings.Contains(out, "Slot:") {
		t.Errorf("an api job shows a slot:\n%s", out)
	}

	r := e.run("job", "list", "--trigger", "cron")
	if r.code != ExitUsage || !strings.Contains(r.stderr, `servicekit: Bad Request: query trigger="cron": want api or schedule`) {
		t.Errorf("--trigger cron: exit %d, stderr %s", r.code, r.stderr)
	}
	r = e.run("job", "list", "--trigger", "schedule", "--task", manual.ID)
	if r.code != 0 || r.stdout != "" || r.stderr != "no jobs match --task "+manual.ID+" --trigger schedule\n" {
		t.Errorf("empty filtered list: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// waitForScheduled waits until the task's schedule has fired a job that
// completed, and returns it.
func waitForScheduled(t *testing.T, e *clientEnv, taskID string) job.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := e.ok("job", "list", "--task", taskID, "--trigger", "schedule", "--status", "completed", "-o", "json")
		var jobs []job.Record
		if err := json.Unmarshal([]byte(out), &jobs); err != nil {
			t.Fatal(err)
		}
		if len(jobs) > 0 {
			return jobs[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("the @every 1s schedule of %s fired no completed job in 15s", taskID)
		}
		// Each check is a request and a query; a schedule of one second
		// fires within about a second, so a tenth of that between checks
		// costs little and does not spin.
		time.Sleep(100 * time.Millisecond)
	}
}
