package task_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
	"github.com/servicekit/servicekit/task"
)

// probe is a function task that records how many of its jobs run at once
// and in which order they start, and blocks while gate is closed.
type probe struct {
	mu      sync.Mutex
	running int
	most    int
	started []*job.Record
	gate    chan struct{} // closed: jobs return at once
}

func newProbe() *probe { return &probe{gate: make(chan struct{})} }

func (p *probe) fn(ctx context.Context, r *job.Record) error {
	p.mu.Lock()
	p.running++
	p.most = max(p.most, p.running)
	p.started = append(p.started, r)
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running--
		p.mu.Unlock()
	}()
	select {
	case <-p.gate:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *probe) open() { close(p.gate) }

func (p *probe) snapshot() (most int, started []*job.Record) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.most, slices.Clone(p.started)
}

type countObs struct{ fired, overlap, missed atomic.Int64 }

func (o *countObs) Fired() { o.fired.Add(1) }
func (o *countObs) Skipped(reason string) {
	switch reason {
	case "overlap":
		o.overlap.Add(1)
	case "missed":
		o.missed.Add(1)
	}
}

type node struct {
	m    *task.Manager
	jobs *job.Scheduler
	obs  *countObs
}

// startNode runs a scheduler, a task manager and its schedule loop on db,
// as one server would.
func startNode(t *testing.T, db *store.DB, reg *task.Registry, opt job.Options, schedules bool) *node {
	t.Helper()
	arts := artifact.NewManager(db)
	jobs := job.New(db, arts, nil, opt)
	obs := &countObs{}
	m := task.NewManager(db, jobs, arts, task.Options{Registry: reg, ScheduleObserver: obs})
	if err := jobs.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if schedules {
			m.RunSchedules(ctx)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		jobs.Shutdown(context.Background(), 0)
	})
	return &node{m: m, jobs: jobs, obs: obs}
}

func probeRegistry(p *probe) *task.Registry {
	reg := task.NewRegistry()
	reg.MustRegister("probe", p.fn)
	return reg
}

// waitFor polls cond (a database read) until it holds or the time is up.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func jobsOf(t *testing.T, n *node, taskID string) []*job.Record {
	t.Helper()
	list, _, err := n.jobs.List(context.Background(), job.Filter{TaskID: taskID}, 1000, 0)
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(list) // oldest first
	return list
}

func countStatus(list []*job.Record, st job.Status) int {
	n := 0
	for _, r := range list {
		if r.Status == st {
			n++
		}
	}
	return n
}

func ptr[T any](v T) *T { return &v }

func TestScheduleValidation(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		n := startNode(t, db, task.NewRegistry(), job.Options{}, false)
		for _, c := range []struct {
			in  task.Input
			loc string
		}{
			{task.Input{Command: "true", Schedule: ptr("*/15 * * *")}, "body.schedule"},
			{task.Input{Command: "true", Schedule: ptr("@every 90ms")}, "body.schedule"},
			{task.Input{Command: "true", Schedule: ptr("0 9 * * *"), Timezone: ptr("Europe/Olso")}, "body.timezone"},
			{task.Input{Command: "true", Schedule: ptr("0 9 * * *"), Timezone: ptr("Local")}, "body.timezone"},
			{task.Input{Command: "true", Timezone: ptr("Mars/Olympus")}, "body.timezone"},
		} {
			_, err := n.m.Create(ctx, c.in)
			ve, ok := errors.AsType[*task.ValidationError](err)
			if !ok || len(ve.Fields) == 0 || ve.Fields[0].Location != c.loc {
				t.Errorf("create %+v: got %v, want a validation error at %s", c.in, err, c.loc)
				continue
			}
			t.Logf("%s: %s", c.loc, ve.Msg)
		}

		tk, err := n.m.Create(ctx, task.Input{Command: "true", Schedule: ptr("  0  9 * * mon-fri "), Timezone: ptr("Europe/Oslo")})
		if err != nil {
			t.Fatal(err)
		}
		if *tk.Schedule != "0 9 * * MON-FRI" || tk.Timezone != "Europe/Oslo" || tk.Overlap != "skip" || tk.CatchUp != "latest" {
			t.Fatalf("stored %q in %s overlap %s catch_up %s", *tk.Schedule, tk.Timezone, tk.Overlap, tk.CatchUp)
		}
		if tk.NextFireAt == nil || !tk.NextFireAt.After(time.Now()) {
			t.Fatalf("next_fire_at %v, want a time to come", tk.NextFireAt)
		}
		info, err := n.m.ScheduleOf(ctx, tk.ID, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(info.Next) != 3 || !info.Next[0].UTC.Equal(*tk.NextFireAt) || info.Next[0].Local.Hour() != 9 || info.LastFire != nil {
			t.Fatalf("$schedule: %+v", info)
		}
		got, err := n.m.Update(ctx, tk.ID, task.Patch{Enabled: ptr(false)})
		if err != nil || got.NextFireAt != nil {
			t.Fatalf("disabled: next_fire_at %v, err %v; want none", got.NextFireAt, err)
		}
		got, err = n.m.Update(ctx, tk.ID, task.Patch{Clear: []string{"schedule"}})
		if err != nil || got.Schedule != nil {
			t.Fatalf("schedule null: %v, err %v", got.Schedule, err)
		}
		// A scheduled, enabled task has a job to come: not orphaned.
		sched, err := n.m.Create(ctx, task.Input{Command: "true", Schedule: ptr("@daily")})
		if err != nil {
			t.Fatal(err)
		}
		orphans, err := n.m.Orphaned(ctx, "no_job")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range orphans {
			if o.ID == sched.ID {
				t.Fatal("a scheduled enabled task is listed as orphaned (no_job)")
			}
		}
	})
}

