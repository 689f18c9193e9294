package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/task"
)

type greetParams struct {
	Name string `json:"name" default:"World" doc:"Who to greet"`
}

// clientEnv is a real servicekit service on a real HTTP listener; the
// commands under test talk to it exactly as the shipped binary would.
type clientEnv struct {
	t   *testing.T
	svc *servicekit.Service
	url string

	mu       sync.Mutex
	requests []string // "METHOD path?query" of every request, in order
}

// envOptions change the test service: functions to register besides
// greet_user, and API keys to require.
type envOptions struct {
	register func(*task.Registry)
	keys     []string
}

func newClientEnv(t *testing.T) *clientEnv { return newClientEnvWith(t, envOptions{}) }

func newClientEnvWith(t *testing.T, o envOptions) *clientEnv {
	t.Helper()
	reg := task.NewRegistry()
	reg.MustRegister("greet_user", func(p greetParams) map[string]any {
		return map[string]any{"message": "Hello, " + p.Name + "!"}
	}, task.Description("Greets someone"))
	if o.register != nil {
		o.register(reg)
	}
	ctx := context.Background()
	svc, err := servicekit.New(servicekit.Info{DisplayName: "t"}).
		WithDatabase("sqlite:///" + filepath.Join(t.TempDir(), "t.db")).
		WithRegistry(reg).WithTasks().WithShutdownTimeout(2 * time.Second).
		WithJobOptions(job.Options{RetryBackoff: time.Millisecond}).
		WithAPIKeys(o.keys...).
		Build(ctx)
	if err != nil {
		t.Fatal(err)
	}
	e := &clientEnv{t: t, svc: svc}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		e.requests = append(e.requests, r.Method+" "+r.URL.RequestURI())
		e.mu.Unlock()
		svc.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); svc.Close() })
	e.url = srv.URL
	return e
}

// requestsSince returns the requests made after the first n, and the new n.
func (e *clientEnv) requestsSince(n int) ([]string, int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.requests[n:]), len(e.requests)
}

type cliResult struct {
	stdout, stderr string
	code           int // the exit status cli.Main would exit with
	err            error
}

// run executes `servicekit GROUP --server=URL ARGS...`.
func (e *clientEnv) run(group string, args ...string) cliResult {
	e.t.Helper()
	return runCLI(e.t, append([]string{group, "--server=" + e.url}, args...)...)
}

// ok runs a command that must succeed and returns its stdout.
func (e *clientEnv) ok(group string, args ...string) string {
	e.t.Helper()
	r := e.run(group, args...)
	if r.err != nil || r.code != 0 {
		e.t.Fatalf("servicekit %s %v: exit %d: %v\nstderr: %s", group, args, r.code, r.err, r.stderr)
	}
	return r.stdout
}

// okJSON runs a command with -o json and decodes its output.
func (e *clientEnv) okJSON(v any, group string, args ...string) {
	e.t.Helper()
	out := e.ok(group, append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatalf("servicekit %s %v -o json: %v\n%s", group, args, err, out)
	}
}

func runCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return runCLIContext(ctx, args...)
}

// runCLIContext runs the command line as cli.Main does, with ctx standing
// in for Main's: canceling it with cause errInterrupted is a Ctrl-C.
func runCLIContext(ctx context.Context, args ...string) cliResult {
	cmd := NewRootCommand(servicekit.Info{DisplayName: "t"})
	var out, errb syncBuffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	code, err := execute(ctx, cmd)
	return cliResult{stdout: out.String(), stderr: errb.String(), code: code, err: err}
}

// syncBuffer is a bytes.Buffer safe for a test goroutine to read while the
// command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func contains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: want %q in:\n%s", what, w, got)
		}
	}
}

