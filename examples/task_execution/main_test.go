package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/cli"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/task"
)

// newService builds the service in-process the way `serve` does, over a
// fresh SQLite file. No registry is given, so it runs task.Default — the
// functions this package's init registered, as the real binary would.
func newService(t *testing.T) *servicekit.Service {
	t.Helper()
	svc, err := servicekit.New(info).
		WithDatabase("sqlite:///" + filepath.Join(t.TempDir(), "tasks.db")).
		WithJobs(4).
		WithShutdownTimeout(time.Second).
		WithTasks().
		Build(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

// run creates a task for command and runs it with params through the Go
// API, returning the finished job.
func run(t *testing.T, svc *servicekit.Service, command string, params map[string]any) *job.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	tk, err := svc.Tasks.Create(ctx, task.Input{Command: command})
	if err != nil {
		t.Fatalf("create %s: %v", command, err)
	}
	if tk.Type != task.TypeFunction {
		t.Fatalf("task %s has type %q, want function (is it registered?)", command, tk.Type)
	}
	rec, err := svc.Tasks.Run(ctx, tk.ID, task.ExecuteInput{Params: params})
	if err != nil {
		t.Fatalf("run %s: %v", command, err)
	}
	return rec
}

// result decodes a completed job's result, failing the test if the job did
// not complete.
func result(t *testing.T, rec *job.Record) map[string]any {
	t.Helper()
	if rec.Status != job.Completed {
		t.Fatalf("job %s (%s) ended %s with error %v, want completed", rec.ID, rec.Command, rec.Status, deref(rec.Error))
	}
	var m map[string]any
	if err := json.Unmarshal(rec.Result, &m); err != nil {
		t.Fatalf("result %s: %v", rec.Result, err)
	}
	return m
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// asJSON normalizes v through JSON so results compare against literals
// regardless of Go types (numbers become float64).
func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func assertJSON(t *testing.T, got, want any) {
	t.Helper()
	g, w := asJSON(t, got), asJSON(t, want)
	gb, _ := json.Marshal(g)
	wb, _ := json.Marshal(w)
	if !bytes.Equal(gb, wb) {
		t.Errorf("got  %s\nwant %s", gb, wb)
	}
}

func TestRegistersExactlyTheGuideFunctions(t *testing.T) {
	var names []string
	for _, f := range task.Default.Functions() {
		names = append(names, f.Name())
	}
	want := []string{"add", "count_files", "fail_task", "greet_user", "hello", "long_task",
		"process_csv", "process_data", "safe_task", "store_result"}
	if !slices.Equal(names, want) {
		t.Fatalf("registered %v, want %v", names, want)
	}
}

func TestSimpleFunctions(t *testing.T) {
	svc := newService(t)
	tests := []struct {
		command string
		params  map[string]any
		want    map[string]any
	}{
		{"greet_user", nil, map[string]any{"message": "Hello, World!"}},
		{"greet_user", map[string]any{"name": "Alice"}, map[string]any{"message": "Hello, Alice!"}},
		{"hello", nil, map[string]any{"message": "Hello!"}},
		{"add", map[string]any{"a": 5, "b": 3}, map[string]any{"result": 8}},
		{"safe_task", map[string]any{"risky_param": "data"}, map[string]any{"status": "success", "result": "processed data"}},
		{"safe_task", map[string]any{"risky_param": "fail"}, map[string]any{"status": "error", "error": "risky operation failed"}},
		{"safe_task", map[string]any{"risky_param": ""}, map[string]any{"status": "error", "error": "risky operation: risky_param is empty"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s%v", tt.command, tt.params), func(t *testing.T) {
			assertJSON(t, result(t, run(t, svc, tt.command, tt.params)), tt.want)
		})
	}
}

func TestAddRequiresBothArguments(t *testing.T) {
	svc := newService(t)
	tk, err := svc.Tasks.Create(t.Context(), task.Input{Command: "add", Params: map[string]any{"a": 1}})
	if err != nil {
		t.Fatal(err) // a required argument may wait for $execute
	}
	_, err = svc.Tasks.Execute(t.Context(), tk.ID, task.ExecuteInput{})
	var ve *task.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("execute add without b: got %v, want a validation error", err)
	}
	if !slices.ContainsFunc(ve.Fields, func(f task.FieldError) bool { return f.Location == "body.params.b" }) {
		t.Errorf("fields %v, want one at body.params.b", ve.Fields)
	}
}

func TestFailTask(t *testing.T) {
	svc := newService(t)
	rec := run(t, svc, "fail_task", map[string]any{"message": "something went wrong"})
	if rec.Status != job.Failed || deref(rec.Error) != "something went wrong" {
		t.Fatalf("got status %s error %q, want failed with the message", rec.Status, deref(rec.Error))
	}
	if rec.ArtifactID == nil {
		t.Error("a failed job still gets its artifact")
	}
}

func TestArtifactFunctions(t *testing.T) {
	svc := newService(t)

	t.Run("process_data", func(t *testing.T) {
		res := result(t, run(t, svc, "process_data", nil))
		if res["status"] != "complete" {
			t.Errorf("status %v, want complete", res["status"])
		}
		a, err := svc.Artifacts.Get(t.Context(), fmt.Sprint(res["artifact_id"]))
		if err != nil {
			t.Fatal(err)
		}
		assertJSON(t, a.Data, map[string]any{"processed": true, "database": "sqlite"})
	})

	t.Run("store_result", func(t *testing.T) {
		data := map[string]any{"key": "value", "nested": map[string]any{"n": 1}}
		res := result(t, run(t, svc, "store_result", map[string]any{"data": data}))
		a, err := svc.Artifacts.Get(t.Context(), fmt.Sprint(res["artifact_id"]))
		if err != nil {
			t.Fatal(err)
		}
		assertJSON(t, a.Data, data)
	})
}

// dataDir points TASK_DATA_DIR at a fresh directory for the test.
func dataDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	t.Setenv(DataDirEnv, dir)
	return dir
}

