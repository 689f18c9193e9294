package httpapi

import (
	"context"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/shell"
)

// CheckResult is one health check's outcome.
type CheckResult struct {
	State   string `json:"state" enum:"healthy,degraded,unhealthy"`
	Message string `json:"message,omitempty"`
}

// HealthCheck is a check of the program's own that GET /health runs beside
// the database and scheduler checks, with the same 2 s timeout.
type HealthCheck struct {
	// Name is its key in checks; "database" and "scheduler" are taken.
	Name string
	// Check returns nil when the dependency is fine.
	Check func(ctx context.Context) error
	// Degrades makes a failure "degraded" (still 200) instead of
	// "unhealthy" (503), for a dependency the service can limp without.
	Degrades bool
}

// Health is the body of GET /health.
type Health struct {
	Status string                 `json:"status" enum:"healthy,degraded,unhealthy"`
	Checks map[string]CheckResult `json:"checks"`
}

// SystemInfo is the body of GET /api/v1/system.
type SystemInfo struct {
	GoVersion     string    `json:"go_version"`
	Hostname      string    `json:"hostname"`
	Node          string    `json:"node"`
	PID           int       `json:"pid"`
	NumCPU        int       `json:"num_cpu"`
	Goroutines    int       `json:"goroutines"`
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds float64   `json:"uptime_seconds"`
	Now           time.Time `json:"now"`
	Database      string    `json:"database"`
	// Nodes are the live server processes sharing the database (this one
	// included), from their heartbeats.
	Nodes []job.Node `json:"nodes"`
	// Containment is how this server keeps every process of a shell job
	// within the job (see the README, "Process containment").
	Containment string `json:"containment"`
}

func (s *Server) registerService() {
	huma.Register(s.api, huma.Operation{
		OperationID: "health", Method: http.MethodGet, Path: "/health", Tags: []string{"Service"},
		Summary: "Health of the service and its dependencies",
		Description: "200 when healthy or degraded, 503 when unhealthy. Open without a key; when the server has API keys, " +
			"a request without a valid one sees only the overall status and each check's state, not their messages " +
			"(queue depth, database errors), which say more about the service than a probe needs.",
	}, func(ctx context.Context, _ *struct{}) (*struct {
		Status int
		Body   Health
	}, error) {
		h := s.health(ctx)
		if !s.keyed(ctx) {
			for name, c := range h.Checks {
				h.Checks[name] = CheckResult{State: c.State}
			}
		}
		out := &struct {
			Status int
			Body   Health
		}{Status: http.StatusOK, Body: h}
		if h.Status == "unhealthy" {
			out.Status = http.StatusServiceUnavailable
		}
		return out, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "info", Method: http.MethodGet, Path: "/api/v1/info", Tags: []string{"Service"}, Summary: "Service information",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body Info }, error) {
		return &struct{ Body Info }{Body: s.d.Info}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "system", Method: http.MethodGet, Path: "/api/v1/system", Tags: []string{"Service"}, Summary: "Runtime facts of this server process",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body SystemInfo }, error) {
		host, _ := os.Hostname()
		now := time.Now().UTC()
		si := SystemInfo{GoVersion: runtime.Version(), Hostname: host, PID: os.Getpid(), NumCPU: runtime.NumCPU(),
			Goroutines: runtime.NumGoroutine(), StartedAt: s.d.Started.UTC(), UptimeSeconds: now.Sub(s.d.Started).Seconds(), Now: now}
		if s.d.Jobs != nil {
			si.Node = s.d.Jobs.Node()
			nodes, err := s.d.Jobs.Nodes(ctx)
			if err != nil {
				return nil, s.toProblem(ctx, err)
			}
			si.Nodes = nodes
		}
		if s.d.DB != nil {
			si.Database = s.d.DB.String()
		}
		si.Containment = shell.ContainmentMode()
		return &struct{ Body SystemInfo }{Body: si}, nil
	})
}

// health runs each check with a timeout; the worst state wins.
func (s *Server) health(ctx context.Context) Health {
	h := Health{Status: "healthy", Checks: map[string]CheckResult{}}
	if s.d.DB != nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := s.d.DB.Check(cctx)
		cancel()
		if err != nil {
			h.Checks["database"] = CheckResult{State: "unhealthy", Message: "database check failed: " + err.Error()}
		} else {
			h.Checks["database"] = CheckResult{State: "healthy"}
		}
	}
	if s.d.Jobs != nil {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		state, msg := s.d.Jobs.Health(cctx)
		cancel()
		h.Checks["scheduler"] = CheckResult{State: state, Message: msg}
	}
	for _, c := range s.d.HealthChecks {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.Check(cctx)
		cancel()
		switch {
		case err == nil:
			h.Checks[c.Name] = CheckResult{State: "healthy"}
		case c.Degrades:
			h.Checks[c.Name] = CheckResult{State: "degraded", Message: err.Error()}
		default:
			h.Checks[c.Name] = CheckResult{State: "unhealthy", Message: err.Error()}
		}
	}
	for _, c := range h.Checks {
		switch {
		case c.State == "unhealthy":
			h.Status = "unhealthy"
		case c.State == "degraded" && h.Status == "healthy":
			h.Status = "degraded"
		}
	}
	return h
}
