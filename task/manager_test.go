package task_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
	"github.com/servicekit/servicekit/task"
)

func newManager(t *testing.T, db *store.DB) *task.Manager {
	t.Helper()
	arts := artifact.NewManager(db)
	jobs := job.New(db, arts, nil, job.Options{})
	m := task.NewManager(db, jobs, arts, task.Options{Registry: task.NewRegistry()})
	if err := jobs.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { jobs.Shutdown(context.Background(), 0) })
	return m
}

// TestConcurrentUpdatesOfDifferentFieldsBothLand: Update used to read,
// modify and write without a condition, so of two concurrent PATCHes of
// different fields one was lost. Now the write is conditional on the version
// read, and the loser re-applies its patch to the winner's result.
func TestConcurrentUpdatesOfDifferentFieldsBothLand(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		m := newManager(t, db)
		tk, err := m.Create(ctx, task.Input{Command: "echo hi"})
		if err != nil {
			t.Fatal(err)
		}
		for round := 1; round <= 100; round++ {
			retries, timeout := round%50, float64(round)
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, err := m.Update(ctx, tk.ID, task.Patch{Retries: &retries})
				errs <- err
			}()
			go func() {
				defer wg.Done()
				_, err := m.Update(ctx, tk.ID, task.Patch{TimeoutSeconds: &timeout})
				errs <- err
			}()
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := m.Get(ctx, tk.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Retries != retries || got.TimeoutSeconds == nil || *got.TimeoutSeconds != timeout {
				t.Fatalf("round %d: retries %d timeout %v, want %d and %v: an update was lost", round, got.Retries, got.TimeoutSeconds, retries, timeout)
			}
		}
	})
}

// TestExecuteSeesChangesAtOnce: $execute reads its task from a cache; a
// change on this node is seen by the next $execute.
func TestExecuteSeesChangesAtOnce(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		m := newManager(t, db)
		tk, err := m.Create(ctx, task.Input{Command: "echo one"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Execute(ctx, tk.ID, task.ExecuteInput{}); err != nil {
			t.Fatal(err)
		}
		cmd := "echo two"
		if _, err := m.Update(ctx, tk.ID, task.Patch{Command: &cmd}); err != nil {
			t.Fatal(err)
		}
		r, err := m.Execute(ctx, tk.ID, task.ExecuteInput{})
		if err != nil || r.Command != cmd {
			t.Fatalf("after the update the job runs %q (%v), want %q", r.Command, err, cmd)
		}
		off := false
		if _, err := m.Update(ctx, tk.ID, task.Patch{Enabled: &off}); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Execute(ctx, tk.ID, task.ExecuteInput{}); !errors.Is(err, task.ErrDisabled) {
			t.Fatalf("execute of the task just disabled: %v, want ErrDisabled", err)
		}
		if err := m.Delete(ctx, tk.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Execute(ctx, tk.ID, task.ExecuteInput{}); !errors.Is(err, task.ErrNotFound) {
			t.Fatalf("execute of the task just deleted: %v, want ErrNotFound", err)
		}
	})
}
