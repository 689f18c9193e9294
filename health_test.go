package servicekit_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/job"
)

// TestHealthUnhealthyWhenDatabaseFileGoes: open connections would keep
// working on a deleted or overwritten SQLite file; /health must notice.
func TestHealthUnhealthyWhenDatabaseFileGoes(t *testing.T) {
	for _, breakIt := range []func(path string){
		func(path string) { os.Remove(path) },
		func(path string) { os.WriteFile(path, []byte("this is not a database at all"), 0o600) },
	} {
		path := filepath.Join(t.TempDir(), "t.db")
		svc, err := servicekit.New(servicekit.Info{}).WithDatabase("sqlite:///" + path).WithTasks().Build(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(svc)
		e := &env{t: t, svc: svc, srv: srv}
		h := e.do("GET", "/health", nil)
		if h.status != 200 || h.json()["status"] != "healthy" {
			t.Fatalf("before: %d %s", h.status, h.body)
		}
		breakIt(path)
		h = e.do("GET", "/health", nil)
		checks := h.json()["checks"].(map[string]any)
		if h.status != 503 || h.json()["status"] != "unhealthy" || checks["database"].(map[string]any)["state"] != "unhealthy" {
			t.Fatalf("after: %d %s", h.status, h.body)
		}
		srv.Close()
		svc.Close()
	}
}

// TestHealthDegradedWhenQueueSaturated and 429 over --max-pending.
func TestQueueSaturation(t *testing.T) {
	svc, err := servicekit.New(servicekit.Info{}).
		WithDatabase("sqlite:///" + filepath.Join(t.TempDir(), "t.db")).
		WithJobs(1).WithJobOptions(job.Options{MaxPending: 2}).
		WithRegistry(testRegistry()).WithTasks().Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	e := &env{t: t, svc: svc, srv: srv}
	sleepy := e.createTask(map[string]any{"command": "sleepy"})
	first := e.execute(sleepy["id"].(string), nil)
	e.waitRunning(first)
	e.execute(sleepy["id"].(string), nil)
	e.execute(sleepy["id"].(string), nil)
	r := e.do("POST", "/api/v1/tasks/"+sleepy["id"].(string)+"/$execute", nil)
	e.want(r, 429, "too-many-requests")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("429 without Retry-After")
	}
	if n := len(e.do("GET", "/api/v1/jobs", nil).list()); n != 3 {
		t.Fatalf("%d jobs stored, want 3 (the refused one must not exist)", n)
	}
	h := e.do("GET", "/health", nil)
	sched := h.json()["checks"].(map[string]any)["scheduler"].(map[string]any)
	if h.status != 200 || h.json()["status"] != "degraded" || sched["state"] != "degraded" {
		t.Fatalf("health %d %s", h.status, h.body)
	}
}
