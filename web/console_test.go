package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/task"
)

// The console's own tests of its views, in headless Chromium against a
// real service: the generated params form, the jobs page's filters,
// progress, errors and re-run, the overview, the layout at desktop and
// phone widths (with screenshots), and the docs page offline.

type greetParams struct {
	Name  string `json:"name" default:"World" doc:"Who to greet"`
	Times int    `json:"times" minimum:"1" maximum:"5" doc:"How many greetings"`
	Loud  bool   `json:"loud,omitempty" doc:"Shout it"`
	Mood  string `json:"mood,omitempty" enum:"happy,grumpy"`
}

type countParams struct {
	N int `json:"n" default:"1"`
}

// consoleRegistry has the functions the console tests run. slow reports
// progress 3/10 and then waits until release is closed (or the job is
// canceled), so a test can look at a running job for as long as it needs.
func consoleRegistry(release <-chan struct{}) *task.Registry {
	r := task.NewRegistry()
	r.MustRegister("greet", func(p greetParams) map[string]any {
		g := "Hello, " + p.Name + "!"
		if p.Loud {
			g = strings.ToUpper(g)
		}
		return map[string]any{"message": strings.TrimSpace(strings.Repeat(g+" ", p.Times)), "mood": p.Mood}
	}, task.Description("Greets someone, several times"))
	r.MustRegister("count", func(p countParams) map[string]any { return map[string]any{"n": p.N} })
	r.MustRegister("fail", func() error {
		return errors.New("broken on purpose: the disk is full\nsecond line of the error")
	})
	r.MustRegister("slow", func(ctx context.Context, prog task.Progress) error {
		prog.Report(3, 10, "three of ten")
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return r
}

// choose sets a <select> (or input) and fires change, as a person's pick does.
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	s, _ := json.Marshal(sel)
	v, _ := json.Marshal(value)
	return chromedp.Evaluate[chromedp.Void](`(() => { const e = document.querySelector(` + string(s) + `); e.value = ` + string(v) +
		`; e.dispatchEvent(new Event('change', {bubbles: true})); })()`)
}

// rowsAre is a JS condition: the job table's rows are exactly ids (any order).
func rowsAre(ids ...string) string {
	want := slices.Clone(ids)
	slices.Sort(want)
	j, _ := json.Marshal(want)
	return `JSON.stringify([...document.querySelectorAll('#job-table tbody tr')].map(r => r.dataset.jobId).sort()) === '` + string(j) + `'`
}

func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(15*time.Second))
}

func shortID(id string) string { return "…" + id[len(id)-8:] }

// apiJSON calls the API over HTTP and decodes the answer into v.
func apiJSON(t *testing.T, ts *httptest.Server, method, path string, body, v any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, ts.URL+path, rd)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, res.StatusCode, b, err)
		}
	}
	return res.StatusCode
}

type jobJSON struct {
	ID      string            `json:"id"`
	TaskID  string            `json:"task_id"`
	Status  string            `json:"status"`
	Params  map[string]any    `json:"params"`
	Env     map[string]string `json:"env"`
	Result  map[string]any    `json:"result"`
	Error   *string           `json:"error"`
	Command string            `json:"command"`
}

// screenshotDir is where the browser tests write their screenshots:
// $SCREENSHOT_DIR if set (kept after the run, for a person to look at),
// else a directory under the test's temp dir.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SCREENSHOT_DIR")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// screenshot saves the page as name.png in dir.
func (b *browser) screenshot(t *testing.T, dir, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", p)
}

