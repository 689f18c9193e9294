package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/task"
	"github.com/servicekit/servicekit/web"
)

// chromium finds the browser for the console's browser tests:
// $SERVICEKIT_CHROMIUM if set, else chromium (Debian's package, which
// .ci/run installs) or chromium-browser on the PATH.
//
// Without one the tests skip with a message, so `go test ./...` passes on a
// fresh machine — except under CI (CI=true), where a missing browser fails
// them: CI installs Chromium, and a CI run that silently tested no browser
// would pass for the wrong reason.
func chromium(t *testing.T) string {
	t.Helper()
	var tried []string
	if p := os.Getenv("SERVICEKIT_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err == nil {
			return p
		}
		tried = append(tried, "SERVICEKIT_CHROMIUM="+p)
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
		tried = append(tried, name+" on the PATH")
	}
	msg := "the console's browser tests need Chromium and found none (tried " + strings.Join(tried, ", ") +
		"); install it with `apt-get install -y chromium`, or point SERVICEKIT_CHROMIUM at a Chromium binary"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: a missing browser fails instead of skipping)")
	}
	t.Skip(msg)
	return ""
}

// startService runs a real servicekit (SQLite in a temp dir, real shell
// jobs) behind an httptest server. guard, if not nil, wraps the handler.
func startService(t *testing.T, guard func(http.Handler) http.Handler) (*servicekit.Service, *httptest.Server) {
	t.Helper()
	return startServiceWith(t, nil, guard)
}

// startServiceWith is startService with the functions of reg (nil: the
// process-wide registry, which has none in these tests).
func startServiceWith(t *testing.T, reg *task.Registry, guard func(http.Handler) http.Handler) (*servicekit.Service, *httptest.Server) {
	t.Helper()
	ctx := context.Background()
	b := servicekit.New(servicekit.Info{DisplayName: "t"}).
		WithDatabase("sqlite:///" + filepath.Join(t.TempDir(), "t.db")).
		WithShutdownTimeout(2 * time.Second).
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if reg != nil {
		b = b.WithRegistry(reg)
	}
	svc, err := b.WithTasks().Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	var h http.Handler = withConsole(t, svc)
	if guard != nil {
		h = guard(h)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return svc, ts
}

// withConsole returns the service itself when it already serves the console
// (httpapi mounts it), so the test covers the real wiring; otherwise it
// routes "/" and "/ui/" to web.Handler() and the rest to the service.
func withConsole(t *testing.T, svc http.Handler) http.Handler {
	rec := httptest.NewRecorder()
	svc.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code == http.StatusOK && strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		return svc
	}
	t.Log("the service does not serve the console at / yet: mounting web.Handler() in the test")
	console := web.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" || strings.HasPrefix(r.URL.Path, "/ui/") {
			console.ServeHTTP(w, r)
			return
		}
		svc.ServeHTTP(w, r)
	})
}

// browser is a headless Chromium tab plus what its console reported.
type browser struct {
	ctx context.Context

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromium(t)
	// The profile dir is made before the allocator's cleanup is registered,
	// so (cleanups run last-in first-out) Chromium has exited before the
	// dir is removed.
	profile := t.TempDir()
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(exe),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // start the browser now, not under a step's timeout
		t.Fatalf("starting Chromium: %v", err)
	}
	b := &browser{ctx: ctx}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.messages = append(b.messages, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// do runs steps with a deadline; on failure it logs the page's text and its
// console, which is most of what one needs to see why.
func (b *browser) do(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.dump(t)
		t.Fatalf("%s: %v", what, err)
	}
}

