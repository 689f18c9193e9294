package servicekit_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/task"
)

type greetParams struct {
	Name string `json:"name" default:"World" doc:"Who to greet"`
}

type addParams struct {
	A int `json:"a"`
	B int `json:"b"`
}

type sleepParams struct {
	MS int `json:"ms" default:"10000"`
}

func testRegistry() *task.Registry {
	r := task.NewRegistry()
	r.MustRegister("greet_user", func(ctx context.Context, p greetParams) (map[string]any, error) {
		return map[string]any{"message": "Hello, " + p.Name + "!"}, nil
	}, task.Description("Greets someone"))
	r.MustRegister("add", func(p addParams) map[string]any { return map[string]any{"result": p.A + p.B} })
	r.MustRegister("fail_task", func() error { return errors.New("it broke") })
	r.MustRegister("boom", func() { panic("kaboom") })
	r.MustRegister("sleepy", func(ctx context.Context, p sleepParams, w io.Writer, prog task.Progress) error {
		fmt.Fprintln(w, "sleeping")
		prog.Report(1, 2, "half way")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(p.MS) * time.Millisecond):
			return nil
		}
	})
	return r
}

type env struct {
	t   *testing.T
	svc *servicekit.Service
	srv *httptest.Server
}

func newEnv(t *testing.T) *env {
	t.Helper()
	return newEnvOn(t, "sqlite:///"+filepath.Join(t.TempDir(), "t.db"))
}

// eachEnv runs test against a service on each database (see dbtest.Each):
// the HTTP API must behave the same on SQLite and PostgreSQL.
func eachEnv(t *testing.T, test func(t *testing.T, e *env)) {
	dbtest.Each(t, func(t *testing.T, url string) { test(t, newEnvOn(t, url)) })
}