func mustTask(t *testing.T, svc *servicekit.Service, in task.Input) *task.Task {
	t.Helper()
	tk, err := svc.Tasks.Create(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

// runJob runs a task to its end through the Go API and returns the job id.
func runJob(t *testing.T, svc *servicekit.Service, taskID string, in task.ExecuteInput, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	j, err := svc.Tasks.Run(ctx, taskID, in)
	if err != nil {
		t.Fatal(err)
	}
	if string(j.Status) != want {
		t.Fatalf("job %s of %s is %s, want %s", j.ID, j.Command, j.Status, want)
	}
	return j.ID
}

// startSlow starts the slow function's job, which stays running until
// release is closed.
func startSlow(t *testing.T, svc *servicekit.Service, taskID string) string {
	t.Helper()
	j, err := svc.Tasks.Execute(context.Background(), taskID, task.ExecuteInput{})
	if err != nil {
		t.Fatal(err)
	}
	return j.ID
}

// TestBrowserFunctionForm checks the form generated from a function's
// params_schema: typed fields with defaults and required marks, a client
// check of a missing required field, creating the task, "Run with…"
// pre-filled from the task's params, and the switch to raw JSON and back.
func TestBrowserFunctionForm(t *testing.T) {
	_, ts := startServiceWith(t, consoleRegistry(nil), nil)
	b := newBrowser(t)
	shots := screenshotDir(t)

	b.do(t, "open the tasks view and start from the function",
		chromedp.Navigate(ts.URL+"/#/tasks"),
		chromedp.Click(chromedp.CSS(`#function-table tr[data-function="greet"] button[data-action="use"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#task-params-fields #task-params-times`)),
	)
	var fields map[string]struct {
		Tag, Type, Placeholder, Min, Max string
		Required                         bool
		Options                          []string
	}
	if err := json.Unmarshal([]byte(b.eval(t, `JSON.stringify(Object.fromEntries([...document.querySelectorAll('#task-params-fields [name]')].map(e =>
		[e.name, {Tag: e.tagName, Type: e.type, Placeholder: e.placeholder || '', Min: e.min || '', Max: e.max || '', Required: e.required,
		 Options: e.tagName === 'SELECT' ? [...e.options].map(o => o.value) : null}])))`)), &fields); err != nil {
		t.Fatal(err)
	}
	if f := fields["name"]; f.Tag != "INPUT" || f.Type != "text" || !strings.Contains(f.Placeholder, "World") || f.Required {
		t.Errorf("name field %+v, want an optional text input showing the default World", f)
	}
	if f := fields["times"]; f.Type != "number" || f.Min != "1" || f.Max != "5" || !f.Required {
		t.Errorf("times field %+v, want a required number input from 1 to 5", f)
	}
	if f := fields["mood"]; f.Tag != "SELECT" || !slices.Equal(f.Options, []string{"", `"happy"`, `"grumpy"`}) {
		t.Errorf("mood field %+v, want a choice of happy or grumpy", f)
	}
	if f := fields["loud"]; f.Tag != "SELECT" || !slices.Equal(f.Options, []string{"", "true", "false"}) {
		t.Errorf("loud field %+v, want a choice of true or false", f)
	}
	if got := b.eval(t, `document.querySelector('label[for="task-params-times"]').textContent`); !strings.Contains(got, "*") || !strings.Contains(got, "How many greetings") {
		t.Errorf("times label %q lacks the required mark or the doc", got)
	}

	b.do(t, "a missing required field is caught before the request",
		chromedp.Click(chromedp.CSS("#task-create")),
		chromedp.WaitVisible(chromedp.CSS("#task-form .problem")),
	)
	if msg := b.eval(t, `document.querySelector('#task-form .problem').textContent`); !strings.Contains(msg, "times is required") {
		t.Errorf("problem %q, want it to name times", msg)
	}
	b.screenshot(t, shots, "function-form")

	b.do(t, "fill the form and create the task",
		chromedp.SendKeys(chromedp.CSS("#task-params-times"), "2"),
		choose("#task-params-mood", `"happy"`),
		chromedp.Click(chromedp.CSS("#task-create")),
		chromedp.WaitVisible(chromedp.CSS(`#task-table tr[data-command="greet"]`)),
	)
	var tasks []struct {
		ID     string         `json:"id"`
		Params map[string]any `json:"params"`
	}
	apiJSON(t, ts, "GET", "/api/v1/tasks", nil, &tasks)
	if len(tasks) != 1 || !reflect.DeepEqual(tasks[0].Params, map[string]any{"times": 2.0, "mood": "happy"}) {
		t.Fatalf("tasks %+v, want one greet task with params {times: 2, mood: happy}", tasks)
	}
	tid := tasks[0].ID

	b.do(t, "Run with… shows the task's params in the form; run it for Ada",
		chromedp.Click(chromedp.CSS(`#task-table tr[data-command="greet"] button[data-action="run-with"]`)),
		chromedp.WaitVisible(chromedp.CSS("#run-"+tid+"-name")),
	)
	if v := b.eval(t, `document.querySelector('#run-`+tid+`-times').value + '/' + document.querySelector('#run-`+tid+`-mood').value`); v != `2/"happy"` {
		t.Errorf("Run with… starts from %q, want the task's times 2 and mood happy", v)
	}
	b.do(t, "run",
		chromedp.SendKeys(chromedp.CSS("#run-"+tid+"-name"), "Ada"),
		chromedp.Click(chromedp.CSS(`tr.run-options:not([hidden]) button[data-action="run-submit"]`)),
		chromedp.Poll[chromedp.Void](`location.hash.startsWith('#/jobs/')`, chromedp.WithPollingTimeout(10*time.Second)),
		poll(`document.querySelector('#job-status')?.dataset.status === 'completed'`),
	)
	jobID := strings.TrimPrefix(b.eval(t, `location.hash`), "#/jobs/")
	var j jobJSON
	apiJSON(t, ts, "GET", "/api/v1/jobs/"+jobID, nil, &j)
	if !reflect.DeepEqual(j.Params, map[string]any{"name": "Ada", "times": 2.0, "mood": "happy"}) || j.Result["message"] != "Hello, Ada! Hello, Ada!" {
		t.Errorf("job params %v result %v", j.Params, j.Result)
	}

	b.do(t, "switch the create form to JSON and back: the values carry over",
		chromedp.Navigate(ts.URL+"/#/tasks"),
		chromedp.Click(chromedp.CSS(`#function-table tr[data-function="greet"] button[data-action="use"]`)),
		chromedp.WaitVisible(chromedp.CSS("#task-params-times")),
		chromedp.SendKeys(chromedp.CSS("#task-params-times"), "4"),
		chromedp.Click(chromedp.CSS(`#task-form [data-action="params-mode"]`)),
		chromedp.WaitVisible(chromedp.CSS("#task-params")),
	)
	var asJSON map[string]any
	if err := json.Unmarshal([]byte(b.eval(t, `document.querySelector('#task-params').value`)), &asJSON); err != nil || !reflect.DeepEqual(asJSON, map[string]any{"times": 4.0}) {
		t.Errorf("as JSON: %v (%v), want {times: 4}", asJSON, err)
	}
	b.do(t, "edit the JSON and go back to the form",
		chromedp.SetValue(chromedp.CSS("#task-params"), `{"times": 5, "name": "Bo", "extra": 1}`),
		chromedp.Click(chromedp.CSS(`#task-form [data-action="params-mode"]`)),
		chromedp.WaitVisible(chromedp.CSS("#task-params-times")),
	)
	if v := b.eval(t, `[document.querySelector('#task-params-times').value, document.querySelector('#task-params-name').value,
		document.querySelector('#task-form .params-editor').textContent.includes('"extra":1')].join('/')`); v != "5/Bo/true" {
		t.Errorf("back in the form: %q, want times 5, name Bo, and extra kept as not in the schema", v)
	}
	b.noScriptErrors(t)
}

// TestBrowserJobsPage checks the jobs list: progress on a running row, the
// error column, each filter (status, task, time range, search by short id,
// whole id and command), and re-running finished and failed jobs with the
// same params.
func TestBrowserJobsPage(t *testing.T) {
	release := make(chan struct{})
	svc, ts := startServiceWith(t, consoleRegistry(release), nil)
	released := false
	t.Cleanup(func() {
		if !released {
			close(release)
		}
	})
	countT := mustTask(t, svc, task.Input{Command: "count"})
	failT := mustTask(t, svc, task.Input{Command: "fail"})
	slowT := mustTask(t, svc, task.Input{Command: "slow"})
	shellT := mustTask(t, svc, task.Input{Command: "echo jobs-page"})
	jobA := runJob(t, svc, countT.ID, task.ExecuteInput{Params: map[string]any{"n": 7}}, "completed")
	jobB := runJob(t, svc, countT.ID, task.ExecuteInput{Params: map[string]any{"n": 8}}, "completed")
	jobF := runJob(t, svc, failT.ID, task.ExecuteInput{}, "failed")
	jobS := runJob(t, svc, shellT.ID, task.ExecuteInput{}, "completed")
	jobR := startSlow(t, svc, slowT.ID)
	// jobB was submitted two hours ago, as far as the time filter can tell.
	if _, err := svc.DB.W.Exec(svc.DB.Rebind(`UPDATE jobs SET submitted_at = ? WHERE id = ?`),
		time.Now().Add(-2*time.Hour).UnixMilli(), jobB); err != nil {
		t.Fatal(err)
	}
	all := []string{jobA, jobB, jobF, jobS, jobR}

	b := newBrowser(t)
	shots := screenshotDir(t)
	b.do(t, "open the jobs list: the running job shows its progress",
		chromedp.Navigate(ts.URL+"/#/jobs"),
		poll(rowsAre(all...)),
		poll(`document.querySelector('#job-table tr[data-job-id="`+jobR+`"] .progress')?.textContent.includes('3/10')`),
	)
	if v := b.eval(t, `document.querySelector('#job-table tr[data-job-id="`+jobR+`"] progress').value + '/' +
		document.querySelector('#job-table tr[data-job-id="`+jobR+`"] progress').max`); v != "3/10" {
		t.Errorf("the running row's progress bar is %s, want 3/10", v)
	}
	errCell := b.eval(t, `document.querySelector('#job-table tr[data-job-id="`+jobF+`"] td.error-cell').textContent`)
	if !strings.Contains(errCell, "broken on purpose: the disk is full") || strings.Contains(errCell, "second line") {
		t.Errorf("the failed row's error cell is %q, want the error's first line", errCell)
	}
	if v := b.eval(t, `[...document.querySelectorAll('#job-table tbody tr')].map(r => r.dataset.status + ':' + Boolean(r.querySelector('[data-action="rerun"]'))).sort().join(' ')`); v != "completed:true completed:true completed:true failed:true running:false" {
		t.Errorf("re-run buttons by status: %s, want one on every finished job and none on the running one", v)
	}
	if v := b.eval(t, `document.querySelector('#job-table tr[data-job-id="`+jobA+`"] a.id').textContent`); v != shortID(jobA) {
		t.Errorf("job link shows %q, want the short id %q", v, shortID(jobA))
	}
	b.screenshot(t, shots, "jobs-desktop")

	b.do(t, "filter by status",
		choose("#filter-status", "failed"),
		poll(`location.hash.includes('status=failed')`),
		poll(rowsAre(jobF)),
	)
	b.do(t, "filter by task (the choice lists the tasks)",
		chromedp.Navigate(ts.URL+"/#/jobs"),
		poll(`document.querySelector('#filter-task option[value="`+countT.ID+`"]') !== null`),
		choose("#filter-task", countT.ID),
		poll(`location.hash.includes('task_id=`+countT.ID+`')`),
		poll(rowsAre(jobA, jobB)),
	)
	b.do(t, "search by the short id shown in the table",
		chromedp.Navigate(ts.URL+"/#/jobs"),
		poll(rowsAre(all...)),
		chromedp.SendKeys(chromedp.CSS("#filter-q"), shortID(jobA)),
		chromedp.Click(chromedp.CSS(`#job-filters button[type="submit"]`)),
		poll(rowsAre(jobA)),
	)
	b.do(t, "search by a whole id, in lower case",
		clearField("#filter-q"),
		chromedp.SendKeys(chromedp.CSS("#filter-q"), strings.ToLower(jobF)),
		chromedp.Click(chromedp.CSS(`#job-filters button[type="submit"]`)),
		poll(rowsAre(jobF)),
	)
	b.do(t, "search by command",
		clearField("#filter-q"),
		chromedp.SendKeys(chromedp.CSS("#filter-q"), "echo JOBS"),
		chromedp.Click(chromedp.CSS(`#job-filters button[type="submit"]`)),
		poll(rowsAre(jobS)),
	)
	b.do(t, "filter by time range: the job submitted two hours ago drops out of the last hour",
		chromedp.Navigate(ts.URL+"/#/jobs"),
		poll(rowsAre(all...)),
		choose("#filter-since", "1h"),
		poll(rowsAre(jobA, jobF, jobS, jobR)),
		poll(`document.querySelector('#job-scope').textContent.includes('4 matches submitted in the last hour')`),
		choose("#filter-since", "24h"),
		poll(rowsAre(all...)),
	)
	b.do(t, "filters combine: a task and a range",
		choose("#filter-task", countT.ID),
		poll(rowsAre(jobA, jobB)),
		choose("#filter-since", "15m"),
		poll(rowsAre(jobA)),
	)

	// Re-run a finished job from the list: a new job of the same task with
	// the same params.
	b.do(t, "re-run a completed job from the list",
		chromedp.Click(chromedp.CSS(`#job-table tr[data-job-id="`+jobA+`"] button[data-action="rerun"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-notice .notice a.id`)),
	)
	href := b.eval(t, `document.querySelector('#job-notice .notice a.id').getAttribute('href')`)
	again := strings.TrimPrefix(href, "#/jobs/")
	b.do(t, "the re-run shows up in the filtered list and completes",
		poll(`document.querySelector('#job-table tr[data-job-id="`+again+`"][data-status="completed"]') !== null`),
	)
	var j jobJSON
	apiJSON(t, ts, "GET", "/api/v1/jobs/"+again, nil, &j)
	if j.TaskID != countT.ID || !reflect.DeepEqual(j.Params, map[string]any{"n": 7.0}) || j.Result["n"] != 7.0 {
		t.Errorf("re-run of %s: %+v, want task %s with params {n: 7}", jobA, j, countT.ID)
	}

	// Re-run the failed job from its own view: it fails again, as a new job.
	b.do(t, "re-run a failed job from its view",
		chromedp.Navigate(ts.URL+"/#/jobs/"+jobF),
		poll(`document.querySelector('#job-status')?.dataset.status === 'failed'`),
		chromedp.Click(chromedp.CSS("#job-rerun")),
		poll(`location.hash.startsWith('#/jobs/') && location.hash !== '#/jobs/`+jobF+`'`),
		poll(`document.querySelector('#job-status')?.dataset.status === 'failed'`),
	)
	failedAgain := strings.TrimPrefix(b.eval(t, `location.hash`), "#/jobs/")
	apiJSON(t, ts, "GET", "/api/v1/jobs/"+failedAgain, nil, &j)
	if j.TaskID != failT.ID || j.Error == nil || !strings.Contains(*j.Error, "broken on purpose") {
		t.Errorf("re-run of the failed job: %+v", j)
	}
	b.do(t, "a running job has no re-run button",
		chromedp.Navigate(ts.URL+"/#/jobs/"+jobR),
		poll(`document.querySelector('#job-status')?.dataset.status === 'running'`),
	)
	if v := b.eval(t, `String(document.querySelector('#job-rerun').hidden)`); v != "true" {
		t.Errorf("the running job's re-run button is shown")
	}
	b.screenshot(t, shots, "job-running-desktop")

	b.do(t, "the running row turns completed when the job ends",
		chromedp.Navigate(ts.URL+"/#/jobs"),
		poll(`document.querySelector('#job-table tr[data-job-id="`+jobR+`"][data-status="running"]') !== null`),
	)
	close(release)
	released = true
	b.do(t, "wait for the list to refresh", poll(`document.querySelector('#job-table tr[data-job-id="`+jobR+`"][data-status="completed"]') !== null`))

	// A job whose task was deleted since cannot be re-run: the API's
	// problem says so in the notice.
	if code := apiJSON(t, ts, "DELETE", "/api/v1/tasks/"+shellT.ID, nil, nil); code != http.StatusNoContent {
		t.Fatalf("deleting the shell task: %d", code)
	}
	b.do(t, "re-run a job of a deleted task",
		chromedp.Click(chromedp.CSS(`#job-table tr[data-job-id="`+jobS+`"] button[data-action="rerun"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#job-notice .problem`)),
	)
	if msg := b.eval(t, `document.querySelector('#job-notice .problem').textContent`); !strings.Contains(msg, "not found") {
		t.Errorf("re-running a deleted task's job shows %q, want the API's not-found detail", msg)
	}
	b.noScriptErrors(t)
}

// TestBrowserOverview checks the overview against the API: the counts by
// status, the per-minute chart's bars, the running job with its progress,
// and the node list (with a second server process on the same database).
func TestBrowserOverview(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	svc, ts := startServiceWith(t, consoleRegistry(release), nil)
	countT := mustTask(t, svc, task.Input{Command: "count"})
	failT := mustTask(t, svc, task.Input{Command: "fail"})
	slowT := mustTask(t, svc, task.Input{Command: "slow"})
	for range 3 {
		runJob(t, svc, countT.ID, task.ExecuteInput{}, "completed")
	}
	runJob(t, svc, failT.ID, task.ExecuteInput{}, "failed")
	jobR := startSlow(t, svc, slowT.ID)
	// A second server process on the same database: a second live node.
	second, err := servicekit.New(servicekit.Info{DisplayName: "second"}).
		WithDatabase(svc.DB.String()).WithRegistry(consoleRegistry(release)).WithTasks().
		WithJobOptions(job.Options{Node: "second-node"}).WithShutdownTimeout(2 * time.Second).
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))).
		Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { second.Close() })

	b := newBrowser(t)
	shots := screenshotDir(t)
	b.do(t, "open the overview",
		chromedp.Navigate(ts.URL+"/"),
		poll(`location.hash === '#/overview'`),
		poll(`document.querySelector('#overview-counts a[data-status="running"]')?.dataset.count === '1'`),
		poll(`document.querySelector('#overview-running li[data-job-id="`+jobR+`"] .progress')?.textContent.includes('3/10')`),
	)
	var sum struct {
		Counts    map[string]int `json:"counts"`
		Total     int            `json:"total"`
		Completed int            `json:"completed"`
		Failed    int            `json:"failed"`
	}
	apiJSON(t, ts, "GET", "/api/v1/jobs/$summary", nil, &sum)
	var shown map[string]int
	if err := json.Unmarshal([]byte(b.eval(t, `JSON.stringify(Object.fromEntries([...document.querySelectorAll('#overview-counts a.count')].map(a => [a.dataset.status, Number(a.dataset.count)])))`)), &shown); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"pending": 0, "running": 1, "completed": 3, "failed": 1, "canceled": 0, "total": 5}
	if !reflect.DeepEqual(shown, want) || sum.Counts["completed"] != 3 || sum.Total != 5 {
		t.Errorf("overview counts %v (API %v, total %d), want %v", shown, sum.Counts, sum.Total, want)
	}
	var bars struct{ N, Completed, Failed, LastCompleted, Drawn int }
	if err := json.Unmarshal([]byte(b.eval(t, `(() => {
		const g = [...document.querySelectorAll('#throughput-chart g.bar')];
		const sum = k => g.reduce((s, e) => s + Number(e.dataset[k]), 0);
		const last = g.slice(-2).reduce((s, e) => s + Number(e.dataset.completed), 0);
		return JSON.stringify({N: g.length, Completed: sum('completed'), Failed: sum('failed'), LastCompleted: last,
			Drawn: document.querySelectorAll('#throughput-chart rect.completed, #throughput-chart rect.failed').length});
	})()`)), &bars); err != nil {
		t.Fatal(err)
	}
	if bars.N != 60 || bars.Completed != 3 || bars.Failed != 1 || bars.LastCompleted != 3 || bars.Drawn < 2 {
		t.Errorf("chart %+v, want 60 minutes holding 3 completed (in the last minutes) and 1 failed, drawn as bars", bars)
	}
	var sys struct {
		Node  string `json:"node"`
		Nodes []struct {
			ID string `json:"id"`
		} `json:"nodes"`
	}
	apiJSON(t, ts, "GET", "/api/v1/system", nil, &sys)
	var nodeIDs []string
	for _, n := range sys.Nodes {
		nodeIDs = append(nodeIDs, n.ID)
	}
	if !slices.Contains(nodeIDs, "second-node") || !slices.Contains(nodeIDs, sys.Node) {
		t.Errorf("GET /api/v1/system lists nodes %v, want this node %s and second-node", nodeIDs, sys.Node)
	}
	wantJSON, _ := json.Marshal(nodeIDs)
	b.do(t, "the node list shows the API's nodes", poll(`JSON.stringify([...document.querySelectorAll('#overview-nodes [data-node]')].map(e => e.dataset.node)) === '`+string(wantJSON)+`'`))
	if v := b.eval(t, `document.querySelector('#overview-nodes [data-node="`+sys.Node+`"]').textContent`); !strings.Contains(v, "this server") {
		t.Errorf("this server's node row %q is not marked as this server", v)
	}
	b.screenshot(t, shots, "overview-desktop")

	b.do(t, "a count links to the jobs list with that status",
		chromedp.Click(chromedp.CSS(`#overview-counts a[data-status="failed"]`)),
		poll(`location.hash === '#/jobs?status=failed'`),
		poll(`document.querySelectorAll('#job-table tbody tr').length === 1`),
	)
	b.noScriptErrors(t)
}

