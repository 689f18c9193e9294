package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/task"
)

// idemEachDB runs test on SQLite and, when SERVICEKIT_TEST_POSTGRES holds a
// URL, on PostgreSQL too (in a schema of its own, dropped afterwards), since
// the claim relies on ON CONFLICT behaving the same on both. test gets a
// database URL it may build several services on, to play a restart.
func idemEachDB(t *testing.T, test func(t *testing.T, dbURL string)) {
	dbtest.Each(t, test)
}

// idemService builds a real service on dbURL and serves it.
func idemService(t *testing.T, dbURL string, apiKeys ...string) (*servicekit.Service, *httptest.Server) {
	t.Helper()
	b := servicekit.New(servicekit.Info{DisplayName: "t"}).
		WithDatabase(dbURL).
		WithRegistry(task.NewRegistry()).
		WithShutdownTimeout(time.Second).
		WithTasks()
	if len(apiKeys) > 0 {
		b = b.WithAPIKeys(apiKeys...)
	}
	svc, err := b.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return svc, srv
}

// idemExec runs one statement written with ? placeholders on svc's database.
func idemExec(t *testing.T, svc *servicekit.Service, query string, args ...any) {
	t.Helper()
	if _, err := svc.DB.W.Exec(svc.DB.Rebind(query), args...); err != nil {
		t.Fatal(err)
	}
}

type idemResp struct {
	status int
	header http.Header
	body   []byte
}

func (r idemResp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %q: %v", r.body, err)
	}
}

func (r idemResp) replayed() bool { return r.header.Get("Idempotent-Replayed") == "true" }

// idemCall sends a request; key "" sends no Idempotency-Key. It is safe
// from several goroutines (it reports errors with t.Error).
func idemCall(t testing.TB, srv *httptest.Server, method, path, key, body string, extra ...string) idemResp {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Error(err)
		return idemResp{}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		req.Header.Set(extra[i], extra[i+1])
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Error(err)
		return idemResp{}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Error(err)
	}
	return idemResp{status: res.StatusCode, header: res.Header, body: b}
}

func idemMust(t *testing.T, want int, r idemResp) idemResp {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d: %s", r.status, want, r.body)
	}
	return r
}

// idemTask creates a shell task without a key and returns its id.
func idemTask(t *testing.T, srv *httptest.Server, command string) string {
	t.Helper()
	var out struct{ ID string }
	idemMust(t, 201, idemCall(t, srv, "POST", "/api/v1/tasks", "", `{"command":`+jsonString(command)+`,"type":"shell"}`)).decode(t, &out)
	return out.ID
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

type idemAccepted struct {
	JobID  string `json:"job_id"`
	TaskID string `json:"task_id"`
}

func idemExecute(t *testing.T, srv *httptest.Server, taskID, key string) (idemResp, string) {
	t.Helper()
	r := idemMust(t, 202, idemCall(t, srv, "POST", "/api/v1/tasks/"+taskID+"/$execute", key, ""))
	var a idemAccepted
	r.decode(t, &a)
	if a.JobID == "" || r.header.Get("Location") != "/api/v1/jobs/"+a.JobID {
		t.Fatalf("bad $execute answer: Location %q, body %s", r.header.Get("Location"), r.body)
	}
	return r, a.JobID
}

func idemCount(t *testing.T, srv *httptest.Server, path string) int {
	t.Helper()
	var items []json.RawMessage
	idemMust(t, 200, idemCall(t, srv, "GET", path, "", "")).decode(t, &items)
	return len(items)
}

func idemProblemType(t *testing.T, r idemResp) string {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
	var p struct{ Type, Detail string }
	r.decode(t, &p)
	return strings.TrimPrefix(p.Type, "urn:servicekit:error:")
}

func TestIdempotencyCreateTask(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		_, srv := idemService(t, dbURL)
		body := `{"command":"echo hi","type":"shell"}`
		first := idemMust(t, 201, idemCall(t, srv, "POST", "/api/v1/tasks", "create-1", body))
		second := idemMust(t, 201, idemCall(t, srv, "POST", "/api/v1/tasks", "create-1", body))
		var a, b struct{ ID string }
		first.decode(t, &a)
		second.decode(t, &b)
		if a.ID == "" || a.ID != b.ID {
			t.Fatalf("task ids %q and %q, want one", a.ID, b.ID)
		}
		if first.replayed() || !second.replayed() {
			t.Errorf("Idempotent-Replayed: first %v, second %v; want false, true", first.replayed(), second.replayed())
		}
		if l := second.header.Get("Location"); l != "/api/v1/tasks/"+a.ID || l != first.header.Get("Location") {
			t.Errorf("replayed Location %q, first %q", l, first.header.Get("Location"))
		}
		if ct := second.header.Get("Content-Type"); ct != first.header.Get("Content-Type") || ct == "" {
			t.Errorf("replayed Content-Type %q, first %q", ct, first.header.Get("Content-Type"))
		}
		if string(first.body) != string(second.body) {
			t.Errorf("replayed body differs:\n%s\n%s", first.body, second.body)
		}
		if second.header.Get("X-Request-ID") == "" || second.header.Get("X-Request-ID") == first.header.Get("X-Request-ID") {
			t.Errorf("a replay is a new request and needs its own X-Request-ID")
		}
		if n := idemCount(t, srv, "/api/v1/tasks"); n != 1 {
			t.Fatalf("%d tasks, want 1", n)
		}

		// Without a key nothing changes: two requests, two tasks.
		idemMust(t, 201, idemCall(t, srv, "POST", "/api/v1/tasks", "", body))
		idemMust(t, 201, idemCall(t, srv, "POST", "/api/v1/tasks", "", body))
		if n := idemCount(t, srv, "/api/v1/tasks"); n != 3 {
			t.Fatalf("%d tasks, want 3", n)
		}
	})
}

