package clustertest

// Schedules on a cluster: every node runs the schedule loop, and the unique
// (task, slot) key in the database is all that keeps a slot from firing twice.

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// schedJob is the part of a job record the schedule tests read.
type schedJob struct {
	ID           string     `json:"id"`
	Status       string     `json:"status"`
	Attempt      int        `json:"attempt"`
	Node         *string    `json:"node"`
	Trigger      string     `json:"trigger"`
	ScheduledFor *time.Time `json:"scheduled_for"`
	SubmittedAt  time.Time  `json:"submitted_at"`
	StartedAt    *time.Time `json:"started_at"`
	Error        *string    `json:"error"`
}

func (j schedJob) node() string {
	if j.Node == nil {
		return ""
	}
	return *j.Node
}

func (j schedJob) terminal() bool {
	return j.Status == "completed" || j.Status == "failed" || j.Status == "canceled"
}

// scheduleJobs lists every job the task's schedule fired, through this node.
func (n *node) scheduleJobs(taskID string) []schedJob {
	n.t.Helper()
	var page struct {
		Items []schedJob
		Total int
	}
	n.call("GET", "/api/v1/jobs?task_id="+taskID+"&trigger=schedule&page=1&size=1000", nil, 200, &page)
	if page.Total > len(page.Items) {
		n.t.Fatalf("task %s has %d schedule jobs, more than one page of %d", taskID, page.Total, len(page.Items))
	}
	return page.Items
}

// sleepUntil waits for a wall-clock instant: the tests' own timetable
// (when to kill a node, when to send a PATCH), never a stand-in for a state.
func sleepUntil(at time.Time) { time.Sleep(time.Until(at)) }

// halfway is the first instant at or after t that is half a second after
// a slot of "@every 1s" whose slots fall on slot + whole seconds (it counts
// from when the schedule was set): between two slots, when a `true` job of
// the previous slot has long ended, so a SIGKILL then strands no running job.
func halfway(t, slot time.Time) time.Time {
	h := slot.Add(t.Sub(slot).Truncate(time.Second)).Add(time.Second / 2)
	for h.Before(t) {
		h = h.Add(time.Second)
	}
	return h
}

