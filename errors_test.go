package servicekit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/shell"
)

// problem is a decoded problem+json answer.
type problem struct {
	Type, Title, Detail, Instance string
	Status                        int
	Errors                        []struct{ Location, Message string }
}

// wantProblem checks status, slug and that instance is the request's path
// exactly (api_test's want only checks that it is not empty).
func (e *env) wantProblem(r resp, status int, slug, path string) problem {
	e.t.Helper()
	if r.status != status || r.header.Get("Content-Type") != "application/problem+json" {
		e.t.Fatalf("%s: %d %q, want %d problem+json: %s", path, r.status, r.header.Get("Content-Type"), status, r.body)
	}
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		e.t.Fatalf("%s: %v: %s", path, err, r.body)
	}
	if u, _ := url.Parse(path); p.Instance != u.Path {
		e.t.Fatalf("%s: instance %q, want %q: %s", path, p.Instance, u.Path, r.body)
	}
	if p.Type != "urn:servicekit:error:"+slug || p.Status != status || p.Title == "" || p.Detail == "" {
		e.t.Fatalf("%s: want slug %s: %s", path, slug, r.body)
	}
	return p
}

func (p problem) mustSay(t *testing.T, parts ...string) {
	t.Helper()
	for _, s := range parts {
		if !strings.Contains(p.Detail, s) {
			t.Fatalf("detail %q does not say %q", p.Detail, s)
		}
	}
}

// TestEveryProblemCarriesInstance walks one request per kind of refusal,
// from each layer that can refuse (router, middleware, huma's validation,
// handlers, the managers' errors), and wants instance to be the path.
func TestEveryProblemCarriesInstance(t *testing.T) {
	e := newEnv(t)
	disabled := e.createTask(map[string]any{"command": "greet_user", "enabled": false})["id"].(string)
	add := e.createTask(map[string]any{"command": "add"})["id"].(string)
	ghost := e.createTask(map[string]any{"command": "gone_fn", "type": "function"})["id"].(string)
	done := e.waitJob(e.execute(e.createTask(map[string]any{"command": "greet_user"})["id"].(string), nil))["id"].(string)
	parent := e.do("POST", "/api/v1/artifacts", map[string]any{"data": 1}).json()["id"].(string)
	e.want(e.do("POST", "/api/v1/artifacts", map[string]any{"data": 2, "parent_id": parent}), 201, "")
	const unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV"

	for _, c := range []struct {
		method, path string
		body         any
		status       int
		slug         string
	}{
		{"GET", "/api/v1/tasks/" + unknown, nil, 404, "not-found"},
		{"GET", "/api/v1/jobs/" + unknown, nil, 404, "not-found"},
		{"GET", "/api/v1/artifacts/" + unknown + "/$tree", nil, 404, "not-found"},
		{"GET", "/api/v1/tasks/not-a-ulid", nil, 400, "invalid-ulid"},
		{"DELETE", "/api/v1/jobs/xyz", nil, 400, "invalid-ulid"},
		{"GET", "/api/v1/jobs?task_id=nope", nil, 400, "invalid-ulid"},
		{"POST", "/api/v1/tasks/" + disabled + "/$execute", nil, 409, "conflict"},
		{"POST", "/api/v1/tasks/" + ghost + "/$execute", nil, 409, "conflict"},
		{"POST", "/api/v1/jobs/" + done + "/$cancel", nil, 409, "conflict"},
		{"DELETE", "/api/v1/artifacts/" + parent, nil, 409, "conflict"},
		{"POST", "/api/v1/tasks/" + add + "/$execute", nil, 422, "validation-failed"},
		{"POST", "/api/v1/tasks", map[string]any{"command": "x", "bogus": 1}, 422, "validation-failed"},
		{"POST", "/api/v1/artifacts", map[string]any{"data": 1, "parent_id": unknown}, 422, "validation-failed"},
		{"POST", "/api/v1/tasks", `{"command":`, 400, "bad-request"},
		{"GET", "/api/v1/tasks?page=abc", nil, 400, "bad-request"},
		{"GET", "/api/v1/jobs/" + done + "/$logs?stream=both", nil, 400, "bad-request"},
		{"GET", "/api/v1/nothing", nil, 404, "not-found"},
		{"DELETE", "/api/v1/info", nil, 405, "method-not-allowed"},
		{"POST", "/api/v1/tasks", bytes.Repeat([]byte(" "), 2<<20), 413, "payload-too-large"},
	} {
		e.wantProblem(e.do(c.method, c.path, c.body), c.status, c.slug, c.path)
	}
	e.wantProblem(e.do("POST", "/api/v1/tasks", `{"command":"x"}`, "Content-Type", "text/csv"), 415, "unsupported-media-type", "/api/v1/tasks")

	keyed := newAuthEnv(t, "", "k1")
	keyed.wantProblem(keyed.do("GET", "/api/v1/tasks", nil), 401, "unauthorized", "/api/v1/tasks")

	pol, err := shell.NewPolicy(shell.ModeAllowlist, []string{"echo"})
	if err != nil {
		t.Fatal(err)
	}
	svc, err := servicekit.New(servicekit.Info{}).WithDatabase("sqlite:///" + filepath.Join(t.TempDir(), "p.db")).
		WithRegistry(testRegistry()).WithShellPolicy(pol).WithTasks().Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pe := serve(t, svc)
	pe.wantProblem(pe.do("POST", "/api/v1/tasks", map[string]any{"command": "rm -rf /tmp/x"}), 403, "forbidden", "/api/v1/tasks")
}