func TestTaskCRUD(t *testing.T) {
	e := newClientEnv(t)

	var created task.Task
	e.okJSON(&created, "task", "create", "greet_user", "--param", "name=Alice", "--retries", "2", "--timeout", "30s")
	if created.Type != "function" || !created.Enabled || created.Params["name"] != "Alice" || created.Retries != 2 ||
		created.TimeoutSeconds == nil || *created.TimeoutSeconds != 30 {
		t.Fatalf("created: %+v", created)
	}

	out := e.ok("task", "create", "echo", "hi", "--env", "GREETING=hello", "--disabled")
	contains(t, "create shell", out, "Command:", "echo hi", "shell", "false", `{"GREETING":"hello"}`)

	out = e.ok("task", "list")
	contains(t, "list", out, "ID", "COMMAND", created.ID, "greet_user", "30s", "echo hi")
	out = e.ok("task", "list", "--type", "function")
	if strings.Contains(out, "echo hi") || !strings.Contains(out, created.ID) {
		t.Errorf("list --type function:\n%s", out)
	}
	var disabled []task.Task
	e.okJSON(&disabled, "task", "list", "--enabled", "false")
	if len(disabled) != 1 || disabled[0].Command != "echo hi" {
		t.Errorf("list --enabled false: %+v", disabled)
	}

	out = e.ok("task", "get", created.ID)
	contains(t, "get", out, created.ID, "greet_user", `{"name":"Alice"}`, "Retries:", "2")

	out = e.ok("task", "update", created.ID, "--disable", "--param", "name=Bob", "--timeout", "0")
	contains(t, "update", out, `{"name":"Bob"}`, "false")
	var got task.Task
	e.okJSON(&got, "task", "get", created.ID)
	if got.Enabled || got.Params["name"] != "Bob" || got.TimeoutSeconds != nil || got.Retries != 2 || got.Command != "greet_user" {
		t.Errorf("after update: %+v", got)
	}

	r := e.run("task", "update", created.ID)
	if r.err == nil || !strings.Contains(r.stderr, "nothing to update") {
		t.Errorf("update without fields: err=%v stderr=%s", r.err, r.stderr)
	}

	out = e.ok("task", "delete", created.ID)
	contains(t, "delete", out, "deleted task "+created.ID)
	r = e.run("task", "get", created.ID)
	if r.code != ExitUsage {
		t.Fatalf("get of a deleted task: exit %d", r.code)
	}
	contains(t, "get deleted", r.stderr, "servicekit: Not Found: ")
	if r.stdout != "" {
		t.Errorf("stdout of a failed command: %q", r.stdout)
	}
}

func TestTaskFunctionsAndOrphaned(t *testing.T) {
	e := newClientEnv(t)
	out := e.ok("task", "functions")
	contains(t, "functions", out, "greet_user", `[name:string="World"]`, "Greets someone")
	var fns []task.FunctionInfo
	e.okJSON(&fns, "task", "functions")
	if len(fns) != 1 || fns[0].Name != "greet_user" {
		t.Errorf("functions json: %+v", fns)
	}

	var tk task.Task
	e.okJSON(&tk, "task", "create", "greet_user")
	out = e.ok("task", "orphaned", "--reason", "no_job")
	contains(t, "orphaned", out, tk.ID, "no_job")
	var orph struct {
		Count int `json:"count"`
	}
	e.okJSON(&orph, "task", "orphaned")
	if orph.Count != 1 {
		t.Errorf("orphaned count = %d", orph.Count)
	}
	r := e.run("task", "orphaned", "--reason", "bogus")
	if r.err == nil {
		t.Error("orphaned --reason bogus succeeded")
	}
	contains(t, "orphaned bad reason", r.stderr, "Bad Request: ", "bogus")
}

