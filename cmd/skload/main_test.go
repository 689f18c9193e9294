package main

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/bench"
	"github.com/servicekit/servicekit/task"
)

// newServer serves a freshly built service over loopback HTTP, with the
// functions reg holds.
func newServer(t *testing.T, reg *task.Registry) string {
	t.Helper()
	svc, err := servicekit.New(servicekit.Info{DisplayName: "skload test"}).
		WithDatabase("sqlite:///" + filepath.Join(t.TempDir(), "t.db")).
		WithRegistry(reg).
		WithLogger(slog.New(slog.DiscardHandler)).
		WithShutdownTimeout(2 * time.Second).
		WithTasks().
		Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(svc)
	t.Cleanup(func() { srv.Close(); svc.Close() })
	return srv.URL
}

func helloRegistry() *task.Registry {
	reg := task.NewRegistry()
	reg.MustRegister("hello", func() map[string]any { return map[string]any{"message": "hello"} })
	return reg
}

// TestRunNoop runs the load for about a second against a server whose only
// function is hello, with the limits and the RSS probe switched on (the
// "server" is this process), and checks that jobs completed without errors
// and that the report names every figure.
func TestRunNoop(t *testing.T) {
	url := newServer(t, helloRegistry())
	c := config{Server: url, Clients: 4, Duration: time.Second, JobTimeout: 10 * time.Second, Kind: "noop",
		MeasureLimits: true, LimitWorkers: 2, LimitDuration: 100 * time.Millisecond, LimitDir: t.TempDir(),
		RSSPID: os.Getpid()}
	hc := bench.NewHTTPClient(64)
	defer hc.CloseIdleConnections()
	rep, err := run(context.Background(), c, hc)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Command != "hello" {
		t.Errorf("ran function %q, want hello", rep.Command)
	}
	if rep.Load.Jobs == 0 || rep.Load.Errors != 0 {
		t.Fatalf("jobs %d, errors %d %q: want some jobs and no errors", rep.Load.Jobs, rep.Load.Errors, rep.Load.ErrorSamples)
	}
	var out bytes.Buffer
	rep.print(&out)
	for _, want := range []string{"jobs/s", "p50", "p99", "bare fork/exec", "bare commit", "rss"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("\n%s", out.String())

	// A second run reuses the task rather than creating another.
	c.Duration, c.MeasureLimits, c.RSSPID = 100*time.Millisecond, false, 0
	rep2, err := run(context.Background(), c, hc)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.TaskID != rep.TaskID {
		t.Errorf("second run used task %s, want the first run's %s", rep2.TaskID, rep.TaskID)
	}
}

// TestRunShell runs `true` jobs briefly.
func TestRunShell(t *testing.T) {
	url := newServer(t, task.NewRegistry())
	hc := bench.NewHTTPClient(64)
	defer hc.CloseIdleConnections()
	rep, err := run(context.Background(), config{Server: url, Clients: 2, Duration: 300 * time.Millisecond,
		JobTimeout: 10 * time.Second, Kind: "shell"}, hc)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Load.Jobs == 0 || rep.Load.Errors != 0 {
		t.Fatalf("jobs %d, errors %d %q", rep.Load.Jobs, rep.Load.Errors, rep.Load.ErrorSamples)
	}
}

// TestRunNoopWithoutFunction checks that a server without noop or hello
// (like the stock binary) gets a message that says what to do.
func TestRunNoopWithoutFunction(t *testing.T) {
	url := newServer(t, task.NewRegistry())
	_, err := run(context.Background(), config{Server: url, Clients: 1, Duration: time.Second, Kind: "noop"}, bench.NewHTTPClient(4))
	if err == nil || !strings.Contains(err.Error(), "noop or hello") || !strings.Contains(err.Error(), "-kind shell") {
		t.Fatalf("err = %v, want one naming noop or hello and -kind shell", err)
	}
}