// TestLowercaseULIDs: Crockford base32 ignores case, so an id typed or
// pasted in lower case names the same resource, in the path, in ?task_id=
// and in a body's parent_id.
func TestLowercaseULIDs(t *testing.T) {
	e := newEnv(t)
	id := e.createTask(map[string]any{"command": "greet_user"})["id"].(string)
	low := strings.ToLower(id)
	if got := e.do("GET", "/api/v1/tasks/"+low, nil); got.status != 200 || got.json()["id"] != id {
		t.Fatalf("get by lower-case id: %d %s", got.status, got.body)
	}
	if got := e.do("PATCH", "/api/v1/tasks/"+low, map[string]any{"retries": 1}); got.status != 200 || got.json()["retries"] != 1.0 {
		t.Fatalf("patch by lower-case id: %d %s", got.status, got.body)
	}
	r := e.do("POST", "/api/v1/tasks/"+low+"/$execute", nil)
	if r.status != 202 || r.json()["task_id"] != id {
		t.Fatalf("execute by lower-case id: %d %s", r.status, r.body)
	}
	jobID := r.json()["job_id"].(string)
	e.waitJob(jobID)
	jlow := strings.ToLower(jobID)
	if j := e.do("GET", "/api/v1/jobs/"+jlow, nil); j.status != 200 || j.json()["status"] != "completed" {
		t.Fatalf("job by lower-case id: %d %s", j.status, j.body)
	}
	if l := e.do("GET", "/api/v1/jobs?task_id="+low, nil).list(); len(l) != 1 || l[0]["id"] != jobID {
		t.Fatalf("?task_id= lower case: %v", l)
	}
	// A problem about a lower-case path names the canonical path.
	e.wantProblem(e.do("POST", "/api/v1/jobs/"+jlow+"/$cancel", nil), 409, "conflict", "/api/v1/jobs/"+jobID+"/$cancel")

	art := e.do("GET", "/api/v1/jobs/"+jobID, nil).json()["artifact_id"].(string)
	child := e.do("POST", "/api/v1/artifacts", map[string]any{"data": "c", "parent_id": strings.ToLower(art)})
	if child.status != 201 || child.json()["parent_id"] != art || child.json()["level"] != 1.0 {
		t.Fatalf("lower-case parent_id: %d %s", child.status, child.body)
	}
	if tr := e.do("GET", "/api/v1/artifacts/"+strings.ToLower(art)+"/$tree", nil); tr.status != 200 || len(tr.json()["children"].([]any)) != 1 {
		t.Fatalf("tree by lower-case id: %d %s", tr.status, tr.body)
	}
	e.want(e.do("DELETE", "/api/v1/jobs/"+jlow, nil), 204, "")
	e.want(e.do("DELETE", "/api/v1/tasks/"+low, nil), 204, "")
	e.want(e.do("GET", "/api/v1/tasks/"+id, nil), 404, "not-found")
}