// percentile is the nearest-rank p-th percentile of sorted ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	i := int(float64(len(ds))*p+0.999999) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// TestScheduleFiresEachSlotOnceOnThreeNodes runs an "@every 1s" task on
// three nodes of one database for 30 s of real time. A third of the way in
// node C is killed with SIGKILL (slots must go on firing on A and B), two
// thirds in it starts again (its start-up catch-up must not fire a slot
// the others already fired); then the task is disabled. Every slot from the
// first to the last must have exactly one job, the first slot must come
// right after the create and the last right before the disable (so the
// schedule did not stop early), all must complete, and the jobs must have
// run on more than one node. The start lag (started_at − scheduled_for) is
// logged; its bound here is generous, since this runs under -race on a
// small shared machine (the speed bar is measured elsewhere).
func TestScheduleFiresEachSlotOnceOnThreeNodes(t *testing.T) {
	const run = 30 * time.Second
	url := postgres(t)
	a, b, c := start(t, "A", url), start(t, "B", url), start(t, "C", url)
	names := map[string]string{a.id: "A", b.id: "B", c.id: "C"}

	// One retry: should a job run on C at the moment of its SIGKILL after
	// all, it is rescued and completes on attempt 2 rather than failing.
	var task struct {
		ID         string
		NextFireAt time.Time `json:"next_fire_at"`
	}
	posted := time.Now()
	a.call("POST", "/api/v1/tasks", map[string]any{
		"command": "true", "type": "shell", "schedule": "@every 1s", "overlap": "allow", "retries": 1,
	}, 201, &task)
	created := time.Now()

	sleepUntil(halfway(created.Add(run/3), task.NextFireAt))
	c.kill()
	killed := time.Now()
	sleepUntil(halfway(created.Add(2*run/3), task.NextFireAt))
	restartAt := time.Now()
	c2 := start(t, "C2", url)
	names[c2.id] = "C2 (C restarted)"
	up := time.Now()
	sleepUntil(created.Add(run))

	disableSent := time.Now()
	a.call("PATCH", "/api/v1/tasks/"+task.ID, map[string]any{"enabled": false}, 200, nil)
	disabled := time.Now()

	var jobs []schedJob
	if !eventually(30*time.Second, func() bool {
		jobs = b.scheduleJobs(task.ID)
		return !slices.ContainsFunc(jobs, func(j schedJob) bool { return !j.terminal() })
	}) {
		t.Fatalf("jobs of the task not all finished 30 s after it was disabled: %+v\n%s", jobs, tails(a, b, c2))
	}
	if len(jobs) == 0 {
		t.Fatalf("the schedule fired no job in %s\n%s", run, tails(a, b, c, c2))
	}

	bySlot := map[time.Time][]schedJob{}
	perNode := map[string]int{}
	var lags []time.Duration
	retried := 0
	for _, j := range jobs {
		if j.Trigger != "schedule" || j.ScheduledFor == nil {
			t.Errorf("job %s: trigger %q scheduled_for %v, want schedule and a slot", j.ID, j.Trigger, j.ScheduledFor)
			continue
		}
		slot := j.ScheduledFor.UTC()
		if d := slot.Sub(task.NextFireAt); d%time.Second != 0 {
			t.Errorf("job %s: slot %s is not the first slot (%s) plus whole seconds", j.ID, slot.Format(time.RFC3339Nano), task.NextFireAt.Format(time.RFC3339Nano))
		}
		bySlot[slot] = append(bySlot[slot], j)
		if j.Status != "completed" {
			t.Errorf("job %s (slot %s) ended %s: %v", j.ID, slot.Format(time.TimeOnly), j.Status, j.Error)
		}
		perNode[j.node()]++
		if j.Attempt > 1 {
			retried++ // its started_at is the retry's, not a measure of the schedule
		} else if j.StartedAt != nil {
			lags = append(lags, j.StartedAt.Sub(slot))
		}
	}
	slots := make([]time.Time, 0, len(bySlot))
	for s := range bySlot {
		slots = append(slots, s)
	}
	slices.SortFunc(slots, func(x, y time.Time) int { return x.Compare(y) })
	first, last := slots[0], slots[len(slots)-1]
	for s := first; !s.After(last); s = s.Add(time.Second) {
		switch js := bySlot[s]; len(js) {
		case 1:
		case 0:
			t.Errorf("slot %s fired no job (C killed %s, restarted %s, up %s)", s.Format(time.TimeOnly),
				killed.Format("15:04:05.000"), restartAt.Format("15:04:05.000"), up.Format("15:04:05.000"))
		default:
			var ids []string
			for _, j := range js {
				ids = append(ids, j.ID+" on "+names[j.node()])
			}
			t.Errorf("slot %s fired %d jobs: %s", s.Format(time.TimeOnly), len(js), strings.Join(ids, ", "))
		}
	}
	// The ends: the first slot is the one the create announced, a second after it
	// (the node that stored the task hears of it at once), and the schedule
	// fired until the disable, and not after.
	if !first.After(posted) || first.After(created.Add(2*time.Second)) {
		t.Errorf("first slot %s, want within 2 s after the create (%s)", first.Format("15:04:05.000"), created.Format("15:04:05.000"))
	}
	if last.Before(disableSent.Add(-2*time.Second)) || last.After(disabled) {
		t.Errorf("last slot %s, want within 2 s before the disable (sent %s, answered %s)",
			last.Format("15:04:05.000"), disableSent.Format("15:04:05.000"), disabled.Format("15:04:05.000"))
	}
	var info struct {
		Next     []any `json:"next"`
		LastFire *struct {
			JobID        string    `json:"job_id"`
			ScheduledFor time.Time `json:"scheduled_for"`
		} `json:"last_fire"`
	}
	c2.call("GET", "/api/v1/tasks/"+task.ID+"/$schedule", nil, 200, &info)
	if info.LastFire == nil || !info.LastFire.ScheduledFor.Equal(last) || len(info.Next) != 0 {
		t.Errorf("$schedule of the disabled task: next %v, last fire %+v; want no next slot and the last fire at %s", info.Next, info.LastFire, last)
	}

	var parts []string
	for id, n := range perNode {
		name := names[id]
		if name == "" {
			t.Errorf("%d jobs ran on %q, which is none of the nodes", n, id)
		}
		parts = append(parts, fmt.Sprintf("%s: %d", name, n))
	}
	sort.Strings(parts)
	if len(perNode) < 2 {
		t.Errorf("all jobs ran on one node: %v", parts)
	}
	slices.Sort(lags)
	p50, p99, worst := percentile(lags, 0.50), percentile(lags, 0.99), percentile(lags, 1)
	t.Logf("%d slots %s–%s, %d jobs in %s; C killed at +%s, started again at +%s (up at +%s); ran on: %s; rescued and retried: %d",
		len(slots), first.Format(time.TimeOnly), last.Format(time.TimeOnly), len(jobs), run,
		killed.Sub(created).Round(time.Millisecond), restartAt.Sub(created).Round(time.Millisecond),
		up.Sub(created).Round(time.Millisecond), strings.Join(parts, ", "), retried)
	t.Logf("start lag (started_at − scheduled_for) over %d first attempts: p50 %s, p99 %s, max %s",
		len(lags), p50.Round(time.Millisecond), p99.Round(time.Millisecond), worst.Round(time.Millisecond))
	if worst >= 5*time.Second {
		t.Errorf("a job started %s after its slot, want under 5 s", worst)
	}
}