func TestIdempotencyExecute(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		_, srv := idemService(t, dbURL)
		id := idemTask(t, srv, "true")
		r1, job1 := idemExecute(t, srv, id, "exec-1")
		r2, job2 := idemExecute(t, srv, id, "exec-1")
		if job1 != job2 {
			t.Fatalf("job ids %s and %s, want one", job1, job2)
		}
		if r1.replayed() || !r2.replayed() {
			t.Errorf("Idempotent-Replayed: first %v, second %v", r1.replayed(), r2.replayed())
		}
		if n := idemCount(t, srv, "/api/v1/jobs"); n != 1 {
			t.Fatalf("%d jobs, want 1", n)
		}
		// A new key is a new request.
		if _, job3 := idemExecute(t, srv, id, "exec-2"); job3 == job1 {
			t.Fatal("a new key replayed the old job")
		}
	})
}

func TestIdempotencyDifferentBody(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		_, srv := idemService(t, dbURL)
		idemMust(t, 201, idemCall(t, srv, "POST", "/api/v1/tasks", "k", `{"command":"echo a","type":"shell"}`))
		r := idemMust(t, 422, idemCall(t, srv, "POST", "/api/v1/tasks", "k", `{"command":"echo b","type":"shell"}`))
		if typ := idemProblemType(t, r); typ != "validation-failed" {
			t.Errorf("problem type %q, want validation-failed", typ)
		}
		if !strings.Contains(string(r.body), "different request body") {
			t.Errorf("detail does not say why: %s", r.body)
		}

		id := idemTask(t, srv, "true")
		idemExecute(t, srv, id, "e")
		r = idemMust(t, 422, idemCall(t, srv, "POST", "/api/v1/tasks/"+id+"/$execute", "e", `{"env":{"A":"1"}}`))
		if typ := idemProblemType(t, r); typ != "validation-failed" {
			t.Errorf("problem type %q, want validation-failed", typ)
		}
		if n := idemCount(t, srv, "/api/v1/jobs"); n != 1 {
			t.Fatalf("%d jobs, want 1", n)
		}
	})
}

func TestIdempotencyScopedByPath(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		_, srv := idemService(t, dbURL)
		a, b := idemTask(t, srv, "true"), idemTask(t, srv, "true")
		_, jobA := idemExecute(t, srv, a, "same-key")
		rb, jobB := idemExecute(t, srv, b, "same-key")
		if jobA == jobB || rb.replayed() {
			t.Fatalf("the key on another task's $execute replayed the first job")
		}
		if n := idemCount(t, srv, "/api/v1/jobs"); n != 2 {
			t.Fatalf("%d jobs, want 2", n)
		}
	})
}

// The acceptance test: concurrent requests with one key make one job.
func TestIdempotencyConcurrentExecute(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		_, srv := idemService(t, dbURL)
		id := idemTask(t, srv, "sleep 0.2")
		const n = 20
		var wg sync.WaitGroup
		res := make([]idemResp, n)
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				res[i] = idemCall(t, srv, "POST", "/api/v1/tasks/"+id+"/$execute", "burst", "")
			})
		}
		close(start)
		wg.Wait()
		jobs := map[string]int{}
		replays := 0
		for _, r := range res {
			if r.status != 202 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			var a idemAccepted
			r.decode(t, &a)
			jobs[a.JobID]++
			if r.replayed() {
				replays++
			}
		}
		if len(jobs) != 1 {
			t.Fatalf("%d different job ids, want 1: %v", len(jobs), jobs)
		}
		if replays != n-1 {
			t.Errorf("%d replays, want %d", replays, n-1)
		}
		if c := idemCount(t, srv, "/api/v1/jobs"); c != 1 {
			t.Fatalf("%d jobs, want 1", c)
		}
	})
}

// A 4xx is the request's outcome and is replayed like a success; see the
// decision in idempotency.go.
func TestIdempotencyReplaysClientErrors(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		_, srv := idemService(t, dbURL)
		path := "/api/v1/tasks/" + ids.New() + "/$execute"
		first := idemMust(t, 404, idemCall(t, srv, "POST", path, "k404", ""))
		second := idemMust(t, 404, idemCall(t, srv, "POST", path, "k404", ""))
		if first.replayed() || !second.replayed() {
			t.Errorf("Idempotent-Replayed: first %v, second %v", first.replayed(), second.replayed())
		}
		if idemProblemType(t, second) != "not-found" || string(first.body) != string(second.body) {
			t.Errorf("replayed 404 differs:\n%s\n%s", first.body, second.body)
		}
	})
}