// TestFieldErrorsSayWhatToFix: each body mistake names the field, what was
// wrong with it and, where it can, what was meant; the detail alone (what
// the CLI prints) says it too.
func TestFieldErrorsSayWhatToFix(t *testing.T) {
	e := newEnv(t)
	for _, c := range []struct {
		body     any
		location string
		says     string
	}{
		{map[string]any{}, "body.command", "required"},
		{map[string]any{"command": "echo", "timeout": 5}, "body.timeout", "did you mean timeout_seconds?"},
		{map[string]any{"command": "echo", "retry": 1}, "body.retry", "did you mean retries?"},
		{map[string]any{"comand": "echo"}, "body.comand", "did you mean command?"},
		{map[string]any{"command": "echo", "retries": "five"}, "body.retries", `expected integer, got string "five"`},
		{map[string]any{"command": "echo", "timeout_seconds": 0}, "body.timeout_seconds", "expected number > 0, got number 0"},
		{map[string]any{"command": "echo", "enabled": "yes"}, "body.enabled", `expected boolean, got string "yes"`},
		{map[string]any{"command": nil}, "body.command", "expected string, got null"},
	} {
		r := e.do("POST", "/api/v1/tasks", c.body)
		p := e.wantProblem(r, 422, "validation-failed", "/api/v1/tasks")
		if len(p.Errors) == 0 || p.Errors[0].Location != c.location || !strings.Contains(p.Errors[0].Message, c.says) {
			t.Fatalf("%v: want %s saying %q: %s", c.body, c.location, c.says, r.body)
		}
		p.mustSay(t, c.location, c.says)
	}
	// A name far from every field gets no guess.
	p := e.wantProblem(e.do("POST", "/api/v1/tasks", map[string]any{"command": "echo", "zzz": 1}), 422, "validation-failed", "/api/v1/tasks")
	if strings.Contains(p.Detail, "did you mean") {
		t.Fatalf("a wild guess: %q", p.Detail)
	}

	// The same for the other bodies, whose schemas differ.
	id := e.createTask(map[string]any{"command": "greet_user"})["id"].(string)
	e.wantProblem(e.do("POST", "/api/v1/tasks/"+id+"/$execute", map[string]any{"prams": map[string]any{}}), 422, "validation-failed",
		"/api/v1/tasks/"+id+"/$execute").mustSay(t, "body.prams", "did you mean params?")
	e.wantProblem(e.do("PATCH", "/api/v1/tasks/"+id, map[string]any{"enable": false}), 422, "validation-failed",
		"/api/v1/tasks/"+id).mustSay(t, "body.enable", "did you mean enabled?")
	e.wantProblem(e.do("POST", "/api/v1/artifacts", map[string]any{"data": 1, "parent": nil}), 422, "validation-failed",
		"/api/v1/artifacts").mustSay(t, "did you mean parent_id?")

	// Malformed JSON: where it breaks, by line and column.
	e.wantProblem(e.do("POST", "/api/v1/tasks", "{\n  \"command\": \"echo\",,\n}"), 400, "bad-request", "/api/v1/tasks").
		mustSay(t, "malformed JSON body", "line 2, column 21")
	e.wantProblem(e.do("POST", "/api/v1/tasks", "{\n  \"command\": \"echo\"\n"), 400, "bad-request", "/api/v1/tasks").
		mustSay(t, "ends early, at line 2, column 20")
}