func newEnvOn(t *testing.T, url string) *env {
	t.Helper()
	svc, err := servicekit.New(servicekit.Info{DisplayName: "test"}).
		WithDatabase(url).
		WithJobs(4).WithRegistry(testRegistry()).WithTasks().
		WithShutdownTimeout(2 * time.Second).
		Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return &env{t: t, svc: svc, srv: srv}
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json() map[string]any {
	var m map[string]any
	json.Unmarshal(r.body, &m)
	return m
}

func (r resp) list() []map[string]any {
	var m []map[string]any
	json.Unmarshal(r.body, &m)
	return m
}

func (e *env) do(method, path string, body any, hdr ...string) resp {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// want checks the status and, for errors, the problem shape and slug.
func (e *env) want(r resp, status int, slug string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if slug == "" {
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		e.t.Fatalf("content type %q for %d: %s", ct, status, r.body)
	}
	p := r.json()
	if p["type"] != "urn:servicekit:error:"+slug || p["status"] != float64(status) || p["title"] == "" || p["instance"] == "" || p["detail"] == "" {
		e.t.Fatalf("problem %s, want slug %s", r.body, slug)
	}
}

func (e *env) createTask(body any) map[string]any {
	e.t.Helper()
	r := e.do("POST", "/api/v1/tasks", body)
	e.want(r, 201, "")
	t := r.json()
	if r.header.Get("Location") != "/api/v1/tasks/"+t["id"].(string) {
		e.t.Fatalf("location %q", r.header.Get("Location"))
	}
	return t
}

func (e *env) execute(taskID string, body any) string {
	e.t.Helper()
	r := e.do("POST", "/api/v1/tasks/"+taskID+"/$execute", body)
	e.want(r, 202, "")
	m := r.json()
	if m["message"] != "Task execution started" || m["task_id"] != taskID || r.header.Get("Location") != "/api/v1/jobs/"+m["job_id"].(string) {
		e.t.Fatalf("execute answer %s %v", r.body, r.header)
	}
	return m["job_id"].(string)
}

func (e *env) waitJob(id string) map[string]any {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := e.svc.Jobs.Wait(ctx, id); err != nil {
		e.t.Fatal(err)
	}
	return e.do("GET", "/api/v1/jobs/"+id, nil).json()
}

// waitRunning waits until the job is running (tests only).
func (e *env) waitRunning(id string) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.do("GET", "/api/v1/jobs/"+id, nil).json()["status"] != "running" {
		if time.Now().After(deadline) {
			e.t.Fatalf("job %s never ran", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestTaskCRUD(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		fn := e.createTask(map[string]any{"command": "greet_user", "params": map[string]any{"name": "Alice"}})
		if fn["type"] != "function" || fn["enabled"] != true || fn["retries"] != 0.0 || fn["env"] != nil || fn["timeout_seconds"] != nil {
			t.Fatalf("function task %v", fn)
		}
		sh := e.createTask(map[string]any{"command": "echo hi", "env": map[string]string{"A": "1"}, "timeout_seconds": 5, "retries": 2})
		if sh["type"] != "shell" || sh["params"] != nil || sh["timeout_seconds"] != 5.0 {
			t.Fatalf("shell task %v", sh)
		}
		disabled := e.createTask(map[string]any{"command": "add", "enabled": false})

		// Bad input: each is refused with the right problem, and nothing is stored.
		e.want(e.do("POST", "/api/v1/tasks", map[string]any{"command": "echo x", "params": map[string]any{"a": 1}}), 422, "validation-failed")
		r := e.do("POST", "/api/v1/tasks", map[string]any{"command": "greet_usr", "params": map[string]any{}})
		e.want(r, 422, "validation-failed")
		if !strings.Contains(string(r.body), `no function named \"greet_usr\" is registered`) {
			t.Fatalf("typo detail: %s", r.body)
		}
		e.want(e.do("POST", "/api/v1/tasks", map[string]any{"command": "greet_user", "params": map[string]any{"name": 3}}), 422, "validation-failed")
		e.want(e.do("POST", "/api/v1/tasks", map[string]any{"command": "greet_user", "params": map[string]any{"nme": "x"}}), 422, "validation-failed")
		e.want(e.do("POST", "/api/v1/tasks", map[string]any{"command": "x", "bogus": 1}), 422, "validation-failed")
		e.want(e.do("POST", "/api/v1/tasks", map[string]any{"command": ""}), 422, "validation-failed")
		e.want(e.do("POST", "/api/v1/tasks", map[string]any{"command": "x", "retries": "two"}), 422, "validation-failed")
		e.want(e.do("POST", "/api/v1/tasks", map[string]any{"command": "x", "timeout_seconds": 0}), 422, "validation-failed")
		e.want(e.do("POST", "/api/v1/tasks", `{"command": "x"`), 400, "bad-request")
		e.want(e.do("POST", "/api/v1/tasks", `[1,2]`), 422, "validation-failed")
		e.want(e.do("POST", "/api/v1/tasks", bytes.Repeat([]byte(" "), 2<<20)), 413, "payload-too-large")

		list := e.do("GET", "/api/v1/tasks", nil).list()
		if len(list) != 3 || list[0]["id"] != fn["id"] || list[2]["id"] != disabled["id"] {
			t.Fatalf("list %v", list)
		}
		if l := e.do("GET", "/api/v1/tasks?enabled=false", nil).list(); len(l) != 1 || l[0]["id"] != disabled["id"] {
			t.Fatalf("enabled=false %v", l)
		}
		if l := e.do("GET", "/api/v1/tasks?type=shell", nil).list(); len(l) != 1 || l[0]["id"] != sh["id"] {
			t.Fatalf("type=shell %v", l)
		}
		e.want(e.do("GET", "/api/v1/tasks?enabled=yes", nil), 400, "bad-request")
		e.want(e.do("GET", "/api/v1/tasks?type=lambda", nil), 400, "bad-request")
		page := e.do("GET", "/api/v1/tasks?page=2&size=2", nil).json()
		if page["total"] != 3.0 || page["page"] != 2.0 || page["size"] != 2.0 || page["pages"] != 2.0 || len(page["items"].([]any)) != 1 {
			t.Fatalf("page %v", page)
		}

		id := fn["id"].(string)
		if got := e.do("GET", "/api/v1/tasks/"+id, nil).json(); got["command"] != "greet_user" {
			t.Fatalf("get %v", got)
		}
		e.want(e.do("GET", "/api/v1/tasks/not-a-ulid", nil), 400, "invalid-ulid")
		e.want(e.do("GET", "/api/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV", nil), 404, "not-found")

		r = e.do("PUT", "/api/v1/tasks/"+id, map[string]any{"enabled": false})
		e.want(r, 200, "")
		if up := r.json(); up["enabled"] != false || up["params"].(map[string]any)["name"] != "Alice" || up["command"] != "greet_user" {
			t.Fatalf("put kept others? %v", up)
		}
		r = e.do("PATCH", "/api/v1/tasks/"+sh["id"].(string), map[string]any{"timeout_seconds": nil, "command": "echo bye"})
		e.want(r, 200, "")
		if up := r.json(); up["timeout_seconds"] != nil || up["command"] != "echo bye" || up["env"].(map[string]any)["A"] != "1" {
			t.Fatalf("patch %v", up)
		}
		e.want(e.do("PUT", "/api/v1/tasks/"+id, map[string]any{"params": map[string]any{"name": false}}), 422, "validation-failed")
		e.want(e.do("PUT", "/api/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV", map[string]any{"enabled": true}), 404, "not-found")

		e.want(e.do("DELETE", "/api/v1/tasks/"+id, nil), 204, "")
		e.want(e.do("GET", "/api/v1/tasks/"+id, nil), 404, "not-found")
		e.want(e.do("DELETE", "/api/v1/tasks/"+id, nil), 404, "not-found")
	})
}

func TestExecuteFunctionTasks(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		greet := e.createTask(map[string]any{"command": "greet_user", "params": map[string]any{"name": "Alice"}})
		job := e.waitJob(e.execute(greet["id"].(string), map[string]any{"params": map[string]any{"name": "Bob"}}))
		if job["status"] != "completed" || job["result"].(map[string]any)["message"] != "Hello, Bob!" || job["params"].(map[string]any)["name"] != "Bob" {
			t.Fatalf("job %v", job)
		}
		if job["attempt"] != 1.0 || job["max_attempts"] != 1.0 || job["type"] != "function" || job["task_id"] != greet["id"] || job["node"] == nil {
			t.Fatalf("job fields %v", job)
		}
		art := e.do("GET", "/api/v1/artifacts/"+job["artifact_id"].(string), nil).json()
		data := art["data"].(map[string]any)
		if data["job_id"] != job["id"] || data["result"].(map[string]any)["message"] != "Hello, Bob!" || data["task"].(map[string]any)["id"] != greet["id"] {
			t.Fatalf("artifact %v", art)
		}
		// No body: the task's params (and the function's defaults) apply.
		job = e.waitJob(e.execute(greet["id"].(string), nil))
		if job["result"].(map[string]any)["message"] != "Hello, Alice!" {
			t.Fatalf("default params %v", job)
		}

		add := e.createTask(map[string]any{"command": "add", "params": map[string]any{"a": 2}})
		before := len(e.do("GET", "/api/v1/jobs", nil).list())
		r := e.do("POST", "/api/v1/tasks/"+add["id"].(string)+"/$execute", nil)
		e.want(r, 422, "validation-failed")
		if !strings.Contains(string(r.body), "params.b") {
			t.Fatalf("missing b: %s", r.body)
		}
		e.want(e.do("POST", "/api/v1/tasks/"+add["id"].(string)+"/$execute", map[string]any{"params": map[string]any{"b": 1.5}}), 422, "validation-failed")
		e.want(e.do("POST", "/api/v1/tasks/"+add["id"].(string)+"/$execute", map[string]any{"env": map[string]any{"A": "1"}}), 422, "validation-failed")
		e.want(e.do("POST", "/api/v1/tasks/"+add["id"].(string)+"/$execute", map[string]any{"prams": map[string]any{}}), 422, "validation-failed")
		if after := len(e.do("GET", "/api/v1/jobs", nil).list()); after != before {
			t.Fatalf("a refused $execute created a job: %d → %d", before, after)
		}
		job = e.waitJob(e.execute(add["id"].(string), map[string]any{"params": map[string]any{"b": 40}}))
		if job["result"].(map[string]any)["result"] != 42.0 {
			t.Fatalf("add %v", job)
		}

		fail := e.createTask(map[string]any{"command": "fail_task", "retries": 1})
		job = e.waitJob(e.execute(fail["id"].(string), nil))
		if job["status"] != "failed" || job["error"] != "it broke" || job["attempt"] != 2.0 || job["max_attempts"] != 2.0 {
			t.Fatalf("fail %v", job)
		}
		boom := e.createTask(map[string]any{"command": "boom"})
		job = e.waitJob(e.execute(boom["id"].(string), nil))
		if job["status"] != "failed" || !strings.Contains(job["error"].(string), "kaboom") || !strings.Contains(job["error_traceback"].(string), "api_test.go") {
			t.Fatalf("panic %v", job)
		}

		disabled := e.createTask(map[string]any{"command": "greet_user", "enabled": false})
		r = e.do("POST", "/api/v1/tasks/"+disabled["id"].(string)+"/$execute", nil)
		e.want(r, 409, "conflict")
		if !strings.HasPrefix(r.json()["detail"].(string), "Cannot execute disabled task "+disabled["id"].(string)+";") {
			t.Fatalf("disabled detail %s", r.body)
		}
		ghost := e.createTask(map[string]any{"command": "not_here", "type": "function"})
		e.want(e.do("POST", "/api/v1/tasks/"+ghost["id"].(string)+"/$execute", nil), 409, "conflict")
		e.want(e.do("POST", "/api/v1/tasks/01ARZ3NDEKTSV4RRFFQ69G5FAV/$execute", nil), 404, "not-found")
		e.want(e.do("POST", "/api/v1/tasks/xyz/$execute", nil), 400, "invalid-ulid")
		e.want(e.do("POST", "/api/v1/tasks/"+greet["id"].(string)+"/$execute", `{"params":`), 400, "bad-request")
	})
}

func TestShellJobsLogsAndArtifact(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		sh := e.createTask(map[string]any{"command": `echo "out $GREETING"; sleep 0.1; echo err >&2; sleep 0.1; echo more; exit 3`, "env": map[string]string{"GREETING": "hi"}})
		job := e.waitJob(e.execute(sh["id"].(string), map[string]any{"env": map[string]string{"GREETING": "hey"}}))
		if job["status"] != "failed" || job["exit_code"] != 3.0 || job["error"] != "exit status 3" || job["env"].(map[string]any)["GREETING"] != "hey" {
			t.Fatalf("shell job %v", job)
		}
		data := e.do("GET", "/api/v1/artifacts/"+job["artifact_id"].(string), nil).json()["data"].(map[string]any)
		if data["stdout"] != "out hey\nmore\n" || data["stderr"] != "err\n" || data["exit_code"] != 3.0 || data["stdout_truncated"] != false {
			t.Fatalf("artifact %v", data)
		}
		id := job["id"].(string)
		logs := e.do("GET", "/api/v1/jobs/"+id+"/$logs", nil)
		if string(logs.body) != "out hey\nerr\nmore\n" || !strings.HasPrefix(logs.header.Get("Content-Type"), "text/plain") {
			t.Fatalf("logs %q", logs.body)
		}
		if l := e.do("GET", "/api/v1/jobs/"+id+"/$logs?stream=stderr", nil); string(l.body) != "err\n" {
			t.Fatalf("stderr logs %q", l.body)
		}
		e.want(e.do("GET", "/api/v1/jobs/"+id+"/$logs?stream=both", nil), 400, "bad-request")
		e.want(e.do("POST", "/api/v1/tasks/"+sh["id"].(string)+"/$execute", map[string]any{"params": map[string]any{}}), 422, "validation-failed")

		ok := e.createTask(map[string]any{"command": "true"})
		job = e.waitJob(e.execute(ok["id"].(string), nil))
		if job["status"] != "completed" || job["exit_code"] != 0.0 || job["error"] != nil {
			t.Fatalf("true %v", job)
		}
	})
}

