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