func (b *browser) eval(t *testing.T, expr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.dump(t)
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

func (b *browser) dump(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
		t.Logf("page: %s", loc)
	}
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`)); err == nil {
		t.Logf("page text:\n%s", text)
	}
	for _, m := range b.console() {
		t.Logf("console %s", m)
	}
}

func (b *browser) console() []chromedp.ConsoleMessage {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), b.messages...)
}

// noScriptErrors fails on uncaught exceptions and on console errors other
// than the browser's own note on a non-2xx API answer (the tests cause
// those on purpose); a CSP violation or a missing module would show here.
func (b *browser) noScriptErrors(t *testing.T) {
	t.Helper()
	for _, m := range b.console() {
		if m.IsException() || (m.Type == chromedp.ConsoleError && !(m.Source == "network" && strings.Contains(m.URL, "/api/v1/"))) {
			t.Errorf("console: %s (%s:%d)", m, m.URL, m.Line)
		}
	}
}

// clearField empties a form field. (chromedp's SetValue cannot set "": the
// empty argument reaches the page as undefined.)
func clearField(sel string) chromedp.Action[chromedp.Void] {
	q, _ := json.Marshal(sel)
	return chromedp.Evaluate[chromedp.Void](`document.querySelector(` + string(q) + `).value = ''`)
}

const (
	shellCommand = "echo hello-from-console"
	taskRow      = `tr[data-command="echo hello-from-console"]`
)

// TestBrowserRunShellTask drives the console as a person would: create a
// shell task with the form (after a rejected one, whose validation error
// must show), run it, and watch the job view turn completed with the
// command's output in the log pane — delivered by the live $stream.
func TestBrowserRunShellTask(t *testing.T) {
	_, ts := startService(t, nil)
	b := newBrowser(t)

	b.do(t, "open the console",
		chromedp.Navigate(ts.URL+"/"),
		chromedp.Poll[chromedp.Void](`location.hash === '#/overview'`, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.WaitVisible(chromedp.CSS("#overview-counts a.count")),
		chromedp.Click(chromedp.CSS(`header nav a[data-nav="tasks"]`)),
		chromedp.WaitVisible(chromedp.CSS("#task-form")),
	)

	// A shell command with params is a 422: the form shows the detail.
	b.do(t, "submit an invalid task",
		chromedp.SendKeys(chromedp.CSS("#task-command"), "no_such_function"),
		chromedp.SetValue(chromedp.CSS("#task-params"), `{"name": "x"}`),
		chromedp.Click(chromedp.CSS("#task-create")),
		chromedp.WaitVisible(chromedp.CSS("#task-form .problem")),
	)
	if msg := b.eval(t, `document.querySelector('#task-form .problem').textContent`); !strings.Contains(msg, "no_such_function") {
		t.Errorf("validation error shows %q, want the problem's detail naming the command", msg)
	}

	b.do(t, "create the shell task",
		clearField("#task-command"),
		clearField("#task-params"),
		chromedp.SendKeys(chromedp.CSS("#task-command"), shellCommand),
		chromedp.Click(chromedp.CSS("#task-create")),
		chromedp.WaitVisible(chromedp.CSS(taskRow+` button[data-action="run"]`)),
	)
	if typ := b.eval(t, `document.querySelector('`+taskRow+` td:nth-child(3)').textContent`); typ != "shell" {
		t.Errorf("the new task's type is %q, want shell (inferred)", typ)
	}

	b.do(t, "run it and wait for the job to complete with its output",
		chromedp.Click(chromedp.CSS(taskRow+` button[data-action="run"]`)),
		chromedp.Poll[chromedp.Void](`location.hash.startsWith('#/jobs/')`, chromedp.WithPollingTimeout(10*time.Second)),
		chromedp.Poll[chromedp.Void](`document.querySelector('#job-status')?.dataset.status === 'completed' &&
			document.querySelector('#log')?.textContent.includes('hello-from-console')`,
			chromedp.WithPollingTimeout(30*time.Second)),
	)
	if exit := b.eval(t, `document.querySelector('#job-exit-code')?.textContent ?? 'none'`); exit != "0" {
		t.Errorf("exit code shows %q, want 0", exit)
	}

	b.do(t, "follow the artifact link",
		chromedp.WaitVisible(chromedp.CSS("#job-artifact")),
		chromedp.Click(chromedp.CSS("#job-artifact")),
		chromedp.Poll[chromedp.Void](`document.querySelector('#artifact-data')?.textContent.includes('hello-from-console') &&
			document.querySelector('#artifact-tree li') !== null`, chromedp.WithPollingTimeout(10*time.Second)),
	)

	b.do(t, "see the job in the list",
		chromedp.Navigate(ts.URL+"/#/jobs"),
		chromedp.WaitVisible(chromedp.CSS(`#job-table tr[data-status="completed"]`)),
	)

	b.do(t, "disable the task",
		chromedp.Navigate(ts.URL+"/#/tasks"),
		chromedp.Click(chromedp.CSS(taskRow+` button[data-action="toggle"]`)),
		chromedp.WaitVisible(chromedp.CSS(taskRow+` button.toggle.off`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('`+taskRow+` button[data-action="run"]').disabled`, chromedp.WithPollingTimeout(5*time.Second)),
	)

	b.noScriptErrors(t)
}

// TestBrowserSSEParser checks the console's event-stream parser on the
// awkward cases a network delivers: a \r\n split across chunks, an event
// split mid-data, multi-line data, comments, and a trailing partial event.
func TestBrowserSSEParser(t *testing.T) {
	_, ts := startService(t, nil)
	b := newBrowser(t)
	b.do(t, "open the console", chromedp.Navigate(ts.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#app .view")))
	got := b.eval(t, `import('./ui/api.js').then(m => {
		const got = [];
		const p = new m.SSEParser(e => got.push(e));
		for (const c of ['id: 1\r', '\nevent: status\ndata: {"a":', '1}\n\n: keep-alive\n\n',
			'id: 2\nevent: log\ndata: x\ndata:y\r\n\r\n', 'data: partial\n']) p.push(c);
		p.end();
		return JSON.stringify(got);
	})`)
	var events []struct{ Event, Data, ID string }
	if err := json.Unmarshal([]byte(got), &events); err != nil {
		t.Fatalf("%s: %v", got, err)
	}
	want := []struct{ Event, Data, ID string }{{"status", `{"a":1}`, "1"}, {"log", "x\ny", "2"}}
	if len(events) != len(want) || events[0] != want[0] || events[1] != want[1] {
		t.Errorf("parsed %+v, want %+v", events, want)
	}
}

// TestBrowserAPIKey puts the API behind a key (as the server does with
// SERVICEKIT_API_KEYS) and checks that the console asks for it, asks again
// when it is wrong, keeps it across a reload, and sends it on the job
// stream too (which is why the stream is read with fetch, not EventSource).
func TestBrowserAPIKey(t *testing.T) {
	const key = "secret-key"
	guard := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/api/") && r.Header.Get("X-API-Key") != key {
				w.Header().Set("WWW-Authenticate", `ApiKey realm="servicekit"`)
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusUnauthorized)
				io.WriteString(w, `{"type":"urn:servicekit:error:unauthorized","title":"Unauthorized","status":401,"detail":"missing or wrong API key"}`)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	_, ts := startService(t, guard)

	req, _ := http.NewRequest(http.MethodPost, ts.URL+"/api/v1/tasks", bytes.NewBufferString(`{"command": "`+shellCommand+`"}`))
	req.Header.Set("X-API-Key", key)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		t.Fatalf("creating the task: %d", res.StatusCode)
	}

	b := newBrowser(t)
	b.do(t, "open the console: it asks for a key",
		chromedp.Navigate(ts.URL+"/#/tasks"),
		chromedp.WaitVisible(chromedp.CSS("#key-input")),
		chromedp.SendKeys(chromedp.CSS("#key-input"), "wrong-key"),
		chromedp.Click(chromedp.CSS("#key-save")),
		chromedp.Poll[chromedp.Void](`document.querySelector('#key-dialog').open && document.querySelector('#key-message').textContent.includes('rejected')`,
			chromedp.WithPollingTimeout(10*time.Second)),
		clearField("#key-input"),
		chromedp.SendKeys(chromedp.CSS("#key-input"), key),
		chromedp.Click(chromedp.CSS("#key-save")),
		chromedp.WaitVisible(chromedp.CSS(taskRow)),
	)
	if got := b.eval(t, `localStorage.getItem('servicekit.apiKey')`); got != key {
		t.Errorf("stored key = %q, want %q", got, key)
	}

	b.do(t, "reload: the stored key is used without asking; run the task and stream it",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(taskRow+` button[data-action="run"]`)),
		chromedp.Poll[chromedp.Void](`!document.querySelector('#key-dialog').open`, chromedp.WithPollingTimeout(5*time.Second)),
		chromedp.Click(chromedp.CSS(taskRow+` button[data-action="run"]`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('#job-status')?.dataset.status === 'completed' &&
			document.querySelector('#log')?.textContent.includes('hello-from-console')`,
			chromedp.WithPollingTimeout(30*time.Second)),
	)
	b.noScriptErrors(t)
}

