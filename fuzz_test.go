package servicekit_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servicekit/servicekit"
)

// FuzzRequestBodies sends arbitrary bytes as the body of every endpoint
// that takes one. Whatever arrives, the answer is a success or a 4xx
// problem+json — never a 500, a panic or a non-problem error — and a
// refused request stores nothing.
func FuzzRequestBodies(f *testing.F) {
	seeds := []string{`{"command":"echo hi"}`, `{"command":"greet_user","params":{"name":"x"}}`, `{"params":{"a":1,"b":2}}`,
		`{"env":{"A":"1"}}`, `{"data":{"k":[1,2,3]},"parent_id":null}`, `{"enabled":false}`, `{"command":""}`, `{`, `[]`, `null`,
		`{"command":"x","retries":-1}`, `{"command":"x","timeout_seconds":1e309}`, `{"params":{"name":"\u0000"}}`, "\xff\xfe"}
	for i, s := range seeds {
		f.Add(uint8(i), []byte(s))
	}
	dir := f.TempDir()
	svc, err := servicekit.New(servicekit.Info{}).WithDatabase("sqlite:///" + filepath.Join(dir, "f.db")).
		WithRegistry(testRegistry()).WithTasks().Build(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	f.Cleanup(func() { srv.Close(); svc.Close() })
	e := &env{t: &testing.T{}, svc: svc, srv: srv}
	add := e.createTaskF(f, `{"command":"add"}`)
	shellTask := e.createTaskF(f, `{"command":"true"}`)
	art := e.postF(f, "/api/v1/artifacts", `{"data":{}}`)
	targets := []struct{ method, path string }{
		{"POST", "/api/v1/tasks"},
		{"PUT", "/api/v1/tasks/" + shellTask},
		{"PATCH", "/api/v1/tasks/" + add},
		{"POST", "/api/v1/tasks/" + add + "/$execute"},
		{"POST", "/api/v1/tasks/" + shellTask + "/$execute"},
		{"POST", "/api/v1/artifacts"},
		{"PUT", "/api/v1/artifacts/" + art},
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		e := &env{t: t, svc: svc, srv: srv}
		tg := targets[int(which)%len(targets)]
		r := e.do(tg.method, tg.path, body)
		switch {
		case r.status >= 200 && r.status < 300:
		case r.status >= 400 && r.status < 500:
			var p map[string]any
			if r.header.Get("Content-Type") != "application/problem+json" || json.Unmarshal(r.body, &p) != nil ||
				!strings.HasPrefix(p["type"].(string), "urn:servicekit:error:") {
				t.Fatalf("%s %s %q: %d %s", tg.method, tg.path, body, r.status, r.body)
			}
		default:
			t.Fatalf("%s %s %q: %d %s", tg.method, tg.path, body, r.status, r.body)
		}
	})
}

func (e *env) createTaskF(f *testing.F, body string) string { return e.postF(f, "/api/v1/tasks", body) }

func (e *env) postF(f *testing.F, path, body string) string {
	r := e.do("POST", path, body)
	if r.status != 201 {
		f.Fatalf("%s: %d %s", path, r.status, r.body)
	}
	return r.json()["id"].(string)
}