// TestBadQueryValuesAre400: SPEC §3 makes a bad query value a bad-request,
// whether huma parses it (page, size) or a handler does (enabled, cascade).
func TestBadQueryValuesAre400(t *testing.T) {
	e := newEnv(t)
	art := e.do("POST", "/api/v1/artifacts", map[string]any{"data": 1}).json()["id"].(string)
	for _, c := range []struct{ method, path, says string }{
		{"GET", "/api/v1/tasks?page=abc", `query.page: expected integer, got "abc"`},
		{"GET", "/api/v1/tasks?size=5000", `query.size: expected number <= 1000, got "5000"`},
		{"GET", "/api/v1/jobs?page=0", `query.page: expected number >= 1, got "0"`},
		{"GET", "/api/v1/artifacts?size=x", `query.size`},
		{"GET", "/api/v1/tasks?enabled=maybe", "want true or false"},
		{"DELETE", "/api/v1/artifacts/" + art + "?cascade=maybe", "want true or false"},
	} {
		e.wantProblem(e.do(c.method, c.path, nil), 400, "bad-request", c.path).mustSay(t, c.says)
	}
}

// TestForgottenDollar: an action path without its $ (or with the action
// eaten by the shell) is a 404 that names the route meant.
func TestForgottenDollar(t *testing.T) {
	e := newEnv(t)
	task := e.createTask(map[string]any{"command": "greet_user"})["id"].(string)
	job := e.waitJob(e.execute(task, nil))
	art := job["artifact_id"].(string)
	jobID := job["id"].(string)
	for _, c := range []struct{ method, path, meant string }{
		{"POST", "/api/v1/tasks/" + task + "/execute", "POST /api/v1/tasks/" + task + "/$execute"},
		{"POST", "/api/v1/jobs/" + jobID + "/cancel", "POST /api/v1/jobs/" + jobID + "/$cancel"},
		{"GET", "/api/v1/jobs/" + jobID + "/stream", "GET /api/v1/jobs/" + jobID + "/$stream"},
		{"GET", "/api/v1/jobs/" + jobID + "/logs", "GET /api/v1/jobs/" + jobID + "/$logs"},
		{"GET", "/api/v1/artifacts/" + art + "/tree", "GET /api/v1/artifacts/" + art + "/$tree"},
		{"GET", "/api/v1/artifacts/" + art + "/expand", "GET /api/v1/artifacts/" + art + "/$expand"},
		// These two would otherwise reach get-task with an id that is no ULID.
		{"GET", "/api/v1/tasks/orphaned", "GET /api/v1/tasks/$orphaned"},
		{"GET", "/api/v1/tasks/functions", "GET /api/v1/tasks/$functions"},
		// The wrong method too: the hint names the one that works.
		{"GET", "/api/v1/tasks/" + task + "/execute", "POST /api/v1/tasks/" + task + "/$execute"},
	} {
		e.wantProblem(e.do(c.method, c.path, nil), 404, "not-found", c.path).mustSay(t, "did you mean "+c.meant+"?")
	}
	// What an unquoted $execute in a shell sends.
	e.wantProblem(e.do("POST", "/api/v1/tasks/"+task+"/", nil), 404, "not-found", "/api/v1/tasks/"+task+"/").
		mustSay(t, "$execute", "single quotes", "'/api/v1/tasks/"+task+"/$execute'")
	e.wantProblem(e.do("GET", "/api/v1/tasks/", nil), 404, "not-found", "/api/v1/tasks/").
		mustSay(t, "did you mean /api/v1/tasks (without the trailing slash)?", "$functions, $orphaned")
	// A real ULID-shaped id is never taken for an action, and a wrong path
	// that resembles nothing gets no hint.
	p := e.wantProblem(e.do("GET", "/api/v1/nothing/here", nil), 404, "not-found", "/api/v1/nothing/here")
	if strings.Contains(p.Detail, "did you mean") {
		t.Fatalf("hint for nothing: %q", p.Detail)
	}
	// The routes themselves still work.
	e.want(e.do("GET", "/api/v1/tasks/$functions", nil), 200, "")
	e.want(e.do("GET", "/api/v1/tasks/$orphaned", nil), 200, "")
}