// listenSignals LISTENs, as the test, on the PostgreSQL channel the nodes of
// the database at url signal each other on, and sends each payload
// ("origin|topic|payload") to the returned channel. The channel name is
// the one store.Notifier uses: "servicekit_" and the schema, cut to 63 bytes.
func listenSignals(t *testing.T, url string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	var schema string
	if err := conn.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	channel := "servicekit_" + schema
	if len(channel) > 63 {
		channel = channel[:63]
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{channel}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			n, err := conn.WaitForNotification(ctx)
			if err != nil {
				return
			}
			select {
			case out <- n.Payload:
			default: // nobody drains it now; the test reads only fresh ones
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		conn.Close(context.Background())
	})
	return out
}

// TestScheduleChangeReachesAllNodes changes a yearly task to "@every 1s"
// through node B and checks that another node's schedule loop fires its
// first slot at once: the change travels as a signal, not with the loops'
// periodic re-read (every 3 s). So that the firing node cannot be B itself
// (B applies its own change locally, whatever the signal does), B is killed
// as soon as its signal is on the wire (the test LISTENs on the nodes'
// channel) and before the first slot; and only one other node runs at a
// time, so the first slot must be that node's. This is done for A (C
// stopped) and then for C (A stopped), with B started afresh: the change
// reaches every node. @every counts from the change, so the first slot is
// a second after the PATCH (its answer's next_fire_at): a loop that
// heard of the change waits for it; one that learned it only from its
// next re-read misses it more often than not (in each round, about 2 in 3),
// so the two rounds together tell the one from the other.
func TestScheduleChangeReachesAllNodes(t *testing.T) {
	url := postgres(t)
	a, b, c := start(t, "A", url), start(t, "B", url), start(t, "C", url)
	signals := listenSignals(t, url)

	var task struct{ ID string }
	a.call("POST", "/api/v1/tasks", map[string]any{"command": "true", "type": "shell", "schedule": "0 0 1 1 *"}, 201, &task)
	var info struct {
		Next []struct {
			UTC time.Time `json:"utc"`
		} `json:"next"`
	}
	b.call("GET", "/api/v1/tasks/"+task.ID+"/$schedule", nil, 200, &info)
	if len(info.Next) == 0 || info.Next[0].UTC.Month() != time.January || info.Next[0].UTC.Day() != 1 {
		t.Fatalf("$schedule of a yearly task: next %+v, want 1 January", info.Next)
	}
	if jobs := b.scheduleJobs(task.ID); len(jobs) != 0 {
		t.Fatalf("a yearly task fired %d jobs at once: %+v", len(jobs), jobs)
	}

	c.kill()
	changeRound(t, url, task.ID, b, a, signals)
	b2, c2 := start(t, "B2", url), start(t, "C2", url)
	a.kill()
	changeRound(t, url, task.ID, b2, c2, signals)
}

