package servicekit_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/servicekit/servicekit"
)

// TestWithHealthChecks: the program's own checks show in /health and decide
// its status (unhealthy → 503, degraded → 200); bad checks fail Build.
func TestWithHealthChecks(t *testing.T) {
	var cacheDown, mailDown atomic.Bool
	svc, err := servicekit.New(servicekit.Info{}).WithDatabase("sqlite:///"+filepath.Join(t.TempDir(), "t.db")).
		WithHealth(
			servicekit.HealthCheck{Name: "cache", Check: func(context.Context) error {
				if cacheDown.Load() {
					return errors.New("cache: connection refused")
				}
				return nil
			}},
			servicekit.HealthCheck{Name: "mail", Degrades: true, Check: func(context.Context) error {
				if mailDown.Load() {
					return errors.New("smtp timeout")
				}
				return nil
			}},
		).Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	e := serve(t, svc)
	state := func(wantStatus int, want string) map[string]any {
		t.Helper()
		h := e.do("GET", "/health", nil)
		if h.status != wantStatus || h.json()["status"] != want {
			t.Fatalf("health %d %s, want %d %s", h.status, h.body, wantStatus, want)
		}
		return h.json()["checks"].(map[string]any)
	}
	if c := state(200, "healthy"); c["cache"].(map[string]any)["state"] != "healthy" || c["database"] == nil {
		t.Fatalf("checks %v", c)
	}
	mailDown.Store(true)
	if c := state(200, "degraded"); c["mail"].(map[string]any)["message"] != "smtp timeout" {
		t.Fatalf("checks %v", c)
	}
	cacheDown.Store(true)
	if c := state(503, "unhealthy"); c["cache"].(map[string]any)["state"] != "unhealthy" {
		t.Fatalf("checks %v", c)
	}

	for _, bad := range []servicekit.HealthCheck{{Name: "database", Check: func(context.Context) error { return nil }}, {Name: "x"}} {
		_, err := servicekit.New(servicekit.Info{}).WithDatabase("sqlite://:memory:").WithHealth(bad).Build(context.Background())
		if err == nil || !strings.Contains(err.Error(), "WithHealth") {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
}
