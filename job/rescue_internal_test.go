package job

import (
	"context"
	"testing"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/store"
)

// TestRescueRacingRenewal: a rescue that decided from a stale read (the
// lease looked expired) must leave the run alone when the owner renewed in
// between; the statement itself re-checks the lease. Rescue used to end the
// attempt by id and attempt only, taking a live job from its owner.
func TestRescueRacingRenewal(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := New(db, artifact.NewManager(db), ExecutorFunc(func(ctx context.Context, run *Run) Outcome { return Outcome{} }),
			Options{Lease: time.Hour})
		if err := s.Start(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Shutdown(ctx, time.Second) })
		const id = "01J00000000000000000000RNW"
		now := time.Now()
		_, err := db.W.Exec(db.Rebind(`INSERT INTO jobs (id, task_id, type, command, task_snapshot, status, attempt,
			max_attempts, submitted_at, run_after, started_at, node, lease_until, event_seq)
			VALUES (?, 'T', 'function', 'fn', 'null', 'running', 1, 2, ?, ?, ?, 'owner-1', ?, 2)`),
			id, now.UnixMilli(), now.UnixMilli(), now.UnixMilli(), now.Add(time.Minute).UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		// The rescuer read the lease as expired; the owner renewed since.
		ok, err := s.rescueOne(ctx, victim{id: id, attempt: 1, node: "owner-1"}, now)
		if err != nil || ok {
			t.Fatalf("rescue of a renewed run: rescued=%v err=%v", ok, err)
		}
		r, _ := s.Get(ctx, id)
		if r.Status != Running || r.Attempt != 1 || *r.Node != "owner-1" {
			t.Fatalf("live run disturbed: %s attempt %d", r.Status, r.Attempt)
		}
		// Once the lease really expired, the same rescue takes it, once.
		if _, err := db.W.Exec(db.Rebind("UPDATE jobs SET lease_until = ? WHERE id = ?"), now.Add(-time.Second).UnixMilli(), id); err != nil {
			t.Fatal(err)
		}
		if ok, err := s.rescueOne(ctx, victim{id: id, attempt: 1, node: "owner-1"}, now); err != nil || !ok {
			t.Fatalf("rescue of an expired run: rescued=%v err=%v", ok, err)
		}
		if ok, _ := s.rescueOne(ctx, victim{id: id, attempt: 1, node: "owner-1"}, now); ok {
			t.Fatal("the same attempt was rescued twice")
		}
	})
}