func TestJobsListCancelDelete(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		sleepy := e.createTask(map[string]any{"command": "sleepy"})
		greet := e.createTask(map[string]any{"command": "greet_user"})
		done := e.waitJob(e.execute(greet["id"].(string), nil))
		running := e.execute(sleepy["id"].(string), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for {
			j := e.do("GET", "/api/v1/jobs/"+running, nil).json()
			if j["status"] == "running" && j["progress"] != nil {
				if p := j["progress"].(map[string]any); p["current"] != 1.0 || p["total"] != 2.0 || p["message"] != "half way" {
					t.Fatalf("progress %v", p)
				}
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("never running with progress: %v", j)
			}
			time.Sleep(5 * time.Millisecond)
		}
		list := e.do("GET", "/api/v1/jobs", nil).list()
		if len(list) != 2 || list[0]["id"] != running || list[1]["id"] != done["id"] {
			t.Fatalf("newest first %v", list)
		}
		if l := e.do("GET", "/api/v1/jobs?status=completed", nil).list(); len(l) != 1 || l[0]["id"] != done["id"] {
			t.Fatalf("status filter %v", l)
		}
		if l := e.do("GET", "/api/v1/jobs?task_id="+sleepy["id"].(string), nil).list(); len(l) != 1 || l[0]["id"] != running {
			t.Fatalf("task filter %v", l)
		}
		if p := e.do("GET", "/api/v1/jobs?page=1&size=1", nil).json(); p["total"] != 2.0 || p["pages"] != 2.0 {
			t.Fatalf("page %v", p)
		}
		e.want(e.do("GET", "/api/v1/jobs?status=done", nil), 400, "bad-request")
		e.want(e.do("GET", "/api/v1/jobs?task_id=nope", nil), 400, "invalid-ulid")
		e.want(e.do("GET", "/api/v1/jobs?page=0", nil), 400, "bad-request")

		r := e.do("POST", "/api/v1/jobs/"+running+"/$cancel", nil)
		e.want(r, 200, "")
		if j := r.json(); j["status"] != "canceled" || j["artifact_id"] == nil {
			t.Fatalf("cancel %v", j)
		}
		e.want(e.do("POST", "/api/v1/jobs/"+running+"/$cancel", nil), 409, "conflict")
		e.want(e.do("POST", "/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/$cancel", nil), 404, "not-found")
		e.want(e.do("GET", "/api/v1/jobs/bad", nil), 400, "invalid-ulid")

		// DELETE of a running job cancels it first; its artifact stays.
		again := e.execute(sleepy["id"].(string), nil)
		e.want(e.do("DELETE", "/api/v1/jobs/"+again, nil), 204, "")
		e.want(e.do("GET", "/api/v1/jobs/"+again, nil), 404, "not-found")
		e.want(e.do("DELETE", "/api/v1/jobs/"+again, nil), 404, "not-found")
		e.want(e.do("DELETE", "/api/v1/jobs/"+done["id"].(string), nil), 204, "")
		e.want(e.do("GET", "/api/v1/artifacts/"+done["artifact_id"].(string), nil), 200, "")
	})
}

