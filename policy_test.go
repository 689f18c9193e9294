package servicekit_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/shell"
)

// switchPolicy lets a test change the policy while the server runs.
type switchPolicy struct {
	off atomic.Bool
	p   *shell.Policy
}

func (s *switchPolicy) Check(cmd string) error {
	if s.off.Load() {
		return errors.New("shell tasks are switched off")
	}
	return s.p.Check(cmd)
}

func (s *switchPolicy) CheckEnv(env map[string]string) error { return s.p.CheckEnv(env) }

func TestShellPolicyOverHTTP(t *testing.T) {
	allow, err := shell.NewPolicy(shell.ModeAllowlist, []string{"echo", "sleep"})
	if err != nil {
		t.Fatal(err)
	}
	pol := &switchPolicy{p: allow}
	svc, err := servicekit.New(servicekit.Info{}).WithDatabase("sqlite:///" + filepath.Join(t.TempDir(), "t.db")).
		WithJobs(2).WithRegistry(testRegistry()).WithShellPolicy(pol).WithTasks().Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	e := &env{t: t, svc: svc, srv: srv}

	r := e.do("POST", "/api/v1/tasks", map[string]any{"command": "echo hi; rm -rf /"})
	e.want(r, 403, "forbidden")
	if !strings.Contains(r.json()["detail"].(string), "shell syntax") {
		t.Fatalf("detail %s", r.body)
	}
	e.want(e.do("POST", "/api/v1/tasks", map[string]any{"command": "rm -rf /tmp/x"}), 403, "forbidden")
	e.want(e.do("POST", "/api/v1/tasks", map[string]any{"command": "echo hi", "env": map[string]string{"PATH": "/tmp"}}), 403, "forbidden")
	fn := e.createTask(map[string]any{"command": "greet_user"}) // function tasks are unaffected
	e.waitJob(e.execute(fn["id"].(string), nil))

	echo := e.createTask(map[string]any{"command": "echo allowed"})
	if j := e.waitJob(e.execute(echo["id"].(string), nil)); j["status"] != "completed" {
		t.Fatalf("allowed command: %v", j)
	}
	e.want(e.do("POST", "/api/v1/tasks/"+echo["id"].(string)+"/$execute", map[string]any{"env": map[string]string{"LD_PRELOAD": "x.so"}}), 403, "forbidden")
	e.want(e.do("PATCH", "/api/v1/tasks/"+echo["id"].(string), map[string]any{"command": "echo a | sh"}), 403, "forbidden")

	// The policy changes: $execute checks again.
	pol.off.Store(true)
	e.want(e.do("POST", "/api/v1/tasks/"+echo["id"].(string)+"/$execute", nil), 403, "forbidden")
	pol.off.Store(false)

	// ...and so does the job's start: a job queued before the change fails.
	gate := e.createTask(map[string]any{"command": "sleep 0.3"})
	var queued []string
	for range 5 { // more than the concurrency (2) so some wait
		queued = append(queued, e.execute(gate["id"].(string), nil))
	}
	pol.off.Store(true)
	refused := 0
	for _, id := range queued {
		if j := e.waitJob(id); j["status"] == "failed" && strings.Contains(j["error"].(string), "switched off") {
			refused++
		}
	}
	if refused == 0 {
		t.Fatal("no queued job was refused at start after the policy changed")
	}
}