func TestIdempotencySurvivesRestart(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		svc1, srv1 := idemService(t, dbURL)
		id := idemTask(t, srv1, "true")
		_, job1 := idemExecute(t, srv1, id, "restart-key")
		srv1.Close()
		if err := svc1.Close(); err != nil {
			t.Fatal(err)
		}

		_, srv2 := idemService(t, dbURL)
		r, job2 := idemExecute(t, srv2, id, "restart-key")
		if job2 != job1 || !r.replayed() {
			t.Fatalf("after restart: job %s (replayed %v), want replay of %s", job2, r.replayed(), job1)
		}
		if n := idemCount(t, srv2, "/api/v1/jobs"); n != 1 {
			t.Fatalf("%d jobs, want 1", n)
		}
	})
}

func TestIdempotencyKeyValidation(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		_, srv := idemService(t, dbURL)
		body := `{"command":"true","type":"shell"}`
		r := idemMust(t, 400, idemCall(t, srv, "POST", "/api/v1/tasks", strings.Repeat("k", 256), body))
		if typ := idemProblemType(t, r); typ != "bad-request" {
			t.Errorf("problem type %q, want bad-request", typ)
		}
		idemMust(t, 400, idemCall(t, srv, "POST", "/api/v1/tasks", "schlüssel", body))
		if n := idemCount(t, srv, "/api/v1/tasks"); n != 0 {
			t.Fatalf("%d tasks after refused keys, want 0", n)
		}
		long := strings.Repeat("k", 255)
		idemMust(t, 201, idemCall(t, srv, "POST", "/api/v1/tasks", long, body))
		if !idemMust(t, 201, idemCall(t, srv, "POST", "/api/v1/tasks", long, body)).replayed() {
			t.Error("a 255-character key was not honored")
		}
		// Other endpoints ignore the header.
		id := idemTask(t, srv, "true")
		idemMust(t, 200, idemCall(t, srv, "PATCH", "/api/v1/tasks/"+id, "x", `{"enabled":false}`))
		if r := idemMust(t, 200, idemCall(t, srv, "PATCH", "/api/v1/tasks/"+id, "x", `{"enabled":true}`)); r.replayed() {
			t.Error("PATCH was replayed")
		}
	})
}

func TestIdempotencyExpiresAfter24h(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		svc, srv := idemService(t, dbURL)
		id := idemTask(t, srv, "true")
		_, job1 := idemExecute(t, srv, id, "old")
		// Age the record past the window, as if the retry came a day later.
		idemExec(t, svc, "UPDATE idempotency_keys SET created_at = created_at - ?", (25 * time.Hour).Milliseconds())
		r, job2 := idemExecute(t, srv, id, "old")
		if job2 == job1 || r.replayed() {
			t.Fatal("a key older than 24 h was replayed")
		}
		if _, job3 := idemExecute(t, srv, id, "old"); job3 != job2 {
			t.Fatal("the renewed key was not remembered")
		}
	})
}

// An in-flight record left by a process that died mid-request must not lock
// the key for a day.
func TestIdempotencyAbandonedClaim(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		svc, srv := idemService(t, dbURL)
		id := idemTask(t, srv, "true")
		old := time.Now().Add(-2 * time.Minute).UnixMilli()
		idemExec(t, svc, "INSERT INTO idempotency_keys (scope, idem_key, body_hash, status, created_at) VALUES (?, ?, 'x', 0, ?)",
			"/api/v1/tasks/"+id+"/$execute", "crashed", old)
		if r, _ := idemExecute(t, srv, id, "crashed"); r.replayed() {
			t.Fatal("an abandoned claim was replayed")
		}
	})
}

func TestIdempotencyTooLargeBody(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		svc, srv := idemService(t, dbURL)
		big := `{"command":"` + strings.Repeat("x", 1<<20) + `"}`
		r := idemMust(t, 413, idemCall(t, srv, "POST", "/api/v1/tasks", "big", big))
		if typ := idemProblemType(t, r); typ != "payload-too-large" {
			t.Errorf("problem type %q, want payload-too-large", typ)
		}
		var n int
		if err := svc.DB.R.QueryRow("SELECT COUNT(*) FROM idempotency_keys").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Fatalf("%d idempotency records for a refused body, want 0", n)
		}
	})
}

// A request refused by authentication must not claim the key.
func TestIdempotencyAfterAuth(t *testing.T) {
	idemEachDB(t, func(t *testing.T, dbURL string) {
		_, srv := idemService(t, dbURL, "secret")
		body := `{"command":"true","type":"shell"}`
		idemMust(t, 401, idemCall(t, srv, "POST", "/api/v1/tasks", "a", body))
		if idemMust(t, 201, idemCall(t, srv, "POST", "/api/v1/tasks", "a", body, "X-API-Key", "secret")).replayed() {
			t.Fatal("the 401 was stored under the key")
		}
	})
}