type sse struct {
	id, event, data string
}

// readSSE reads events until the stream ends.
func readSSE(t *testing.T, r io.Reader) (events []sse, comments int) {
	t.Helper()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var cur sse
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				events = append(events, cur)
			}
			cur = sse{}
		case strings.HasPrefix(line, ":"):
			comments++
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.event = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
	return events, comments
}

func (e *env) stream(id string, hdr ...string) ([]sse, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/jobs/"+id+"/$stream", nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		e.t.Fatalf("stream %d %s", res.StatusCode, b)
	}
	ev, _ := readSSE(e.t, res.Body)
	return ev, res.Header
}

func TestStream(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		sh := e.createTask(map[string]any{"command": "echo one; sleep 0.3; echo two >&2; sleep 0.2; echo three"})
		id := e.execute(sh["id"].(string), nil)
		live, h := e.stream(id) // connects while the job runs: history, then live events
		if h.Get("Content-Type") != "text/event-stream" || h.Get("Cache-Control") != "no-cache" || h.Get("X-Accel-Buffering") != "no" {
			t.Fatalf("headers %v", h)
		}
		var story []string
		for i, ev := range live {
			if ev.id != fmt.Sprint(i+1) {
				t.Fatalf("ids not increasing by one: %+v", live)
			}
			var d map[string]any
			if err := json.Unmarshal([]byte(ev.data), &d); err != nil {
				t.Fatalf("data not JSON: %q", ev.data)
			}
			if ev.event == "status" {
				story = append(story, "status:"+d["status"].(string))
			} else {
				story = append(story, d["stream"].(string)+":"+d["line"].(string))
			}
		}
		want := "status:pending status:running stdout:one stderr:two stdout:three status:failed"
		if got := strings.Join(story, " "); got != strings.Replace(want, "failed", "completed", 1) {
			t.Fatalf("story %q", got)
		}
		// A finished job replays the same story; Last-Event-ID resumes without repeats.
		again, _ := e.stream(id)
		if len(again) != len(live) || again[len(again)-1].data != live[len(live)-1].data {
			t.Fatalf("replay differs: %+v", again)
		}
		tail, _ := e.stream(id, "Last-Event-ID", "4")
		if len(tail) != len(live)-4 || tail[0].id != "5" {
			t.Fatalf("resume after 4: %+v", tail)
		}
		r := e.do("GET", "/api/v1/jobs/"+id+"/$stream", nil, "Last-Event-ID", "abc")
		e.want(r, 400, "bad-request")
		e.want(e.do("GET", "/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV/$stream", nil), 404, "not-found")

		// Deleting a job ends its stream with a "deleted" status.
		sleepy := e.createTask(map[string]any{"command": "sleep 30"})
		jid := e.execute(sleepy["id"].(string), nil)
		go func() {
			time.Sleep(300 * time.Millisecond)
			e.svc.Jobs.Delete(context.Background(), jid)
		}()
		evs, _ := e.stream(jid)
		last := evs[len(evs)-1]
		if last.event != "status" || last.data != fmt.Sprintf(`{"id":%q,"status":"deleted"}`, jid) {
			t.Fatalf("deleted stream ends with %+v", last)
		}
	})
}