func TestTaskRunWait(t *testing.T) {
	e := newClientEnv(t)
	var tk task.Task
	e.okJSON(&tk, "task", "create", "greet_user")

	// --wait: the job id first, then one final line, both on stderr;
	// stdout stays empty for data.
	r := e.run("task", "run", tk.ID, "--param", "name=Alice", "--wait")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("run --wait: exit %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 2 || !regexp.MustCompile(`^job [0-9A-Z]{26} submitted; Ctrl-C cancels it`).MatchString(lines[0]) ||
		!regexp.MustCompile(`^job [0-9A-Z]{26} completed in (<1ms|\d+ms|\d+\.\ds): \{"message":"Hello, Alice!"\}$`).MatchString(lines[1]) ||
		lines[0][4:30] != lines[1][4:30] {
		t.Errorf("run --wait stderr:\n%s", r.stderr)
	}

	var job struct {
		ID         string         `json:"id"`
		Status     string         `json:"status"`
		Result     map[string]any `json:"result"`
		ArtifactID string         `json:"artifact_id"`
	}
	e.okJSON(&job, "task", "run", tk.ID, "--wait")
	if job.Status != "completed" || job.Result["message"] != "Hello, World!" || job.ArtifactID == "" {
		t.Errorf("run --wait -o json: %+v", job)
	}

	// Without flags it prints only the job id, for $(…) in scripts.
	id := strings.TrimSpace(e.ok("task", "run", tk.ID))
	if len(id) != 26 {
		t.Errorf("run printed %q, want a job id", id)
	}
	// Ids are case-insensitive, as Crockford base32 is.
	out := e.ok("job", "get", strings.ToLower(id))
	contains(t, "job get", out, id, tk.ID, "greet_user")
}

func TestTaskRunFollowExitCode(t *testing.T) {
	e := newClientEnv(t)
	var tk task.Task
	e.okJSON(&tk, "task", "create", "echo a; echo b >&2; exit 7")

	r := e.run("task", "run", tk.ID, "--follow")
	if r.code != 7 {
		t.Fatalf("exit code %d (err %v), want 7; stderr: %s", r.code, r.err, r.stderr)
	}
	var outcome *JobOutcomeError
	if !errors.As(r.err, &outcome) || outcome.Status != "failed" {
		t.Fatalf("err = %#v", r.err)
	}
	// stdout is the job's stdout; stderr the job's id, its stderr and the
	// final line.
	if r.stdout != "a\n" {
		t.Errorf("stdout %q, want \"a\\n\"", r.stdout)
	}
	want := "job " + outcome.JobID + " submitted; Ctrl-C cancels it (--detach leaves it running)\nb\n"
	if !strings.HasPrefix(r.stderr, want) || !regexp.MustCompile(`\njob `+outcome.JobID+` failed in \S+ \(exit code 7\): exit status 7\n$`).MatchString(r.stderr) {
		t.Errorf("stderr:\n%s", r.stderr)
	}
	// -q: the job's own streams, nothing more.
	r = e.run("task", "run", tk.ID, "--follow", "-q")
	if r.code != 7 || r.stdout != "a\n" || r.stderr != "b\n" {
		t.Errorf("-q: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}

	// job logs: both streams, one stream, and -f on a finished job. The
	// job's two pipes are read independently, so "a" and "b" may have been
	// received in either order.
	sorted := func(s string) string {
		lines := strings.SplitAfter(s, "\n")
		slices.Sort(lines)
		return strings.Join(lines, "")
	}
	if out := e.ok("job", "logs", outcome.JobID); sorted(out) != "a\nb\n" {
		t.Errorf("job logs = %q", out)
	}
	if out := e.ok("job", "logs", outcome.JobID, "--stream", "stderr"); out != "b\n" {
		t.Errorf("job logs --stream stderr = %q", out)
	}
	// -f exits with the job's outcome, and says how it ended on stderr.
	r = e.run("job", "logs", outcome.JobID, "-f")
	if sorted(r.stdout) != "a\nb\n" || r.code != 7 || !strings.Contains(r.stderr, "failed in ") {
		t.Errorf("job logs -f: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = e.run("job", "logs", strings.ToLower(outcome.JobID), "-f", "--stream", "stdout")
	if r.stdout != "a\n" || r.code != 7 {
		t.Errorf("job logs -f --stream stdout: exit %d, stdout %q", r.code, r.stdout)
	}

	// A shell job that succeeds exits 0; the final line has its exit code.
	var ok task.Task
	e.okJSON(&ok, "task", "create", "echo done")
	r = e.run("task", "run", ok.ID, "--follow", "--wait")
	if r.code != 0 || r.stdout != "done\n" {
		t.Errorf("follow+wait: exit %d, stdout %q", r.code, r.stdout)
	}
	contains(t, "follow+wait", r.stderr, " completed in ", "(exit code 0)")
}

func TestTaskRunFollowLive(t *testing.T) {
	e := newClientEnv(t)
	// The second line is written only after the first was seen by the
	// client, which proves lines arrive while the job runs rather than at its end.
	marker := filepath.Join(t.TempDir(), "seen")
	var tk task.Task
	e.okJSON(&tk, "task", "create", "echo first; while [ ! -e "+marker+" ]; do sleep 0.05; done; echo second")

	cmd := NewRootCommand(servicekit.Info{})
	pr, pw := newLineWatcher(func(line string) {
		if line == "first" {
			touch(t, marker)
		}
	})
	var errb bytes.Buffer
	cmd.SetOut(pw)
	cmd.SetErr(&errb)
	cmd.SetArgs([]string{"task", "--server=" + e.url, "run", tk.ID, "--follow"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("run --follow: %v; stderr %s", err, errb.String())
	}
	if got := pr(); got != "first\nsecond\n" {
		t.Errorf("followed output %q", got)
	}
}

func TestJobListGetCancel(t *testing.T) {
	e := newClientEnv(t)
	var tk task.Task
	e.okJSON(&tk, "task", "create", "sleep 30")
	id := strings.TrimSpace(e.ok("task", "run", tk.ID))

	out := e.ok("job", "list", "--task", tk.ID)
	contains(t, "job list", out, "STATUS", id, "sleep 30")
	var jobs []map[string]any
	e.okJSON(&jobs, "job", "list", "--status", "completed")
	if len(jobs) != 0 {
		t.Errorf("completed jobs: %v", jobs)
	}

	start := time.Now()
	out = e.ok("job", "cancel", id)
	contains(t, "job cancel", out, id, "canceled")
	if time.Since(start) > 15*time.Second {
		t.Errorf("cancel took %s", time.Since(start))
	}
	out = e.ok("job", "get", id)
	contains(t, "job get", out, "Status:", "canceled", "Error:")

	r := e.run("job", "cancel", id)
	if r.err == nil {
		t.Fatal("canceling a finished job succeeded")
	}
	contains(t, "cancel again", r.stderr, "servicekit: Conflict: ", "already finished")

	r = e.run("job", "get", "not-an-id")
	contains(t, "bad id", r.stderr, "Bad Request: ", "not a valid ULID")

	r = e.run("job", "list", "--status", "bogus")
	contains(t, "bad status", r.stderr, "Bad Request: ", "bogus")
}

func TestArtifactGetTree(t *testing.T) {
	e := newClientEnv(t)
	var tk task.Task
	e.okJSON(&tk, "task", "create", "echo hello")
	var job struct {
		ArtifactID string `json:"artifact_id"`
	}
	e.okJSON(&job, "task", "run", tk.ID, "--wait")
	if job.ArtifactID == "" {
		t.Fatal("job has no artifact")
	}

	out := e.ok("artifact", "get", job.ArtifactID)
	contains(t, "artifact get", out, job.ArtifactID, "Level:", "Data:", `"stdout": "hello\n"`, `"exit_code": 0`)
	var a struct {
		Data struct {
			Stdout string `json:"stdout"`
		} `json:"data"`
	}
	e.okJSON(&a, "artifact", "get", job.ArtifactID)
	if a.Data.Stdout != "hello\n" {
		t.Errorf("artifact get -o json: %+v", a)
	}

	ctx := context.Background()
	child, err := e.svc.Artifacts.Save(ctx, map[string]any{"k": 1}, &job.ArtifactID)
	if err != nil {
		t.Fatal(err)
	}
	grandchild, err := e.svc.Artifacts.Save(ctx, map[string]any{"k": 2}, &child.ID)
	if err != nil {
		t.Fatal(err)
	}
	out = e.ok("artifact", "tree", job.ArtifactID)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("tree:\n%s", out)
	}
	if h := strings.Join(strings.Fields(lines[0]), " "); h != "ID LEVEL CREATED" {
		t.Errorf("tree header %q: LABEL would only repeat level_<n>", h)
	}
	for i, want := range []struct {
		prefix, level string
	}{{job.ArtifactID, "0"}, {"  " + child.ID, "1"}, {"    " + grandchild.ID, "2"}} {
		f := strings.Fields(lines[i+1])
		if !strings.HasPrefix(lines[i+1], want.prefix) || len(f) < 2 || f[1] != want.level {
			t.Errorf("tree line %d = %q, want %q at level %s", i+1, lines[i+1], want.prefix, want.level)
		}
	}
	// Named levels say more than the number: then LABEL is shown.
	e.svc.Artifacts.Hierarchy = artifact.Hierarchy{Name: "ml", LevelLabels: []string{"experiment", "run"}}
	out = e.ok("artifact", "tree", job.ArtifactID)
	contains(t, "named tree", out, "LABEL", "experiment", "run", "level_2")
	var tree struct {
		ID       string `json:"id"`
		Children []struct {
			ID       string `json:"id"`
			Children []struct {
				ID string `json:"id"`
			} `json:"children"`
		} `json:"children"`
	}
	e.okJSON(&tree, "artifact", "tree", job.ArtifactID)
	if tree.ID != job.ArtifactID || len(tree.Children) != 1 || tree.Children[0].Children[0].ID != grandchild.ID {
		t.Errorf("tree -o json: %+v", tree)
	}
}

// TestProblems checks that a refused request exits ExitUsage with the
// problem on one line, whatever the status.
func TestProblems(t *testing.T) {
	e := newClientEnv(t)
	var tk task.Task
	e.okJSON(&tk, "task", "create", "greet_user", "--disabled")

	oneLine := func(what string, r cliResult, wants ...string) {
		t.Helper()
		if r.code != ExitUsage {
			t.Errorf("%s: exit %d, want %d; stderr %s", what, r.code, ExitUsage, r.stderr)
		}
		if strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "servicekit: ") {
			t.Errorf("%s: want one line on stderr, got:\n%s", what, r.stderr)
		}
		contains(t, what, r.stderr, wants...)
		if r.stdout != "" {
			t.Errorf("%s: stdout %q", what, r.stdout)
		}
	}
	r := e.run("task", "run", tk.ID, "--wait")
	oneLine("409", r, "servicekit: Conflict: Cannot execute disabled task "+tk.ID)
	var p *ProblemError
	if !errors.As(r.err, &p) || p.Status != 409 {
		t.Errorf("err = %#v, want a *ProblemError", r.err)
	}
	oneLine("404", e.run("job", "get", "01ARZ3NDEKTSV4RRFFQ69G5FAV"), "servicekit: Not Found: ")
	oneLine("400", e.run("task", "get", "not-an-id"), "servicekit: Bad Request: ", "not-an-id")
	// Validation problems list each invalid input, still on the one line.
	oneLine("422", e.run("task", "create", "greet_user", "--param", "name=3", "--param", "bogus=true"),
		"servicekit: Unprocessable Entity: ", "(body.params.", "; body.params.", "bogus")

	keyed := newClientEnvWith(t, envOptions{keys: []string{"sekret"}})
	oneLine("401", keyed.run("task", "list"), "servicekit: Unauthorized: ", "--api-key or SERVICEKIT_API_KEY")
	if r := keyed.run("task", "list", "--api-key", "sekret"); r.code != 0 {
		t.Errorf("with the key: exit %d, %s", r.code, r.stderr)
	}
}

// TestUsageErrors checks that every way of calling a command wrong exits
// ExitUsage with a message, cobra's findings and the commands' own alike.
func TestUsageErrors(t *testing.T) {
	e := newClientEnv(t)
	for _, c := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"task", "bogus"}, []string{`unknown command "bogus" for "servicekit task"`, "Run 'servicekit task --help' for usage."}},
		{[]string{"task", "lsit"}, []string{`unknown command "lsit"`, "did you mean list?"}},
		{[]string{"job", "bogus"}, []string{`unknown command "bogus" for "servicekit job"`}},
		{[]string{"artifact", "bogus"}, []string{`unknown command "bogus" for "servicekit artifact"`}},
		{[]string{"bogus"}, []string{`unknown command "bogus" for "servicekit"`}},
		{[]string{"task", "create"}, []string{"requires at least 1 arg", "Run 'servicekit task create --help'"}},
		{[]string{"job", "list", "--bogus"}, []string{"unknown flag: --bogus"}},
		{[]string{"job", "list", "--limit", "0"}, []string{"--limit 0: want 1 to 1000"}},
		{[]string{"job", "logs", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--stream", "both"}, []string{`--stream "both"`}},
		{[]string{"task", "create", "x", "-o", "yaml"}, []string{`--output "yaml"`}},
		{[]string{"task", "create", "echo hi", "--param", "novalue"}, []string{`--param "novalue": want key=value`}},
		{[]string{"task", "run", "01ARZ3NDEKTSV4RRFFQ69G5FAV", "--detach"}, []string{"--detach only applies with --wait or --follow"}},
		{[]string{"task", "update", "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, []string{"nothing to update"}},
		{[]string{"serve", "--log-level", "loud"}, []string{`--log-level "loud"`}},
	} {
		args := c.args
		if args[0] != "serve" && args[0] != "bogus" {
			args = append([]string{args[0], "--server=" + e.url}, args[1:]...)
		}
		r := runCLI(t, args...)
		if r.code != ExitUsage {
			t.Errorf("%v: exit %d, want %d; stderr %s", c.args, r.code, ExitUsage, r.stderr)
		}
		contains(t, strings.Join(c.args, " "), r.stderr, c.wants...)
	}
	// A group alone is a request for its help, not an error.
	if r := runCLI(t, "task"); r.code != 0 || !strings.Contains(r.stdout, "Available Commands") {
		t.Errorf("servicekit task: exit %d, stdout %s", r.code, r.stdout)
	}
}

func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r := runCLI(t, "job", "--server", "http://"+addr, "list")
	if r.code != ExitUnreachable {
		t.Errorf("exit %d, want %d", r.code, ExitUnreachable)
	}
	var ce *ConnectError
	if !errors.As(r.err, &ce) {
		t.Errorf("err = %#v, want a *ConnectError", r.err)
	}
	contains(t, "refused", r.stderr, "http://"+addr, "connection refused", "--server", "SERVICEKIT_URL")
}

func TestParseParams(t *testing.T) {
	got, err := parseParams([]string{"n=3", "b=true", "o={\"x\":1}", "s=Alice", "z=007", "q=\"3\"", "e=", "eq=a=b", "two=1 2"})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(got)
	want := `{"b":true,"e":"","eq":"a=b","n":3,"o":{"x":1},"q":"3","s":"Alice","two":"1 2","z":"007"}`
	if string(b) != want {
		t.Errorf("parseParams = %s\nwant          %s", b, want)
	}
}

func TestReadEvents(t *testing.T) {
	stream := ": keep-alive\n\nid: 1\nevent: log\ndata: {\"a\":1}\n\r\nid: 2\r\ndata:x\ndata: y\n\nid: 3\nevent: status\ndata: unfinished"
	var got []sseEvent
	err := readEvents(strings.NewReader(stream), func(ev sseEvent) (bool, error) {
		ev.data = append([]byte(nil), ev.data...)
		got = append(got, ev)
		return false, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].id != "1" || got[0].event != "log" || string(got[0].data) != `{"a":1}` ||
		got[1].id != "2" || got[1].event != "message" || string(got[1].data) != "x\ny" {
		t.Errorf("events = %+v", got)
	}
}

// lineWatcher is an io.Writer that calls onLine for each complete line as
// it is written, so a test can react to output while the command runs.
type lineWatcher struct {
	mu      sync.Mutex
	all     bytes.Buffer
	pending []byte
	onLine  func(string)
}

func newLineWatcher(onLine func(string)) (func() string, io.Writer) {
	w := &lineWatcher{onLine: onLine}
	return func() string {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.all.String()
	}, w
}

func (w *lineWatcher) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.all.Write(p)
	w.pending = append(w.pending, p...)
	for {
		i := bytes.IndexByte(w.pending, '\n')
		if i < 0 {
			return len(p), nil
		}
		line := string(w.pending[:i])
		w.pending = w.pending[i+1:]
		w.onLine(line)
	}
}

func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Error(err)
	}
}