func TestCountFiles(t *testing.T) {
	svc := newService(t)
	dir := dataDir(t)
	for _, name := range []string{"a.txt", "b.txt", "c.csv"} {
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	// The default is the data directory itself.
	assertJSON(t, result(t, run(t, svc, "count_files", nil)),
		map[string]any{"count": 4, "directory": "."})
	assertJSON(t, result(t, run(t, svc, "count_files", map[string]any{"directory": "sub"})),
		map[string]any{"count": 1, "directory": "sub"})

	rec := run(t, svc, "count_files", map[string]any{"directory": "missing"})
	if rec.Status != job.Failed || !strings.Contains(deref(rec.Error), "missing") {
		t.Errorf("missing directory: status %s error %q, want failed naming it", rec.Status, deref(rec.Error))
	}
}

func TestProcessCSV(t *testing.T) {
	svc := newService(t)
	dir := dataDir(t)
	csvText := "\ufeffname,age,score,city,empty,score\n" +
		"alice,30,88.5,Paris,,1\n" +
		"bob,25,,Berlin,,2\n" +
		"carol,35,91.5,\"Rome, IT\",,3\n" +
		"dave,40,70,Oslo,,NaN\n"
	if err := os.WriteFile(filepath.Join(dir, "data.csv"), []byte(csvText), 0o644); err != nil {
		t.Fatal(err)
	}
	res := result(t, run(t, svc, "process_csv", map[string]any{"filepath": "data.csv"}))
	assertJSON(t, res, map[string]any{
		"rows":    4,
		"columns": []string{"name", "age", "score", "city", "empty", "score.1"},
		"summary": map[string]any{
			"age":     map[string]any{"count": 4, "mean": 32.5, "min": 25, "max": 40},
			"score":   map[string]any{"count": 3, "mean": 83.33333333333333, "min": 70, "max": 91.5},
			"score.1": map[string]any{"count": 3, "mean": 2, "min": 1, "max": 3},
		},
	})

	t.Run("header only", func(t *testing.T) {
		os.WriteFile(filepath.Join(dir, "h.csv"), []byte("a,b\n"), 0o644)
		assertJSON(t, result(t, run(t, svc, "process_csv", map[string]any{"filepath": "h.csv"})),
			map[string]any{"rows": 0, "columns": []string{"a", "b"}, "summary": map[string]any{}})
	})
	for name, content := range map[string]string{"empty": "", "ragged": "a,b\n1,2\n3\n"} {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(filepath.Join(dir, name+".csv"), []byte(content), 0o644)
			if rec := run(t, svc, "process_csv", map[string]any{"filepath": name + ".csv"}); rec.Status != job.Failed {
				t.Errorf("status %s, want failed", rec.Status)
			}
		})
	}
	if rec := run(t, svc, "process_csv", map[string]any{"filepath": "data.csv.missing"}); rec.Status != job.Failed {
		t.Errorf("missing file: status %s, want failed", rec.Status)
	}
}