// TestDisabledTaskSaysHowToEnable follows the 409's advice and expects it to work.
func TestDisabledTaskSaysHowToEnable(t *testing.T) {
	e := newEnv(t)
	id := e.createTask(map[string]any{"command": "greet_user", "enabled": false})["id"].(string)
	path := "/api/v1/tasks/" + id + "/$execute"
	p := e.wantProblem(e.do("POST", path, nil), 409, "conflict", path)
	p.mustSay(t, "Cannot execute disabled task "+id, "PATCH /api/v1/tasks/"+id, `{"enabled": true}`)
	e.want(e.do("PATCH", "/api/v1/tasks/"+id, `{"enabled": true}`), 200, "")
	e.waitJob(e.execute(id, nil))

	ghost := e.createTask(map[string]any{"command": "gone_fn", "type": "function"})["id"].(string)
	e.wantProblem(e.do("POST", "/api/v1/tasks/"+ghost+"/$execute", nil), 409, "conflict", "/api/v1/tasks/"+ghost+"/$execute").
		mustSay(t, `"gone_fn"`, "$functions")
}

// TestJSONKeepsAngleBrackets: neither huma's encoder nor the middleware's
// writes <, > or & as \u003c, \u003e, \u0026.
func TestJSONKeepsAngleBrackets(t *testing.T) {
	keyed := newAuthEnv(t, "", "k1")
	r := keyed.do("GET", "/api/v1/tasks", nil)
	if !bytes.Contains(r.body, []byte("X-API-Key: <key>")) || bytes.Contains(r.body, []byte(`\u003c`)) {
		t.Fatalf("401 body %s", r.body)
	}
	e := newEnv(t)
	r = e.do("POST", "/api/v1/tasks", map[string]any{"command": "echo '<b>' && true"})
	if r.status != 201 || !bytes.Contains(r.body, []byte(`"echo '<b>' && true"`)) {
		t.Fatalf("task body %s", r.body)
	}
	r = e.do("POST", "/api/v1/tasks", map[string]any{"command": "echo", "<&>": 1})
	if r.status != 422 || !bytes.Contains(r.body, []byte(`body.<&>`)) || bytes.Contains(r.body, []byte(`\u0026`)) {
		t.Fatalf("problem body %s", r.body)
	}
}

// TestInfoDescription: /api/v1/info has every field SPEC §3 lists, set or not.
func TestInfoDescription(t *testing.T) {
	svc, err := servicekit.New(servicekit.Info{DisplayName: "d", Summary: "s", Description: "Runs <nightly> reports & more"}).
		WithDatabase("sqlite:///" + filepath.Join(t.TempDir(), "t.db")).Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e := serve(t, svc)
	r := e.do("GET", "/api/v1/info", nil)
	if m := r.json(); m["description"] != "Runs <nightly> reports & more" || m["summary"] != "s" || m["display_name"] != "d" {
		t.Fatalf("info %s", r.body)
	}
	if m := newEnv(t).do("GET", "/api/v1/info", nil).json(); m["description"] != "" || m["summary"] != "" {
		t.Fatalf("unset fields must be present and empty: %v", m)
	}
}

// serve runs an already built service behind a test HTTP server.
func serve(t *testing.T, svc *servicekit.Service) *env {
	t.Helper()
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return &env{t: t, svc: svc, srv: srv}
}
