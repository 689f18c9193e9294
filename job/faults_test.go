package job_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
)

// TestFunctionIgnoringItsContextIsAbandoned: a function blocked on
// something its context cannot reach used to keep its slot forever; cancel
// answered "running" after 15 s and the dispatcher stalled. Now the job ends
// a grace period after the cancel, saying the function did not return; the
// slot runs the next job; the goroutine is counted until it returns, and its
// late outcome is ignored.
func TestFunctionIgnoringItsContextIsAbandoned(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		stuck := make(chan struct{})
		started := make(chan struct{}, 1)
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			if run.Job.Command == "stuck" {
				started <- struct{}{}
				<-stuck // ignores ctx
				return job.Outcome{Result: json.RawMessage(`{"late":true}`)}
			}
			return job.Outcome{}
		}, job.Options{MaxConcurrency: 1, Lease: 2 * time.Second}) // KillGrace = lease/4 = 500 ms
		r := submit(t, s, job.NewJob{Command: "stuck"})
		<-started
		next := submit(t, s, job.NewJob{})
		got, err := s.Cancel(context.Background(), r.ID)
		if err != nil || got.Status != job.Canceled || !strings.Contains(*got.Error, "did not return") {
			t.Fatalf("cancel of a function that ignores its context: %+v %v", got, err)
		}
		if done := wait(t, s, next.ID); done.Status != job.Completed {
			t.Fatalf("the slot was not given back: next job %s", done.Status)
		}
		if n := s.Stats().Abandoned; n != 1 {
			t.Fatalf("abandoned goroutines %d, want 1", n)
		}
		close(stuck)
		deadline := time.Now().Add(5 * time.Second)
		for s.Stats().Abandoned != 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := s.Stats().Abandoned; n != 0 {
			t.Fatalf("abandoned goroutines %d after it returned", n)
		}
		if late, _ := s.Get(context.Background(), r.ID); late.Status != job.Canceled || late.Result != nil {
			t.Fatalf("the late return changed the job: %s %s", late.Status, late.Result)
		}
	})
}

// TestHugeResultFails: a 289 MB result used to be stored in the job row and
// its artifact; over MaxResultBytes the job fails saying so, stores none of
// it, and is not retried.
func TestHugeResultFails(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		var calls atomic.Int32
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			calls.Add(1)
			return job.Outcome{Result: json.RawMessage(`{"x":"` + strings.Repeat("a", 2<<20) + `"}`)}
		}, job.Options{MaxResultBytes: 1 << 20})
		r := wait(t, s, submit(t, s, job.NewJob{MaxAttempts: 3}).ID)
		if r.Status != job.Failed || r.Result != nil || !strings.Contains(*r.Error, "over the limit") {
			t.Fatalf("huge result: %s %v", r.Status, r.Error)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("retried %d times", n-1)
		}
		var size int
		db.R.QueryRow(db.Rebind("SELECT LENGTH(data) FROM artifacts WHERE id = ?"), *r.ArtifactID).Scan(&size)
		if size > 64<<10 {
			t.Fatalf("artifact of %d bytes stored", size)
		}
	})
}

// TestPermanentFailureIsNotRetried: an error marked Permanent (the shell
// policy refusing a command at start, say) fails the job at once.
func TestPermanentFailureIsNotRetried(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		var calls atomic.Int32
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			calls.Add(1)
			return job.Outcome{Err: job.Permanent(errors.New("refused by policy"))}
		}, job.Options{})
		r := wait(t, s, submit(t, s, job.NewJob{MaxAttempts: 5}).ID)
		if r.Status != job.Failed || r.Attempt != 1 || *r.Error != "refused by policy" || calls.Load() != 1 {
			t.Fatalf("permanent failure: %s attempt %d %v (ran %d times)", r.Status, r.Attempt, r.Error, calls.Load())
		}
	})
}

// TestMaxPendingHoldsUnderConcurrentSubmits: 1,000 concurrent submits with
// MaxPending 50 used to leave 120 pending; the bound now holds exactly.
func TestMaxPendingHoldsUnderConcurrentSubmits(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		release := make(chan struct{})
		defer close(release)
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			<-release
			return job.Outcome{}
		}, job.Options{MaxConcurrency: 1, MaxPending: 50})
		var wg sync.WaitGroup
		var accepted, refused atomic.Int32
		for range 1000 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.Submit(context.Background(), job.NewJob{TaskID: "T", Type: "function", Command: "fn"})
				switch {
				case err == nil:
					accepted.Add(1)
				case errors.Is(err, job.ErrQueueFull):
					refused.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		n, err := s.PendingCount(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("accepted %d, refused %d, pending %d", accepted.Load(), refused.Load(), n)
		if n > 50 {
			t.Fatalf("%d pending, over the bound of 50", n)
		}
		if n < 40 {
			rows, _ := db.R.Query("SELECT status, COUNT(*) FROM jobs GROUP BY status")
			for rows.Next() {
				var st string
				var c int
				rows.Scan(&st, &c)
				t.Logf("%s: %d", st, c)
			}
			rows.Close()
			t.Fatalf("only %d pending: the bound refuses far too early", n)
		}
	})
}

// TestUnstorableEndIsNotRenewedForever: a running row of this node with no
// run behind it (the run ended but its end could not be stored) used to be
// renewed forever; the renewal now gives its lease up and a rescue ends it.
func TestUnstorableEndIsNotRenewedForever(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome { return job.Outcome{} },
			job.Options{Lease: 600 * time.Millisecond})
		const id = "01J0000000000000000000ENDX"
		past := time.Now().Add(-time.Minute).UnixMilli()
		_, err := db.W.Exec(db.Rebind(`INSERT INTO jobs (id, task_id, type, command, task_snapshot, status, attempt,
			max_attempts, submitted_at, run_after, started_at, node, lease_until, event_seq)
			VALUES (?, 'T', 'function', 'fn', 'null', 'running', 1, 1, ?, ?, ?, ?, ?, 2)`),
			id, past, past, past, s.Node(), time.Now().Add(time.Hour).UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		if r := wait(t, s, id); r.Status != job.Failed {
			t.Fatalf("a row with no run behind it: %s", r.Status)
		}
	})
}