const (
	scheduledCommand = "echo scheduled-from-console"
	scheduledRow     = `#task-table tr[data-command="echo scheduled-from-console"]`
)

// taskJSON is the part of a task the schedule test reads back from the API.
type taskJSON struct {
	ID            string  `json:"id"`
	Command       string  `json:"command"`
	Schedule      *string `json:"schedule"`
	Timezone      string  `json:"timezone"`
	Overlap       string  `json:"overlap"`
	CatchUp       string  `json:"catch_up"`
	MaxConcurrent *int    `json:"max_concurrent"`
	Priority      int     `json:"priority"`
	NextFireAt    *string `json:"next_fire_at"`
}

// getTask reads one task over the API.
func getTask(t *testing.T, ts *httptest.Server, id string) taskJSON {
	t.Helper()
	res, err := http.Get(ts.URL + "/api/v1/tasks/" + id)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var tk taskJSON
	if err := json.NewDecoder(res.Body).Decode(&tk); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET task %s: %d %v", id, res.StatusCode, err)
	}
	return tk
}

// fieldError is the message markFields put under the input sel, or "".
func fieldError(b *browser, t *testing.T, sel string) string {
	t.Helper()
	q, _ := json.Marshal(sel)
	return b.eval(t, `(() => { const i = document.querySelector(`+string(q)+`);
		return i && i.getAttribute('aria-invalid') === 'true' ? (i.closest('label').querySelector('.field-error')?.textContent ?? 'marked, no message') : ''; })()`)
}

