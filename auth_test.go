package servicekit_test

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/httpapi"
)

func newAuthEnv(t *testing.T, header string, keys ...string) *env {
	t.Helper()
	b := servicekit.New(servicekit.Info{DisplayName: "auth"}).
		WithDatabase("sqlite:///" + filepath.Join(t.TempDir(), "t.db")).
		WithRegistry(testRegistry()).WithTasks().WithAPIKeys(keys...)
	if header != "" {
		b = b.WithAPIKeyHeader(header)
	}
	svc, err := b.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return &env{t: t, svc: svc, srv: srv}
}

func TestAPIKeys(t *testing.T) {
	e := newAuthEnv(t, "", "k1-secret", "k2-other")
	for _, path := range []string{"/api/v1/tasks", "/api/v1/jobs", "/api/v1/info", "/metrics", "/api/v1/nowhere"} {
		r := e.do("GET", path, nil)
		e.want(r, 401, "unauthorized")
		if !strings.Contains(r.json()["detail"].(string), "missing API key") || !strings.Contains(r.header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s: %s %v", path, r.body, r.header)
		}
		r = e.do("GET", path, nil, "X-API-Key", "k1-secreT")
		e.want(r, 401, "unauthorized")
		if r.json()["detail"] != "the API key is not valid" {
			t.Fatalf("wrong key detail %s", r.body)
		}
		e.want(e.do("GET", path, nil, "Authorization", "Bearer nope"), 401, "unauthorized")
		e.want(e.do("GET", path, nil, "Authorization", "Basic azE6"), 401, "unauthorized")
	}
	e.want(e.do("GET", "/api/v1/tasks", nil, "X-API-Key", "k1-secret"), 200, "")
	e.want(e.do("GET", "/api/v1/tasks", nil, "X-API-Key", "k2-other"), 200, "")
	e.want(e.do("GET", "/api/v1/tasks", nil, "Authorization", "Bearer k2-other"), 200, "")
	e.want(e.do("GET", "/metrics", nil, "Authorization", "Bearer k1-secret"), 200, "")
	e.want(e.do("GET", "/api/v1/nowhere", nil, "X-API-Key", "k1-secret"), 404, "not-found")
	r := e.do("POST", "/api/v1/tasks", map[string]any{"command": "echo hi"}, "X-API-Key", "k1-secret")
	e.want(r, 201, "")
	for _, open := range []string{"/health", "/openapi.json", "/docs"} {
		if r := e.do("GET", open, nil); r.status != 200 {
			t.Fatalf("%s needs no key, got %d", open, r.status)
		}
	}
}

func TestAPIKeyCustomHeader(t *testing.T) {
	e := newAuthEnv(t, "X-Service-Token", "tok")
	e.want(e.do("GET", "/api/v1/jobs", nil, "X-API-Key", "tok"), 401, "unauthorized")
	e.want(e.do("GET", "/api/v1/jobs", nil, "X-Service-Token", "tok"), 200, "")
	e.want(e.do("GET", "/api/v1/jobs", nil, "Authorization", "Bearer tok"), 200, "")
}

func TestKeySources(t *testing.T) {
	if got := httpapi.ParseKeys(" a, b ,,c "); strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("ParseKeys %q", got)
	}
	f := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(f, []byte("# team keys\nalpha\n\n  beta  \n#gamma\n"), 0o600)
	got, err := httpapi.ReadKeyFile(f)
	if err != nil || strings.Join(got, "|") != "alpha|beta" {
		t.Fatalf("ReadKeyFile %q %v", got, err)
	}
	os.WriteFile(f, []byte("# nothing\n"), 0o600)
	if _, err := httpapi.ReadKeyFile(f); err == nil {
		t.Fatal("empty key file accepted")
	}
	if _, err := httpapi.ReadKeyFile(f + ".missing"); err == nil {
		t.Fatal("missing key file accepted")
	}
}