func TestRouterProblemsAndService(t *testing.T) {
	e := newEnv(t)
	e.want(e.do("GET", "/api/v1/nothing", nil), 404, "not-found")
	r := e.do("DELETE", "/api/v1/info", nil)
	e.want(r, 405, "method-not-allowed")
	if !strings.Contains(r.header.Get("Allow"), "GET") {
		t.Fatalf("Allow %q", r.header.Get("Allow"))
	}
	e.want(e.do("PATCH", "/api/v1/jobs", nil), 405, "method-not-allowed")

	r = e.do("GET", "/api/v1/info", nil)
	if r.header.Get("X-Request-ID") == "" || len(r.header.Get("X-Request-ID")) != 26 || r.json()["display_name"] != "test" {
		t.Fatalf("info %s %v", r.body, r.header)
	}
	if r := e.do("GET", "/api/v1/info", nil, "X-Request-ID", "my-trace-1"); r.header.Get("X-Request-ID") != "my-trace-1" {
		t.Fatalf("caller's request id not kept: %v", r.header)
	}
	if r := e.do("GET", "/api/v1/info", nil, "X-Request-ID", "bad id"); r.header.Get("X-Request-ID") == "bad id" {
		t.Fatal("insane request id echoed")
	}
	h := e.do("GET", "/health", nil)
	if h.status != 200 || h.json()["status"] != "healthy" || h.json()["checks"].(map[string]any)["database"].(map[string]any)["state"] != "healthy" {
		t.Fatalf("health %s", h.body)
	}
	sys := e.do("GET", "/api/v1/system", nil).json()
	if sys["node"] != e.svc.Jobs.Node() || sys["go_version"] == "" || sys["hostname"] == "" {
		t.Fatalf("system %v", sys)
	}
	oa := e.do("GET", "/openapi.json", nil)
	if oa.status != 200 || !strings.Contains(string(oa.body), `"/api/v1/tasks/{id}/$execute"`) || strings.Contains(string(oa.body), `"$schema"`) {
		t.Fatalf("openapi %d", oa.status)
	}
	if d := e.do("GET", "/docs", nil); d.status != 200 || !strings.Contains(string(d.body), "<html") {
		t.Fatalf("docs %d", d.status)
	}
}