// TestOverlapPolicies runs an every-second schedule over a job that does
// not end until released, for each policy.
func TestOverlapPolicies(t *testing.T) {
	for _, policy := range []string{"skip", "queue", "allow", "cancel_previous"} {
		t.Run(policy, func(t *testing.T) {
			dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				p := newProbe()
				n := startNode(t, db, probeRegistry(p), job.Options{MaxConcurrency: 4}, true)
				tk, err := n.m.Create(ctx, task.Input{Command: "probe", Schedule: ptr("@every 1s"), Overlap: ptr(policy)})
				if err != nil {
					t.Fatal(err)
				}
				// Three slots after the first fire.
				waitFor(t, 10*time.Second, "a first scheduled job", func() bool { return len(jobsOf(t, n, tk.ID)) > 0 || n.obs.overlap.Load() > 0 })
				first := time.Now()
				waitFor(t, 10*time.Second, "three more slots", func() bool {
					return time.Since(first) > 3100*time.Millisecond
				})
				list := jobsOf(t, n, tk.ID)
				most, _ := p.snapshot()
				for _, r := range list {
					if r.Trigger != job.TriggerSchedule || r.ScheduledFor == nil {
						t.Fatalf("job %s: trigger %q scheduled_for %v", r.ID, r.Trigger, r.ScheduledFor)
					}
				}
				switch policy {
				case "skip":
					if len(list) != 1 || n.obs.overlap.Load() < 2 {
						t.Fatalf("skip: %d jobs, %d slots skipped; want 1 job, the others skipped", len(list), n.obs.overlap.Load())
					}
				case "queue":
					if len(list) < 3 || countStatus(list, job.Running) != 1 || most != 1 {
						t.Fatalf("queue: %d jobs, %d running, at most %d at once; want ≥3 jobs, one running", len(list), countStatus(list, job.Running), most)
					}
				case "allow":
					if len(list) < 3 || most < 3 {
						t.Fatalf("allow: %d jobs, at most %d at once; want ≥3 side by side", len(list), most)
					}
				case "cancel_previous":
					if len(list) < 3 || countStatus(list, job.Canceled) < len(list)-2 || most != 1 {
						t.Fatalf("cancel_previous: %d jobs, %d canceled, at most %d at once", len(list), countStatus(list, job.Canceled), most)
					}
					if last := list[len(list)-1]; last.Status.Terminal() {
						t.Fatalf("cancel_previous: the latest job is %s, want it pending or running", last.Status)
					}
				}
				p.open()
			})
		})
	}
}

// TestCatchUpAfterDowntime: the task's last handled slot is set back 30
// years, as if every node had been down since, and a node starts.
func TestCatchUpAfterDowntime(t *testing.T) {
	for _, c := range []struct {
		policy string
		want   int
	}{{"none", 0}, {"latest", 1}, {"all", task.CatchUpBound}} {
		t.Run(c.policy, func(t *testing.T) {
			dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
				ctx := context.Background()
				p := newProbe()
				p.open()
				setup := startNode(t, db, probeRegistry(p), job.Options{}, false)
				// Yearly, so no slot can be on time while the test runs; queue so
				// that "all" stores every missed slot (skip would drop those
				// behind the first while it is pending).
				tk, err := setup.m.Create(ctx, task.Input{Command: "probe", Schedule: ptr("0 0 1 1 *"), Overlap: ptr("queue"), CatchUp: ptr(c.policy)})
				if err != nil {
					t.Fatal(err)
				}
				long := time.Now().AddDate(-30, 0, 0).UnixMilli()
				if _, err := db.Exec(ctx, db.Rebind("UPDATE tasks SET schedule_since = ?, last_slot = NULL WHERE id = ?"), long, tk.ID); err != nil {
					t.Fatal(err)
				}
				n := startNode(t, db, probeRegistry(p), job.Options{}, true)
				waitFor(t, 10*time.Second, "the catch-up jobs to finish and the others counted missed", func() bool {
					list := jobsOf(t, n, tk.ID)
					return len(list) == c.want && countStatus(list, job.Completed) == c.want &&
						n.obs.missed.Load() == int64(task.CatchUpBound+1-c.want)
				})
				list := jobsOf(t, n, tk.ID)
				thisYear := time.Date(time.Now().UTC().Year(), 1, 1, 0, 0, 0, 0, time.UTC)
				for i, r := range list {
					want := thisYear.AddDate(i-len(list)+1, 0, 0)
					if !r.ScheduledFor.Equal(want) {
						t.Fatalf("job %d for slot %v, want %v", i, r.ScheduledFor, want)
					}
				}
				// A second start finds them handled: nothing more.
				again := startNode(t, db, probeRegistry(p), job.Options{}, true)
				info, err := again.m.ScheduleOf(ctx, tk.ID, 1)
				if err != nil {
					t.Fatal(err)
				}
				if c.want > 0 && (info.LastFire == nil || !info.LastFire.ScheduledFor.Equal(thisYear)) {
					t.Fatalf("last fire %+v, want this year's slot", info.LastFire)
				}
				if got := len(jobsOf(t, again, tk.ID)); got != c.want {
					t.Fatalf("after a second start: %d jobs, want %d", got, c.want)
				}
			})
		})
	}
}