// changeRound PATCHes the task to "@every 1s" through patcher, kills
// patcher once its signal went out, and checks that receiver, the only
// other live node, fired the first slot after the PATCH. Then it
// sets the task back to yearly through receiver and waits for the task's
// jobs to end. A round in which the signal or the kill came too close to
// the first slot (the patcher might have fired it) proves nothing and is
// tried again with the patcher started afresh.
func changeRound(t *testing.T, url, taskID string, patcher, receiver *node, signals <-chan string) {
	t.Helper()
	for try := 1; ; try++ {
		for len(signals) > 0 {
			<-signals
		}
		sleepUntil(time.Now().Truncate(time.Second).Add(time.Second + 50*time.Millisecond))
		patchAt := time.Now()
		var patched struct {
			NextFireAt time.Time `json:"next_fire_at"`
		}
		patcher.call("PATCH", "/api/v1/tasks/"+taskID, map[string]any{"schedule": "@every 1s"}, 200, &patched)
		answered := time.Now()
		// @every counts from the change: the first slot is a second after it.
		slot := patched.NextFireAt
		if d := slot.Sub(patchAt); d < 900*time.Millisecond || d > 1200*time.Millisecond {
			t.Fatalf("after the PATCH at %s the next slot is %s, want about a second later", patchAt.Format("15:04:05.000"), slot.Format("15:04:05.000"))
		}

		var signaled time.Time
		timeout := time.NewTimer(time.Until(slot.Add(-200 * time.Millisecond)))
	wait:
		for {
			select {
			case p := <-signals:
				if strings.HasSuffix(p, "|tasks|"+taskID) {
					signaled = time.Now()
					break wait
				}
			case <-timeout.C:
				break wait
			}
		}
		timeout.Stop()
		patcher.kill()
		killed := time.Now()

		var first *schedJob
		if !eventually(10*time.Second, func() bool {
			for _, j := range receiver.scheduleJobs(taskID) {
				if j.ScheduledFor != nil && j.ScheduledFor.After(patchAt) && (first == nil || j.ScheduledFor.Before(*first.ScheduledFor)) {
					first = &j
				}
			}
			return first != nil
		}) {
			t.Fatalf("no schedule job 10 s after the task was changed to @every 1s through %s (receiver %s)\n%s",
				patcher.name, receiver.name, tails(patcher, receiver))
		}
		conclusive := !signaled.IsZero() && killed.Before(slot.Add(-50*time.Millisecond))
		receiver.call("PATCH", "/api/v1/tasks/"+taskID, map[string]any{"schedule": "0 0 1 1 *"}, 200, nil)
		var jobs []schedJob
		if !eventually(30*time.Second, func() bool {
			jobs = receiver.scheduleJobs(taskID)
			return !slices.ContainsFunc(jobs, func(j schedJob) bool { return !j.terminal() })
		}) {
			t.Fatalf("jobs of the task not all finished 30 s after it went back to yearly: %+v\n%s", jobs, receiver.tail())
		}
		for _, j := range jobs { // the first job again, now that it ended
			if j.ID == first.ID {
				first = &j
			}
		}
		ms := func(at time.Time) string {
			if at.IsZero() {
				return "never"
			}
			return "+" + at.Sub(patchAt).Round(time.Millisecond).String()
		}
		t.Logf("round %s→%s (try %d): PATCH sent at %s, answered %s, signal seen %s, %s killed %s; first slot %s fired (submitted %s, started %s) on %s",
			patcher.name, receiver.name, try, patchAt.Format("15:04:05.000"), ms(answered), ms(signaled), patcher.name, ms(killed),
			ms(*first.ScheduledFor), ms(first.SubmittedAt), ms(timeOr(first.StartedAt)), nodeName(first.node(), patcher, receiver))

		if !conclusive {
			if try == 3 {
				t.Fatalf("%d tries: %s's signal not seen before the first slot (seen %s) or %s killed too late (%s); is the nodes' channel still servicekit_<schema>?",
					try, patcher.name, ms(signaled), patcher.name, ms(killed))
			}
			patcher = start(t, patcher.name+"+", url)
			continue
		}
		if !first.ScheduledFor.Equal(slot) {
			t.Errorf("%s fired its first slot at %s, want %s, the first slot after the PATCH through %s at %s: the change reached it late (by a re-read, not the signal)",
				receiver.name, first.ScheduledFor.Format("15:04:05.000"), slot.Format("15:04:05.000"), patcher.name, patchAt.Format("15:04:05.000"))
		}
		if first.SubmittedAt.Sub(patchAt) > 2*time.Second {
			t.Errorf("the first job was submitted %s after the PATCH, want within 2 s", first.SubmittedAt.Sub(patchAt))
		}
		if first.node() != receiver.id {
			t.Errorf("the first job ran on %q, want the only live node %s (%s)", first.node(), receiver.name, receiver.id)
		}
		return
	}
}

// nodeName is the name of the node of id among nodes, else id itself.
func nodeName(id string, nodes ...*node) string {
	for _, n := range nodes {
		if n.id == id {
			return n.name
		}
	}
	return fmt.Sprintf("%q", id)
}

// timeOr is *t, or the zero time for nil.
func timeOr(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