// TestBrowserLayout opens every view at desktop width and at a phone's
// 390 px and checks that the page never scrolls sideways, that the header's
// links all fit, that ids are one line each and in the one short form, and
// writes a screenshot of each.
func TestBrowserLayout(t *testing.T) {
	chromium(t) // skip (or, under CI, fail) here rather than in each subtest
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	svc, ts := startServiceWith(t, consoleRegistry(release), nil)
	long := "echo " + strings.Repeat("a-rather-long-argument-without-spaces-", 4) + " && echo done"
	longT := mustTask(t, svc, task.Input{Command: long, Env: map[string]string{"SOME_LONG_VARIABLE_NAME": strings.Repeat("value", 12)}})
	failT := mustTask(t, svc, task.Input{Command: "fail"})
	slowT := mustTask(t, svc, task.Input{Command: "slow"})
	mustTask(t, svc, task.Input{Command: "greet", Params: map[string]any{"times": 2, "name": "Someone With A Long Name"}})
	// A schedule that does not fire during the test (New Year), with every
	// policy and limit set, so its cells are at their widest.
	yearly, zone, overlap, catchUp, limit, prio := "0 0 1 1 *", "America/Argentina/ComodRivadavia", "cancel_previous", "all", 100000, -1000
	mustTask(t, svc, task.Input{Command: "echo yearly", Schedule: &yearly, Timezone: &zone, Overlap: &overlap, CatchUp: &catchUp,
		MaxConcurrent: &limit, Priority: &prio, TimeoutSeconds: new(3600.5), Retries: new(100)})
	done := runJob(t, svc, longT.ID, task.ExecuteInput{}, "completed")
	runJob(t, svc, failT.ID, task.ExecuteInput{}, "failed")
	startSlow(t, svc, slowT.ID)
	var j struct {
		ArtifactID string `json:"artifact_id"`
	}
	apiJSON(t, ts, "GET", "/api/v1/jobs/"+done, nil, &j)

	views := []struct{ name, hash, ready string }{
		{"overview", "#/overview", `document.querySelectorAll('#throughput-chart g.bar').length === 60 && document.querySelector('#overview-running li') !== null`},
		{"tasks", "#/tasks", `document.querySelectorAll('#task-table tbody tr[data-task-id]').length === 5 && document.querySelector('#function-table') !== null`},
		// The edit form of the scheduled task, opened (once) by the poll.
		{"task-edit", "#/tasks", `(document.querySelector('.edit-form') || document.querySelector('#task-table tr[data-command="echo yearly"] [data-action="edit"]')?.click(),
			document.querySelector('.edit-form') !== null)`},
		{"jobs", "#/jobs", `document.querySelectorAll('#job-table tbody tr').length === 3`},
		{"job", "#/jobs/" + done, `document.querySelector('#job-status')?.dataset.status === 'completed' && document.querySelector('#log').textContent.includes('done')`},
		{"artifacts", "#/artifacts", `document.querySelectorAll('#artifact-table tbody tr').length >= 2`},
		{"artifact", "#/artifacts/" + j.ArtifactID, `document.querySelector('#artifact-tree li') !== null`},
	}
	shots := screenshotDir(t)
	for _, size := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{{"desktop", 1280, 900, false}, {"phone", 390, 844, true}} {
		t.Run(size.name, func(t *testing.T) {
			b := newBrowser(t)
			opts := []chromedp.EmulateViewportOption{}
			if size.mobile {
				opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
			}
			b.do(t, "set the viewport", chromedp.EmulateViewport(size.width, size.height, opts...))
			for _, v := range views {
				b.do(t, "open "+v.name, chromedp.Navigate(ts.URL+"/"+v.hash), poll(v.ready))
				var m struct {
					ScrollWidth, InnerWidth int
					Nav                     []string
					Wrapped, NotShort       []string
				}
				if err := json.Unmarshal([]byte(b.eval(t, `JSON.stringify({
					ScrollWidth: Math.max(document.documentElement.scrollWidth, document.body.scrollWidth),
					InnerWidth: window.innerWidth,
					Nav: [...document.querySelectorAll('header nav a, header .header-tools > *')].filter(a => {
						const r = a.getBoundingClientRect();
						return !(r.width > 0 && r.left >= 0 && r.right <= window.innerWidth);
					}).map(a => a.textContent),
					Wrapped: [...document.querySelectorAll('#app .id')].filter(e => e.getClientRects().length > 1 ||
						(e.getClientRects()[0] && e.getClientRects()[0].height > 2 * parseFloat(getComputedStyle(e).lineHeight || '20'))).map(e => e.textContent),
					NotShort: [...document.querySelectorAll('#app .id:not(.full-id)')].map(e => e.textContent).filter(s => !/^…[0-9A-HJKMNP-TV-Z]{8}$/.test(s)),
				})`)), &m); err != nil {
					t.Fatal(err)
				}
				if m.InnerWidth != int(size.width) {
					t.Errorf("%s: the window is %d px wide, want %d", v.name, m.InnerWidth, size.width)
				}
				if m.ScrollWidth > int(size.width) {
					t.Errorf("%s at %d px: the page is %d px wide and scrolls sideways", v.name, size.width, m.ScrollWidth)
				}
				if len(m.Nav) > 0 {
					t.Errorf("%s at %d px: header items outside the screen: %q", v.name, size.width, m.Nav)
				}
				if len(m.Wrapped) > 0 {
					t.Errorf("%s at %d px: ids broken across lines: %q", v.name, size.width, m.Wrapped)
				}
				if len(m.NotShort) > 0 {
					t.Errorf("%s: ids not in the short form …XXXXXXXX: %q", v.name, m.NotShort)
				}
				b.screenshot(t, shots, fmt.Sprintf("%s-%s", v.name, size.name))
			}
			b.noScriptErrors(t)
		})
	}
}

