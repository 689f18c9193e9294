package job_test

import (
	"context"
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

// Each test here pins a race the engine once lost; each failed before its fix.

// TestDelayedRetriesAllRunWhenDue: two failing jobs whose retries are due
// 0.5 s apart both run again when due. The dispatcher used to keep one
// timer and drop a later retry time while an earlier one was armed, so the
// second retry waited for an unrelated wake-up (65 s and more).
func TestDelayedRetriesAllRunWhenDue(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		const backoff = time.Second
		var mu sync.Mutex
		failedAt := map[string]time.Time{}
		retriedAt := map[string]time.Time{}
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			mu.Lock()
			defer mu.Unlock()
			if run.Job.Attempt == 1 {
				failedAt[run.Job.ID] = time.Now()
				return job.Outcome{Err: errors.New("first attempt fails")}
			}
			retriedAt[run.Job.ID] = time.Now()
			return job.Outcome{}
		}, job.Options{RetryBackoff: backoff})
		a := submit(t, s, job.NewJob{MaxAttempts: 2})
		time.Sleep(500 * time.Millisecond) // the point of the test: a second retry due later than the first
		b := submit(t, s, job.NewJob{MaxAttempts: 2})
		for _, r := range []*job.Record{a, b} {
			if got := wait(t, s, r.ID); got.Status != job.Completed || got.Attempt != 2 {
				t.Fatalf("job %s: %s attempt %d", r.ID, got.Status, got.Attempt)
			}
			mu.Lock()
			late := retriedAt[r.ID].Sub(failedAt[r.ID].Add(backoff))
			mu.Unlock()
			t.Logf("retry of %s started %v after it was due", r.ID, late)
			if late < -5*time.Millisecond || late > 250*time.Millisecond {
				t.Fatalf("retry of %s started %v after it was due", r.ID, late)
			}
		}
	})
}

// TestCancelRacingFailingAttempt: a cancel recorded just as an attempt
// fails (here: recorded by another node whose signal has not arrived yet)
// ends the job canceled; it never runs again. The claim used to reset the
// request, so the retry ran and Cancel answered with a running job.
func TestCancelRacingFailingAttempt(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		var calls atomic.Int32
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			calls.Add(1)
			_, err := db.W.Exec(db.Rebind("UPDATE jobs SET cancel_requested = 1 WHERE id = ?"), run.Job.ID)
			if err != nil {
				return job.Outcome{Err: err}
			}
			return job.Outcome{Err: errors.New("failed as the cancel came")}
		}, job.Options{})
		r := wait(t, s, submit(t, s, job.NewJob{MaxAttempts: 3}).ID)
		if r.Status != job.Canceled || r.Attempt != 1 || r.ArtifactID == nil {
			t.Fatalf("want canceled after attempt 1 with an artifact, got %s attempt %d", r.Status, r.Attempt)
		}
		if n := calls.Load(); n != 1 {
			t.Fatalf("the job ran %d times after its cancel", n)
		}
	})
}

// TestCancelAndDeleteAfterShutdown answer at once with ErrShuttingDown; the
// write batcher used to accept the op after it stopped and never answer.
func TestCancelAndDeleteAfterShutdown(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome { return job.Outcome{} }, job.Options{})
		r := wait(t, s, submit(t, s, job.NewJob{}).ID)
		s.Shutdown(context.Background(), time.Second)
		done := make(chan error, 2)
		go func() { _, err := s.Cancel(context.Background(), r.ID); done <- err }()
		go func() { done <- s.Delete(context.Background(), r.ID) }()
		for range 2 {
			select {
			case err := <-done:
				if !errors.Is(err, job.ErrShuttingDown) {
					t.Fatalf("after shutdown: %v, want ErrShuttingDown", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Cancel/Delete after shutdown hang")
			}
		}
	})
}

// countingObserver counts ends per job.
type countingObserver struct {
	mu       sync.Mutex
	finished map[string]int
}

func (o *countingObserver) Submitted(string)                   {}
func (o *countingObserver) Started(*job.Record, time.Duration) {}
func (o *countingObserver) Finished(r *job.Record, _ job.Status, _ time.Duration) {
	o.mu.Lock()
	o.finished[r.ID]++
	o.mu.Unlock()
}

func (o *countingObserver) count(id string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.finished[id]
}

// TestLostRunIsStoppedAndNotCounted: when another node took a job over (its
// lease expired and a rescue ran attempt 2 elsewhere), the old owner learns
// it at its next renewal, stops its run, and neither stores nor counts its
// end: the finished-jobs metric counts each job once, on the node that ended
// it. The owner used to keep running and count the job a second time.
func TestLostRunIsStoppedAndNotCounted(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		obs := &countingObserver{finished: map[string]int{}}
		started := make(chan struct{}, 1)
		stopped := make(chan error, 1)
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			started <- struct{}{}
			<-ctx.Done()
			stopped <- context.Cause(ctx)
			return job.Outcome{Err: ctx.Err()}
		}, job.Options{Lease: 1500 * time.Millisecond, Observer: obs})
		r := submit(t, s, job.NewJob{MaxAttempts: 2})
		<-started
		// What a rescue and a claim on another node leave behind.
		_, err := db.W.Exec(db.Rebind(
			"UPDATE jobs SET attempt = attempt + 1, node = 'other-node', lease_until = ? WHERE id = ?"),
			time.Now().Add(time.Hour).UnixMilli(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case cause := <-stopped:
			if cause == nil || !strings.Contains(cause.Error(), "taken from this node") {
				t.Fatalf("run stopped with cause %v", cause)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("the old owner kept running a job another node holds")
		}
		deadline := time.Now().Add(5 * time.Second)
		for s.RunningCount() > 0 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		got, _ := s.Get(context.Background(), r.ID)
		if got.Status != job.Running || got.Attempt != 2 || *got.Node != "other-node" {
			t.Fatalf("the old owner overwrote the new attempt: %s attempt %d on %v", got.Status, got.Attempt, *got.Node)
		}
		if n := obs.count(r.ID); n != 0 {
			t.Fatalf("the old owner counted the job as finished %d times", n)
		}
	})
}