// TestBrowserScheduledTask creates a scheduled task with the form, after
// two refusals the server's 422 names at the field (a bad expression, a
// misspelt zone), sees its schedule and next run on the tasks page, edits
// it to fire every second, finds the fired jobs in the jobs list with their
// "schedule" badge and slot, and removes the schedule again.
func TestBrowserScheduledTask(t *testing.T) {
	_, ts := startService(t, nil)
	b := newBrowser(t)
	shots := screenshotDir(t)

	b.do(t, "a bad expression is refused at the schedule field",
		chromedp.Navigate(ts.URL+"/#/tasks"),
		chromedp.WaitVisible(chromedp.CSS("#task-form")),
		chromedp.SendKeys(chromedp.CSS("#task-command"), scheduledCommand),
		chromedp.SendKeys(chromedp.CSS("#task-schedule"), "*/61 * * * *"),
		chromedp.Click(chromedp.CSS("#task-create")),
		chromedp.WaitVisible(chromedp.CSS(`#task-schedule[aria-invalid="true"]`)),
	)
	if msg := fieldError(b, t, "#task-schedule"); !strings.Contains(msg, "61 is out of range 0-59") {
		t.Errorf("the schedule field says %q, want the server's reason", msg)
	}
	if msg := fieldError(b, t, "#task-timezone"); msg != "" {
		t.Errorf("the timezone field is marked too: %q", msg)
	}

	b.do(t, "a misspelt zone is refused at the timezone field",
		clearField("#task-schedule"),
		chromedp.SendKeys(chromedp.CSS("#task-schedule"), "*/15 * * * *"),
		chromedp.SendKeys(chromedp.CSS("#task-timezone"), "Europe/Olso"),
		chromedp.Click(chromedp.CSS("#task-create")),
		chromedp.WaitVisible(chromedp.CSS(`#task-timezone[aria-invalid="true"]`)),
	)
	if msg := fieldError(b, t, "#task-timezone"); !strings.Contains(msg, "did you mean Europe/Oslo?") {
		t.Errorf("the timezone field says %q, want the nearest zone", msg)
	}
	if msg := fieldError(b, t, "#task-schedule"); msg != "" {
		t.Errorf("the corrected schedule field is still marked: %q", msg)
	}

	b.do(t, "create it in Europe/Oslo, queued, at most 2 at once, priority 5",
		clearField("#task-timezone"),
		chromedp.SendKeys(chromedp.CSS("#task-timezone"), "Europe/Oslo"),
		choose("#task-overlap", "queue"),
		chromedp.SendKeys(chromedp.CSS("#task-max-concurrent"), "2"),
		chromedp.SendKeys(chromedp.CSS("#task-priority"), "5"),
		chromedp.Click(chromedp.CSS("#task-create")),
		chromedp.WaitVisible(chromedp.CSS(scheduledRow)),
		chromedp.WaitVisible(chromedp.CSS("#task-created")),
	)
	id := b.eval(t, `document.querySelector('`+scheduledRow+`').dataset.taskId`)
	tk := getTask(t, ts, id)
	if tk.Schedule == nil || *tk.Schedule != "*/15 * * * *" || tk.Timezone != "Europe/Oslo" || tk.Overlap != "queue" ||
		tk.CatchUp != "latest" || tk.MaxConcurrent == nil || *tk.MaxConcurrent != 2 || tk.Priority != 5 || tk.NextFireAt == nil {
		t.Fatalf("created task %+v", tk)
	}
	if v := b.eval(t, `document.querySelector('#task-schedule').value + '|' + document.querySelector('#task-overlap').value`); v != "|skip" {
		t.Errorf("the form after creating holds %q, want it reset", v)
	}

	// The tasks page shows the schedule with its zone and policy, and the
	// next run the API computed. (A quarter hour may pass between the
	// page's read and the test's: the page then catches up on its own.)
	b.do(t, "the next run on the tasks page is the API's",
		chromedp.Reload(),
		chromedp.WaitVisible(chromedp.CSS(scheduledRow)),
		poll(`document.querySelector('`+scheduledRow+` td.next-run time')?.getAttribute('datetime') === `+jsString(*getTask(t, ts, id).NextFireAt)),
	)
	if v := b.eval(t, `document.querySelector('`+scheduledRow+` td.schedule-cell').textContent`); !strings.Contains(v, "*/15 * * * *") ||
		!strings.Contains(v, "Europe/Oslo") || !strings.Contains(v, "overlap queue") {
		t.Errorf("the schedule cell shows %q", v)
	}
	if v := b.eval(t, `document.querySelector('`+scheduledRow+` td.next-run').textContent`); !strings.Contains(v, "in ") {
		t.Errorf("the next-run cell shows %q, want how soon", v)
	}
	if v := b.eval(t, `document.querySelector('`+scheduledRow+` td.next-run time').title`); !strings.HasSuffix(v, " in Europe/Oslo") {
		t.Errorf("the next run's tooltip is %q, want the time in the task's zone too", v)
	}
	if v := b.eval(t, `[...document.querySelector('`+scheduledRow+` td[data-label="Limits"]').children].map(e => e.textContent).join('|')`); v != "≤ 2 at once|priority 5" {
		t.Errorf("the limits cell shows %q", v)
	}

	editSel := "#edit-" + id
	b.do(t, "the edit form starts from the task's values",
		chromedp.Click(chromedp.CSS(scheduledRow+` button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.CSS(editSel+"-schedule")),
	)
	if v := b.eval(t, `['schedule', 'timezone', 'overlap', 'catch-up', 'max-concurrent', 'priority'].map(f => document.querySelector('`+editSel+`-' + f).value).join('|')`); v != "*/15 * * * *|Europe/Oslo|queue|latest|2|5" {
		t.Errorf("edit form values %q", v)
	}
	b.screenshot(t, shots, "task-edit-desktop")
	b.do(t, "a bad zone in the edit form is refused at its field",
		clearField(editSel+"-timezone"),
		chromedp.SendKeys(chromedp.CSS(editSel+"-timezone"), "Mars/Olympus_Mons"),
		chromedp.Click(chromedp.CSS(editSel+`-form button[data-action="edit-save"]`)),
		chromedp.WaitVisible(chromedp.CSS(editSel+`-timezone[aria-invalid="true"]`)),
	)
	if msg := fieldError(b, t, editSel+"-timezone"); !strings.Contains(msg, "Mars/Olympus_Mons") {
		t.Errorf("the edit form's timezone field says %q", msg)
	}
	b.do(t, "edit it to fire every second, with no concurrency limit",
		clearField(editSel+"-timezone"),
		chromedp.SendKeys(chromedp.CSS(editSel+"-timezone"), "Europe/Oslo"),
		clearField(editSel+"-schedule"),
		chromedp.SendKeys(chromedp.CSS(editSel+"-schedule"), "@every 1s"),
		clearField(editSel+"-max-concurrent"),
		chromedp.Click(chromedp.CSS(editSel+`-form button[data-action="edit-save"]`)),
		poll(`document.querySelector('`+scheduledRow+` td.schedule-cell')?.textContent.startsWith('@every 1s')`),
	)
	// The page keeps the next run current without a reload (and without
	// re-rendering the rows).
	first := b.eval(t, `document.querySelector('`+scheduledRow+` td.next-run time').getAttribute('datetime')`)
	b.do(t, "the next run moves on by itself",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('`+scheduledRow+`').dataset.marker = 'same row'`),
		poll(`(document.querySelector('`+scheduledRow+` td.next-run time')?.getAttribute('datetime') ?? '') > `+jsString(first)),
	)
	if v := b.eval(t, `document.querySelector('`+scheduledRow+`').dataset.marker ?? 'row replaced'`); v != "same row" {
		t.Errorf("the row was re-rendered to update the next run: %s", v)
	}
	tk = getTask(t, ts, id)
	if tk.Schedule == nil || *tk.Schedule != "@every 1s" || tk.MaxConcurrent != nil || tk.Timezone != "Europe/Oslo" || tk.Priority != 5 || tk.Overlap != "queue" {
		t.Fatalf("after the edit: %+v", tk)
	}

	b.do(t, "the jobs list, filtered to scheduled jobs, shows them with their slot",
		chromedp.Navigate(ts.URL+"/#/jobs?trigger=schedule"),
		poll(`document.querySelector('#job-table tbody tr[data-trigger="schedule"] .slot time') !== null`),
	)
	var row struct{ ID, Slot, Badge, Filter string }
	if err := json.Unmarshal([]byte(b.eval(t, `(() => { const r = document.querySelector('#job-table tbody tr');
		return JSON.stringify({ID: r.dataset.jobId, Slot: r.querySelector('.slot time').getAttribute('datetime'),
			Badge: r.querySelector('.badge-trigger').textContent, Filter: document.querySelector('#filter-trigger').value}); })()`)), &row); err != nil {
		t.Fatal(err)
	}
	var j struct {
		TaskID       string `json:"task_id"`
		Trigger      string `json:"trigger"`
		ScheduledFor string `json:"scheduled_for"`
		Priority     int    `json:"priority"`
	}
	res, err := http.Get(ts.URL + "/api/v1/jobs/" + row.ID)
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(res.Body).Decode(&j)
	res.Body.Close()
	if j.TaskID != id || j.Trigger != "schedule" || j.ScheduledFor != row.Slot || row.Badge != "schedule" || row.Filter != "schedule" || j.Priority != 5 {
		t.Errorf("the scheduled row %+v, the job %+v", row, j)
	}
	if v := b.eval(t, `String(document.querySelectorAll('#job-table tbody tr:not([data-trigger="schedule"])').length)`); v != "0" {
		t.Errorf("%s rows of other triggers under trigger=schedule", v)
	}
	b.screenshot(t, shots, "jobs-scheduled-desktop")
	b.do(t, "the job's view says what fired it, for which slot",
		chromedp.Click(chromedp.CSS(`#job-table tr[data-job-id="`+row.ID+`"] a.id`)),
		poll(`document.querySelector('#job-slot time')?.getAttribute('datetime') === `+jsString(j.ScheduledFor)),
	)
	if v := b.eval(t, `document.querySelector('#job-trigger').textContent`); v != "schedule" {
		t.Errorf("the job view's trigger is %q", v)
	}

	b.do(t, "remove the schedule in the edit form",
		chromedp.Navigate(ts.URL+"/#/tasks"),
		chromedp.Click(chromedp.CSS(scheduledRow+` button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.CSS(editSel+"-schedule")),
		clearField(editSel+"-schedule"),
		chromedp.Click(chromedp.CSS(editSel+`-form button[data-action="edit-save"]`)),
		poll(`document.querySelector('`+scheduledRow+` td.schedule-cell')?.textContent === '—' &&
			document.querySelector('`+scheduledRow+` td.next-run').textContent === '—'`),
	)
	if tk = getTask(t, ts, id); tk.Schedule != nil || tk.NextFireAt != nil {
		t.Errorf("after clearing the schedule: %+v", tk)
	}
	b.do(t, "saving an unchanged form sends nothing",
		chromedp.Click(chromedp.CSS(scheduledRow+` button[data-action="edit"]`)),
		chromedp.Click(chromedp.CSS(editSel+`-form button[data-action="edit-save"]`)),
		poll(`document.querySelector('`+editSel+`-form .form-result')?.textContent === 'Nothing changed.'`),
	)
	b.noScriptErrors(t)
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