// TestMaxConcurrentAcrossNodes submits 200 jobs of a task limited to one
// through two nodes at once: never two run together, and they start in
// submit order.
func TestMaxConcurrentAcrossNodes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		p := newProbe() // the first job holds its slot until every submit is in
		db := dbtest.Open(t, url)
		a := startNode(t, db, probeRegistry(p), job.Options{MaxConcurrency: 8, Node: "a"}, false)
		b := startNode(t, dbtest.Open(t, url), probeRegistry(p), job.Options{MaxConcurrency: 8, Node: "b"}, false)
		tk, err := a.m.Create(ctx, task.Input{Command: "probe", MaxConcurrent: ptr(1)})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		var ids []string
		for i := range 200 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := a
				if i%2 == 1 {
					n = b
				}
				r, err := n.m.Execute(ctx, tk.ID, task.ExecuteInput{})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				ids = append(ids, r.ID)
				mu.Unlock()
			}()
		}
		wg.Wait()
		p.open()
		waitFor(t, 60*time.Second, "200 jobs completed", func() bool {
			return countStatus(jobsOf(t, a, tk.ID), job.Completed) == 200
		})
		most, started := p.snapshot()
		if most != 1 {
			t.Fatalf("%d jobs of a max_concurrent 1 task ran at once", most)
		}
		nodes := map[string]int{}
		for i, r := range started {
			nodes[*r.Node]++
			// The first started while others were still being stored (a
			// ULID is taken before its commit); the rest were all waiting.
			// On PostgreSQL a claim that lost the race for the task's
			// counter may still hold the first job's row lock while the
			// winner, skipping locked rows, takes the next: order there is
			// submit order but for such a swap (see ClaimNextPG).
			if i > 1 && r.ID < started[i-1].ID && db.Dialect == store.SQLite {
				t.Fatalf("job %s started after %s, submitted later", started[i-1].ID, r.ID)
			}
		}
		t.Logf("started per node: %v", nodes)
	})
}

// TestPriorityOrder: with one slot busy, ready jobs start highest priority
// first, ties in submit order.
func TestPriorityOrder(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		p := newProbe()
		n := startNode(t, db, probeRegistry(p), job.Options{MaxConcurrency: 1}, false)
		tk, err := n.m.Create(ctx, task.Input{Command: "probe", Priority: ptr(0)})
		if err != nil {
			t.Fatal(err)
		}
		blocker, err := n.m.Execute(ctx, tk.ID, task.ExecuteInput{})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "the blocker running", func() bool { _, s := p.snapshot(); return len(s) == 1 })
		want := map[string]int{}
		for _, prio := range []int{0, 5, -1, 5, 10} {
			r, err := n.m.Execute(ctx, tk.ID, task.ExecuteInput{Priority: ptr(prio)})
			if err != nil {
				t.Fatal(err)
			}
			if r.Priority != prio || r.Trigger != job.TriggerAPI {
				t.Fatalf("job priority %d trigger %q", r.Priority, r.Trigger)
			}
			want[r.ID] = prio
		}
		p.open()
		waitFor(t, 10*time.Second, "all done", func() bool { return countStatus(jobsOf(t, n, tk.ID), job.Completed) == 6 })
		_, started := p.snapshot()
		if started[0].ID != blocker.ID {
			t.Fatal("the blocker did not start first")
		}
		var got []int
		for i, r := range started[1:] {
			got = append(got, want[r.ID])
			if i > 0 && want[r.ID] == want[started[i].ID] && r.ID < started[i].ID {
				t.Fatalf("equal priorities out of submit order")
			}
		}
		if !slices.Equal(got, []int{10, 5, 5, 0, -1}) {
			t.Fatalf("start order by priority %v, want [10 5 5 0 -1]", got)
		}
	})
}
