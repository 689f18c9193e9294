package cli

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creack/pty"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/task"
)

// flakyCounter registers "count": a function that reports progress and
// fails its first attempt. Each attempt waits for the test to send on gate
// before it goes on, so the test decides when an attempt may end, after it
// has seen what the command drew for it.
func flakyCounter(gate chan struct{}) func(*task.Registry) {
	var attempts atomic.Int32
	return func(reg *task.Registry) {
		reg.MustRegister("count", func(ctx context.Context, prog task.Progress) (map[string]any, error) {
			wait := func() error {
				select {
				case <-gate:
					return nil
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			if attempts.Add(1) == 1 {
				prog.Report(1, 4, "warming up")
				if err := wait(); err != nil {
					return nil, err
				}
				return nil, errors.New("flaky start")
			}
			prog.Report(2, 4, "halfway")
			if err := wait(); err != nil {
				return nil, err
			}
			prog.Report(4, 4, "done")
			return map[string]any{"counted": 4}, nil
		})
	}
}

// TestTaskRunFollowProgressOnTerminal runs a retried function job with
// `task run --follow` whose stderr is a real pseudo-terminal, and reads
// what a person would see: the job id first, a progress bar drawn from the
// job's progress events while each attempt runs, the attempt boundaries,
// and the final line.
func TestTaskRunFollowProgressOnTerminal(t *testing.T) {
	gate := make(chan struct{})
	e := newClientEnvWith(t, envOptions{register: flakyCounter(gate)})
	var tk task.Task
	e.okJSON(&tk, "task", "create", "count", "--retries", "1")

	ptmx, tty, err := pty.Open()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminal: %v", err)
		}
		t.Skipf("no pseudo-terminal here (%v); this test needs /dev/ptmx", err)
	}
	defer ptmx.Close()
	screen := newScreen(ptmx)

	cmd := NewRootCommand(servicekit.Info{})
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(tty)
	cmd.SetArgs([]string{"task", "--server=" + e.url, "run", tk.ID, "--follow"})
	done := make(chan int, 1)
	go func() {
		code, _ := execute(context.Background(), cmd)
		done <- code
	}()

	screen.waitFor(t, regexp.MustCompile(`job [0-9A-Z]{26} submitted`))
	screen.waitFor(t, regexp.MustCompile(`warming up.*\|.*1/4`)) // the bar, while attempt 1 runs
	gate <- struct{}{}
	screen.waitFor(t, regexp.MustCompile(`--- attempt 1/2 failed: flaky start; retrying`))
	screen.waitFor(t, regexp.MustCompile(`--- attempt 2/2`))
	screen.waitFor(t, regexp.MustCompile(`halfway.*\|.*2/4`))
	gate <- struct{}{}
	screen.waitFor(t, regexp.MustCompile(`job [0-9A-Z]{26} completed in \S+ after 2 attempts: \{"counted":4\}`))
	if code := <-done; code != 0 {
		t.Fatalf("exit %d; screen:\n%s", code, screen.text())
	}
	tty.Close()

	// The order on screen is the order of events: id, bar, retry, bar, end.
	got := screen.text()
	order := []string{"submitted", "1/4", "attempt 1/2 failed", "--- attempt 2/2", "2/4", "completed in"}
	at := 0
	for _, w := range order {
		i := strings.Index(got[at:], w)
		if i < 0 {
			t.Fatalf("%q missing or out of order in:\n%q", w, got)
		}
		at += i + len(w)
	}
	// Attempt 2's bar starts from its own reports, not attempt 1's last one.
	if i := strings.Index(got, "--- attempt 2/2"); strings.Contains(got[i:], "warming up") {
		t.Errorf("attempt 1's progress drawn again in attempt 2:\n%q", got)
	}
	if out.Len() != 0 {
		t.Errorf("stdout %q: a function job without output prints nothing there", out.String())
	}
}

// TestTaskRunWaitNotTerminal is the same job with stderr a pipe: no bar
// (no carriage returns), but the attempt boundaries and the final line.
func TestTaskRunWaitNotTerminal(t *testing.T) {
	gate := make(chan struct{})
	e := newClientEnvWith(t, envOptions{register: flakyCounter(gate)})
	var tk task.Task
	e.okJSON(&tk, "task", "create", "count", "--retries", "1")
	go func() { gate <- struct{}{}; gate <- struct{}{} }()
	r := e.run("task", "run", tk.ID, "--wait")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	want := []string{`^job \S+ submitted; `, `^--- attempt 1/2$`, `^--- attempt 1/2 failed: flaky start; retrying$`,
		`^--- attempt 2/2$`, `^job \S+ completed in \S+ after 2 attempts: \{"counted":4\}$`}
	if len(lines) != len(want) || strings.Contains(r.stderr, "\r") {
		t.Fatalf("stderr:\n%q", r.stderr)
	}
	for i, w := range want {
		if !regexp.MustCompile(w).MatchString(lines[i]) {
			t.Errorf("line %d = %q, want %s", i, lines[i], w)
		}
	}
}

// TestFunctionJobFailureExits1 checks the final line and exit status of a
// function job that fails: 1, with the function's error.
func TestFunctionJobFailureExits1(t *testing.T) {
	e := newClientEnvWith(t, envOptions{register: func(reg *task.Registry) {
		reg.MustRegister("explode", func() error { return errors.New("boom") })
	}})
	var tk task.Task
	e.okJSON(&tk, "task", "create", "explode")
	r := e.run("task", "run", tk.ID, "--follow")
	if r.code != ExitJobFailed {
		t.Fatalf("exit %d, want %d; stderr %s", r.code, ExitJobFailed, r.stderr)
	}
	if !regexp.MustCompile(`\njob \S+ failed in \S+: boom\n$`).MatchString(r.stderr) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// job wait of the same job: the same line, the same status; -o json
	// prints the finished job on stdout.
	var outcome *JobOutcomeError
	if !errors.As(r.err, &outcome) {
		t.Fatalf("err %#v", r.err)
	}
	r = e.run("job", "wait", strings.ToLower(outcome.JobID), "-o", "json")
	if r.code != ExitJobFailed || !strings.Contains(r.stdout, `"status": "failed"`) || !strings.Contains(r.stderr, "failed in ") {
		t.Errorf("job wait: exit %d, stdout %s, stderr %s", r.code, r.stdout, r.stderr)
	}
}