func TestOrphanedAndFunctions(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ran := e.createTask(map[string]any{"command": "greet_user"})
		e.waitJob(e.execute(ran["id"].(string), nil))
		never := e.createTask(map[string]any{"command": "echo never"})
		e.createTask(map[string]any{"command": "echo off", "enabled": false})
		ghost := e.createTask(map[string]any{"command": "gone_fn", "type": "function", "enabled": false})
		o := e.do("GET", "/api/v1/tasks/$orphaned", nil).json()
		items := o["orphaned_tasks"].([]any)
		if o["count"] != 2.0 || len(items) != 2 {
			t.Fatalf("orphaned %v", o)
		}
		got := map[string]string{}
		for _, it := range items {
			m := it.(map[string]any)
			got[m["id"].(string)] = m["reason"].(string)
		}
		if got[never["id"].(string)] != "no_job" || got[ghost["id"].(string)] != "function_not_registered" {
			t.Fatalf("reasons %v", got)
		}
		if f := e.do("GET", "/api/v1/tasks/$orphaned?reason=no_job", nil).json(); f["count"] != 1.0 {
			t.Fatalf("reason filter %v", f)
		}
		e.want(e.do("GET", "/api/v1/tasks/$orphaned?reason=bored", nil), 400, "bad-request")

		var fns []map[string]any
		json.Unmarshal(e.do("GET", "/api/v1/tasks/$functions", nil).body, &fns)
		byName := map[string]map[string]any{}
		for _, f := range fns {
			byName[f["name"].(string)] = f
		}
		g := byName["greet_user"]
		schema := g["params_schema"].(map[string]any)
		name := schema["properties"].(map[string]any)["name"].(map[string]any)
		if g["description"] != "Greets someone" || name["default"] != "World" || name["description"] != "Who to greet" || schema["required"] != nil {
			t.Fatalf("greet_user %v", g)
		}
		if req := byName["add"]["params_schema"].(map[string]any)["required"].([]any); len(req) != 2 {
			t.Fatalf("add required %v", req)
		}
		if inj := byName["sleepy"]["injects"].([]any); len(inj) != 2 {
			t.Fatalf("sleepy injects %v", inj)
		}
	})
}

func TestCurlDefaultContentType(t *testing.T) {
	e := newEnv(t)
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/tasks", strings.NewReader(`{"command":"echo hi"}`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded") // what curl -d sends
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 201 {
		t.Fatalf("curl -d style body: %d", res.StatusCode)
	}
	r := e.do("POST", "/api/v1/tasks", map[string]any{"command": "x"}, "Content-Type", "text/csv")
	e.want(r, 415, "unsupported-media-type")
}