// TestBrowserDocs opens /docs as a browser would with no network: Swagger
// UI, served by this server, renders every operation of the OpenAPI
// document, and the page loads nothing from another origin.
func TestBrowserDocs(t *testing.T) {
	_, ts := startService(t, nil)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	apiJSON(t, ts, "GET", "/openapi.json", nil, &doc)
	ops := 0
	for _, p := range doc.Paths {
		ops += len(p)
	}
	b := newBrowser(t)
	shots := screenshotDir(t)
	b.do(t, "open the docs page",
		chromedp.Navigate(ts.URL+"/docs"),
		poll(`document.documentElement.dataset.docs === 'ready' && document.querySelectorAll('#swagger-ui .opblock').length > 0`),
	)
	if n := b.eval(t, `String(document.querySelectorAll('#swagger-ui .opblock').length)`); n != fmt.Sprint(ops) {
		t.Errorf("Swagger UI shows %s operations, the OpenAPI document has %d", n, ops)
	}
	if v := b.eval(t, `document.querySelector('#openapi-json').href`); v != ts.URL+"/openapi.json" {
		t.Errorf("the OpenAPI link goes to %q", v)
	}
	if v := b.eval(t, `JSON.stringify(performance.getEntriesByType('resource').map(e => e.name).filter(u => !u.startsWith(location.origin + '/')))`); v != "[]" {
		t.Errorf("the docs page loaded from other origins: %s", v)
	}
	b.screenshot(t, shots, "docs-desktop")

	// "Try it out" sends the key the console keeps in this browser.
	if v := b.eval(t, `(() => {
		localStorage.setItem('servicekit.apiKey', 'key-from-the-console');
		const req = window.ui.getConfigs().requestInterceptor({url: location.origin + '/api/v1/info', headers: {}});
		return req.headers['X-API-Key'] || 'none';
	})()`); v != "key-from-the-console" {
		t.Errorf("Swagger UI's requests carry X-API-Key %q, want the console's stored key", v)
	}
	b.noScriptErrors(t)
}