func TestJobWait(t *testing.T) {
	e := newClientEnv(t)
	var shell task.Task
	e.okJSON(&shell, "task", "create", "echo out; exit 4")
	id := strings.TrimSpace(e.ok("task", "run", shell.ID))
	r := e.run("job", "wait", id)
	if r.code != 4 || r.stdout != "" || !strings.HasPrefix(r.stderr, "job "+id+" failed in ") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("wait failed shell job: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	var greet task.Task
	e.okJSON(&greet, "task", "create", "greet_user")
	id = strings.TrimSpace(e.ok("task", "run", greet.ID, "--param", "name=Ann"))
	r = e.run("job", "wait", id)
	if r.code != 0 || !strings.Contains(r.stderr, `completed in `) || !strings.Contains(r.stderr, `{"message":"Hello, Ann!"}`) {
		t.Errorf("wait function job: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := e.run("job", "wait", id, "-q"); r.code != 0 || r.stderr != "" {
		t.Errorf("wait -q: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := e.run("job", "wait", "01ARZ3NDEKTSV4RRFFQ69G5FAV"); r.code != ExitUsage || !strings.Contains(r.stderr, "Not Found") {
		t.Errorf("wait unknown job: exit %d, stderr %q", r.code, r.stderr)
	}
}

// interruptOn runs the command line, and "presses Ctrl-C" (cancels its
// context with errInterrupted) when a line matching trigger shows up on
// its stdout.
func interruptOn(t *testing.T, trigger string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	timeout := time.AfterFunc(30*time.Second, func() { cancel(errors.New("test timed out")) })
	defer timeout.Stop()
	cmd := NewRootCommand(servicekit.Info{})
	stdout, w := newLineWatcher(func(line string) {
		if line == trigger {
			cancel(errInterrupted)
		}
	})
	var errb syncBuffer
	cmd.SetOut(w)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	code, err := execute(ctx, cmd)
	return cliResult{stdout: stdout(), stderr: errb.String(), code: code, err: err}
}

// TestCtrlCCancelsFollowedJob: Ctrl-C during `task run --follow` says it
// cancels the job, cancels it, prints how it ended and exits 130.
func TestCtrlCCancelsFollowedJob(t *testing.T) {
	e := newClientEnv(t)
	var tk task.Task
	e.okJSON(&tk, "task", "create", "echo started; sleep 30")
	start := time.Now()
	r := interruptOn(t, "started", "task", "--server="+e.url, "run", tk.ID, "--follow")
	if r.code != ExitInterrupted {
		t.Fatalf("exit %d, want %d; stderr %s", r.code, ExitInterrupted, r.stderr)
	}
	m := regexp.MustCompile(`servicekit: interrupted; canceling job (\S+) \(run with --detach to leave it running`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	contains(t, "canceled line", r.stderr, "job "+m[1]+" canceled after ")
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("took %s: the job was not stopped", d)
	}
	out := e.ok("job", "get", m[1])
	contains(t, "job after Ctrl-C", out, "canceled")
}

// TestCtrlCDetaches: with --detach, Ctrl-C leaves the job running and says
// how to reattach, with the --server that was used.
func TestCtrlCDetaches(t *testing.T) {
	e := newClientEnv(t)
	var tk task.Task
	e.okJSON(&tk, "task", "create", "echo started; sleep 30")
	r := interruptOn(t, "started", "task", "--server="+e.url, "run", tk.ID, "--follow", "--detach")
	if r.code != ExitInterrupted {
		t.Fatalf("exit %d; stderr %s", r.code, r.stderr)
	}
	m := regexp.MustCompile(`job (\S+) submitted; Ctrl-C stops watching and leaves it running`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("stderr:\n%s", r.stderr)
	}
	id := m[1]
	contains(t, "detach", r.stderr, "stopped watching", "the job keeps running",
		"servicekit job logs "+id+" -f --server "+e.url, "servicekit job wait "+id+" --server "+e.url)
	out := e.ok("job", "get", id)
	contains(t, "job after detach", out, "running")

	// job logs -f and job wait never cancel: Ctrl-C only stops watching.
	r = interruptOn(t, "started", "job", "--server="+e.url, "logs", id, "-f")
	if r.code != ExitInterrupted || !strings.Contains(r.stderr, "the job keeps running") {
		t.Errorf("logs -f Ctrl-C: exit %d, stderr %s", r.code, r.stderr)
	}
	contains(t, "job after logs -f Ctrl-C", e.ok("job", "get", id), "running")
	e.ok("job", "cancel", id)
}

// screen collects what a pseudo-terminal shows, for a test to wait on.
type screen struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newScreen(r io.Reader) *screen {
	s := &screen{changed: make(chan struct{}, 1)}
	go func() {
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			s.mu.Lock()
			s.buf.Write(b[:n])
			s.mu.Unlock()
			select {
			case s.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

func (s *screen) text() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor blocks until the screen's text matches re.
func (s *screen) waitFor(t *testing.T, re *regexp.Regexp) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !re.MatchString(s.text()) {
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("the terminal never showed %s; it shows:\n%q", re, s.text())
		}
	}
}
