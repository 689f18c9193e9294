package job_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
)

// TestDispatchIsWokenNotPolled shows the dispatcher runs no claim while
// idle, however long; a job submitted beside a free slot starts at once
// (stored already claimed); and jobs that queued behind a busy slot are
// claimed when it frees — woken, never by a timer.
func TestDispatchIsWokenNotPolled(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		gate := make(chan struct{})
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			if run.Job.Command == "gate" {
				<-gate
			}
			return job.Outcome{}
		}, job.Options{Lease: time.Hour, MaxConcurrency: 1})
		time.Sleep(50 * time.Millisecond)
		idle := s.Stats().Claims
		time.Sleep(500 * time.Millisecond)
		if got := s.Stats().Claims; got != idle {
			t.Fatalf("dispatcher ran %d claims while idle: it polls", got-idle)
		}
		if r := wait(t, s, submit(t, s, job.NewJob{}).ID); r.Status != job.Completed {
			t.Fatalf("status %s", r.Status)
		}
		if got := s.Stats().Claims; got != idle {
			t.Fatalf("a job beside a free slot cost %d claims", got-idle)
		}
		first := submit(t, s, job.NewJob{Command: "gate"})
		var queued []*job.Record
		for range 4 {
			r := submit(t, s, job.NewJob{})
			if r.Status != job.Pending {
				t.Fatalf("submitted while the only slot is busy, but %s", r.Status)
			}
			queued = append(queued, r)
		}
		close(gate)
		wait(t, s, first.ID)
		for _, r := range queued {
			if got := wait(t, s, r.ID); got.Status != job.Completed {
				t.Fatalf("queued job %s", got.Status)
			}
		}
		if got := s.Stats().Claims - idle; got < 1 || got > 12 {
			t.Fatalf("%d claims for 4 queued jobs", got)
		}
	})
}

func leaseOf(t *testing.T, db *store.DB, id string) int64 {
	var lease sql.NullInt64
	if err := db.R.QueryRow(db.Rebind("SELECT lease_until FROM jobs WHERE id = ?"), id).Scan(&lease); err != nil {
		t.Fatal(err)
	}
	return lease.Int64
}

// TestLeaseRenewedWhileRunning checks a long job's lease moves forward
// and the job is not rescued although it outlives two lease periods. (The
// lease is long enough that a renewal slowed by a loaded CI machine does not
// make the node fence itself, which is right for a real slow database.)
func TestLeaseRenewedWhileRunning(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		const lease = 1500 * time.Millisecond
		started := make(chan struct{})
		release := make(chan struct{})
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			close(started)
			select {
			case <-release:
				return job.Outcome{}
			case <-ctx.Done():
				return job.Outcome{Err: context.Cause(ctx)}
			}
		}, job.Options{Lease: lease})
		r := submit(t, s, job.NewJob{})
		<-started
		began := time.Now()
		first := leaseOf(t, db, r.ID)
		renewals, last := 0, first
		for deadline := time.Now().Add(20 * time.Second); time.Since(began) < 2*lease || renewals < 3; {
			if time.Now().After(deadline) {
				t.Fatalf("lease renewed %d times in 20 s", renewals)
			}
			if l := leaseOf(t, db, r.ID); l > last {
				renewals, last = renewals+1, l
			}
			time.Sleep(20 * time.Millisecond)
		}
		close(release)
		if done := wait(t, s, r.ID); done.Status != job.Completed || done.Attempt != 1 {
			t.Fatalf("job %s attempt %d (%v) after outliving two leases", done.Status, done.Attempt, done.Error)
		}
	})
}