// TestFilesConfinedToDataDir: count_files and process_csv take paths from
// whoever can create a task, so they must reach nothing outside the data
// directory — not /etc/passwd, not a secret beside the data directory,
// not through "..", not through a symbolic link planted inside it.
func TestFilesConfinedToDataDir(t *testing.T) {
	svc := newService(t)
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.csv")
	if err := os.WriteFile(secret, []byte("password\nhunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(outside, "data")
	t.Setenv(DataDirEnv, dir)
	if err := os.MkdirAll(filepath.Join(dir, "in"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "in", "ok.csv"), []byte("n\n1\n"), 0o644)
	if err := os.Symlink(secret, filepath.Join(dir, "link.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "up")); err != nil {
		t.Fatal(err)
	}
	// The file exists and the server can read it: only the confinement stops these.
	if _, err := os.ReadFile(secret); err != nil {
		t.Fatal(err)
	}

	for _, path := range []string{"/etc/passwd", secret, "../secret.csv", "in/../../secret.csv", "link.csv", "up/secret.csv", ""} {
		rec := run(t, svc, "process_csv", map[string]any{"filepath": path})
		if rec.Status != job.Failed || rec.Result != nil && string(rec.Result) != "null" {
			t.Errorf("process_csv %q: status %s result %s, want failed", path, rec.Status, rec.Result)
			continue
		}
		if e := deref(rec.Error); strings.Contains(e, "hunter2") || strings.Contains(e, "root:") {
			t.Errorf("process_csv %q leaked file content in its error: %s", path, e)
		}
	}
	for _, d := range []string{"/", "/etc", "..", "up"} {
		if rec := run(t, svc, "count_files", map[string]any{"directory": d}); rec.Status != job.Failed {
			t.Errorf("count_files %q: status %s, want failed", d, rec.Status)
		}
	}
	// A ".." that stays inside is just a path.
	assertJSON(t, result(t, run(t, svc, "process_csv", map[string]any{"filepath": "in/../in/ok.csv"})),
		map[string]any{"rows": 1, "columns": []string{"n"}, "summary": map[string]any{"n": map[string]any{"count": 1, "mean": 1, "min": 1, "max": 1}}})
	rec := run(t, svc, "process_csv", map[string]any{"filepath": "/etc/passwd"})
	if e := deref(rec.Error); !strings.Contains(e, "relative path inside the data directory") {
		t.Errorf("absolute path refused with %q, want it to say what is allowed", e)
	}
}

func TestLongTaskLogsAndProgress(t *testing.T) {
	svc := newService(t)
	rec := run(t, svc, "long_task", map[string]any{"steps": 3, "delay_ms": 10})
	assertJSON(t, result(t, rec), map[string]any{"status": "complete"})

	logs, err := svc.Jobs.Logs(t.Context(), rec.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range logs {
		if l.Stream != "stdout" {
			t.Errorf("unexpected %s line %q", l.Stream, l.Line)
			continue
		}
		lines = append(lines, l.Line)
	}
	if want := []string{"Progress: 1/3", "Progress: 2/3", "Progress: 3/3"}; !slices.Equal(lines, want) {
		t.Errorf("log %q, want %q", lines, want)
	}
	if p := rec.Progress; p == nil || p.Current != 3 || p.Total != 3 {
		t.Errorf("progress %+v, want 3 of 3", p)
	}
}

func TestLongTaskCancel(t *testing.T) {
	svc := newService(t)
	tk, err := svc.Tasks.Create(t.Context(), task.Input{Command: "long_task"})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := svc.Tasks.Execute(t.Context(), tk.ID, task.ExecuteInput{Params: map[string]any{"steps": 5, "delay_ms": 60_000}})
	if err != nil {
		t.Fatal(err)
	}
	// Cancel once the function is inside its first step (its "starting"
	// progress is stored), so this tests the function honouring ctx rather
	// than a pending job being dropped.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := svc.Jobs.Get(t.Context(), rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.Status == job.Running && r.Progress != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job still %s without progress after 10s", r.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
	start := time.Now()
	r, err := svc.Jobs.Cancel(t.Context(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != job.Canceled {
		t.Fatalf("status %s, want canceled", r.Status)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cancel took %s; the function should stop at once", d)
	}
}

func TestHTTPWorkflow(t *testing.T) {
	svc := newService(t)
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)

	do := func(method, path, body string, wantStatus int) []byte {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != wantStatus {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, wantStatus)
		}
		return b
	}
	decode := func(b []byte) map[string]any {
		t.Helper()
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return m
	}

	created := decode(do("POST", "/api/v1/tasks",
		`{"command": "greet_user", "enabled": true, "params": {"name": "Alice"}}`, http.StatusCreated))
	taskID := created["id"].(string)
	if created["type"] != "function" {
		t.Errorf("type %v, want function", created["type"])
	}
	idle := decode(do("POST", "/api/v1/tasks", `{"command": "hello"}`, http.StatusCreated))

	exec := decode(do("POST", "/api/v1/tasks/"+taskID+"/$execute", `{"params": {"name": "Bob"}}`, http.StatusAccepted))
	jobID := exec["job_id"].(string)
	if exec["message"] != "Task execution started" {
		t.Errorf("message %v", exec["message"])
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if _, err := svc.Jobs.Wait(ctx, jobID); err != nil {
		t.Fatal(err)
	}

	j := decode(do("GET", "/api/v1/jobs/"+jobID, "", http.StatusOK))
	if j["status"] != "completed" {
		t.Fatalf("job %v", j)
	}
	assertJSON(t, j["result"], map[string]any{"message": "Hello, Bob!"})
	assertJSON(t, j["params"], map[string]any{"name": "Bob"})

	// The job is finished, so the stream replays its story and closes.
	stream := string(do("GET", "/api/v1/jobs/"+jobID+"/$stream", "", http.StatusOK))
	if !strings.Contains(stream, "event: status") || !strings.Contains(stream, `"status":"completed"`) {
		t.Errorf("stream does not end with the completed status:\n%s", stream)
	}

	orphaned := decode(do("GET", "/api/v1/tasks/$orphaned", "", http.StatusOK))
	var ids []string
	for _, o := range orphaned["orphaned_tasks"].([]any) {
		ids = append(ids, o.(map[string]any)["id"].(string))
	}
	if !slices.Equal(ids, []string{idle["id"].(string)}) || orphaned["count"] != float64(1) {
		t.Errorf("orphaned %v, want only the never-executed hello task", orphaned)
	}
}

func TestServeTakesServicekitFlags(t *testing.T) {
	cmd := cli.NewRootCommand(info)
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"serve", "--help"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, flag := range []string{"--addr", "--database", "--max-concurrency", "--output-limit", "--shutdown-timeout", "--job-retention"} {
		if !strings.Contains(out.String(), flag) {
			t.Errorf("serve --help lacks %s:\n%s", flag, out.String())
		}
	}
}