// TestRescueExpiredLease plants jobs "running" on a node that no longer
// renews them: the one whose lease expired is rescued at start-up, the one
// whose lease is still valid only once it expires; with attempts left a
// rescued job runs again, without it fails with a clear error.
func TestRescueExpiredLease(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		now := time.Now()
		plant := func(id string, lease time.Time, maxAttempts int) {
			_, err := db.W.Exec(db.Rebind(`INSERT INTO jobs (id, task_id, type, command, task_snapshot, status, attempt, max_attempts,
			submitted_at, run_after, started_at, node, lease_until, event_seq)
			VALUES (?, 'T', 'function', 'fn', 'null', 'running', 1, ?, ?, ?, ?, 'elsewhere-1', ?, 0)`),
				id, maxAttempts, now.UnixMilli(), now.UnixMilli(), now.UnixMilli(), lease.UnixMilli())
			if err != nil {
				t.Fatal(err)
			}
		}
		plant("01J00000000000000000000001", now.Add(-time.Second), 1)
		plant("01J00000000000000000000002", now.Add(-time.Second), 2)
		plant("01J00000000000000000000003", now.Add(600*time.Millisecond), 1)
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome { return job.Outcome{} },
			job.Options{Lease: 300 * time.Millisecond})
		r, _ := s.Get(context.Background(), "01J00000000000000000000001")
		if r.Status != job.Failed || !strings.Contains(*r.Error, "elsewhere-1 stopped while running") || r.ArtifactID == nil {
			t.Fatalf("expired, no attempts left: %+v", r)
		}
		if r := wait(t, s, "01J00000000000000000000002"); r.Status != job.Completed || r.Attempt != 2 {
			t.Fatalf("expired, attempts left: %+v", r)
		}
		if r, _ := s.Get(context.Background(), "01J00000000000000000000003"); r.Status != job.Running {
			t.Fatalf("valid lease rescued early: %+v", r)
		}
		if r := wait(t, s, "01J00000000000000000000003"); r.Status != job.Failed {
			t.Fatalf("lease expired later: %+v", r)
		}
	})
}

// TestShutdownInterruptsRunningJobs: running jobs get the grace period,
// then end failed (or pending again with attempts left); pending jobs
// stay pending for the next start; new submits are refused.
func TestShutdownInterruptsRunningJobs(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		started := make(chan struct{}, 2)
		exec := func(ctx context.Context, run *job.Run) job.Outcome {
			started <- struct{}{}
			<-ctx.Done()
			return job.Outcome{Err: ctx.Err()}
		}
		s := newScheduler(t, db, exec, job.Options{MaxConcurrency: 2})
		once := submit(t, s, job.NewJob{})
		again := submit(t, s, job.NewJob{MaxAttempts: 2})
		<-started
		<-started
		waiting := submit(t, s, job.NewJob{})
		s.Shutdown(context.Background(), 100*time.Millisecond)
		if _, err := s.Submit(context.Background(), job.NewJob{Type: "function", Command: "fn", TaskID: "T"}); !errors.Is(err, job.ErrShuttingDown) {
			t.Fatalf("submit after shutdown: %v", err)
		}
		ctx := context.Background()
		if r, _ := s.Get(ctx, once.ID); r.Status != job.Failed || *r.Error != "interrupted by shutdown" {
			t.Fatalf("no retries: %+v", r)
		}
		if r, _ := s.Get(ctx, again.ID); r.Status != job.Pending || r.Attempt != 1 {
			t.Fatalf("retries left: %+v", r)
		}
		if r, _ := s.Get(ctx, waiting.ID); r.Status != job.Pending {
			t.Fatalf("pending job: %+v", r)
		}
	})
}

// TestQueueFull refuses submits over MaxPending and stores nothing for them.
func TestQueueFull(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		release := make(chan struct{})
		defer close(release)
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			<-release
			return job.Outcome{}
		}, job.Options{MaxConcurrency: 1, MaxPending: 2})
		submit(t, s, job.NewJob{}) // runs
		deadline := time.Now().Add(5 * time.Second)
		for s.RunningCount() != 1 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		submit(t, s, job.NewJob{}) // waits
		submit(t, s, job.NewJob{}) // waits
		if _, err := s.Submit(context.Background(), job.NewJob{TaskID: "T", Type: "function", Command: "fn"}); !errors.Is(err, job.ErrQueueFull) {
			t.Fatalf("fourth submit: %v", err)
		}
		if _, total, _ := s.List(context.Background(), job.Filter{}, 10, 0); total != 3 {
			t.Fatalf("%d jobs stored, want 3", total)
		}
	})
}
