package clustertest

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit/internal/ids"
)

// TestCutOffNodeStopsBeforeRescue puts a TCP proxy between node A and
// PostgreSQL (node B connects directly), runs on A a shell job with one
// retry whose process appends "attempt timestamp" to a file every 100 ms,
// and cuts the proxy. A must stop the job's processes itself (self-fencing)
// before B rescues the job and runs attempt 2: the last line of attempt 1
// must be older than the first line of attempt 2, so there is no moment
// where both write, and no process of attempt 1 may be left.
//
// It runs twice: with the connections closed (the node sees errors at once)
// and blackholed (connections stay open and go silent: only timeouts tell).
func TestCutOffNodeStopsBeforeRescue(t *testing.T) {
	for _, mode := range []cutMode{closeAll, blackhole} {
		t.Run(mode.String(), func(t *testing.T) { testFence(t, mode) })
	}
}

func testFence(t *testing.T, mode cutMode) {
	url := postgres(t)
	target, _ := viaProxy(t, url, "")
	px := newProxy(t, target)
	_, proxied := viaProxy(t, url, px.Addr())
	marker := "fence-" + strings.ToLower(ids.New())
	killMarked(t, marker)

	dir := t.TempDir()
	beats := filepath.Join(dir, "beats.txt")
	cmd := fmt.Sprintf(`while true; do echo "$SERVICEKIT_JOB_ATTEMPT $(date +%%s%%N) $SERVICEKIT_NODE" >> '%s'; sleep 0.1; done`, beats)

	// A alone first, so the job runs on A.
	a := start(t, "A", proxied)
	taskID := a.task(cmd, 1, marker)
	id := a.execute(taskID)
	if j := a.waitJob(id, 10*time.Second, func(j jobRec) bool { return j.Status == "running" }); j.node() != a.id {
		t.Fatalf("job runs on %q, want A (%s)", j.node(), a.id)
	}
	b := start(t, "B", url)
	if !eventually(5*time.Second, func() bool { return countAttempt(t, beats, "1") >= 5 }) {
		t.Fatalf("attempt 1 does not beat\n%s", a.tail())
	}

	px.Cut(mode)
	cut := time.Now()

	// B rescues the job once A's lease expired and runs attempt 2.
	j := b.waitJob(id, 4*lease, func(j jobRec) bool { return j.Attempt == 2 && j.Status == "running" })
	rescued := time.Since(cut)
	if j.node() != b.id {
		t.Fatalf("attempt 2 runs on %q, want B (%s)", j.node(), b.id)
	}
	if !eventually(5*time.Second, func() bool { return countAttempt(t, beats, "2") >= 5 }) {
		t.Fatalf("attempt 2 does not beat\n%s", b.tail())
	}
	left := procsOfAttempt(marker, "1")

	// Stop attempt 2 (it loops forever) before reading the file.
	var end jobRec
	b.call("POST", "/api/v1/jobs/"+id+"/$cancel", nil, 200, &end)
	if end.Status != "canceled" {
		t.Errorf("cancel of attempt 2 via B: %s", end.Status)
	}

	last1, first2 := lastAndFirst(t, beats)
	t.Logf("%s cut: attempt 1 last beat %s after the cut, B saw attempt 2 running %s after it, its first beat %s after it; gap %s",
		mode, last1.Sub(cut).Round(time.Millisecond), rescued.Round(time.Millisecond),
		first2.Sub(cut).Round(time.Millisecond), first2.Sub(last1).Round(time.Millisecond))
	if !last1.Before(first2) {
		t.Errorf("attempt 1 still wrote at %s, after attempt 2 began at %s: the job ran twice at once\n%s",
			last1.Format(time.StampMicro), first2.Format(time.StampMicro), tails(a, b))
	}
	if d := last1.Sub(cut); d >= lease {
		t.Errorf("attempt 1 ran on %s after the cut, longer than the lease (%s)", d, lease)
	}
	if len(left) > 0 {
		t.Errorf("processes of attempt 1 still run on the cut-off node after attempt 2 started: %v", left)
	}
	fences := strings.Count(a.logs.String(), "cannot renew job leases")
	if fences == 0 {
		t.Errorf("node A never logged that it fenced itself\n%s", a.tail())
	}

	t.Run("logged-once", func(t *testing.T) {
		// Logged by now (the cut-off node waits in vain to store its run's end).
		if fences > 1 {
			t.Errorf("node A logged its fencing %d times in %s (an ERROR every lease/20 while its run waits to be stored); want once per cut",
				fences, time.Since(cut).Round(time.Millisecond))
		}
	})
	t.Run("healed", func(t *testing.T) { testHealed(t, px, a.in(t), b.in(t)) })
}

// testHealed heals the proxy after a cut: node A must renew again, be
// listed live again, and run jobs again.
func testHealed(t *testing.T, px *proxy, a, b *node) {
	px.Heal()
	healed := time.Now()
	if !eventually(3*lease, func() bool { return strings.Contains(a.logs.String(), "lease renewal works again") }) {
		t.Fatalf("node A did not renew again within %s of the heal\n%s", 3*lease, a.tail())
	}
	renewed := time.Since(healed)
	var live []string
	if !eventually(lease, func() bool { live = liveNodes(b); return slices.Contains(live, a.id) }) {
		t.Errorf("B lists live nodes %v after the heal, without A (%s)", live, a.id)
	}
	a.waitHealthy(lease)
	// A new job through A runs (on A, or on B, which took it when A signalled it).
	id := a.execute(a.task("echo back", 0, ""))
	j := a.waitJob(id, 2*lease, jobRec.terminal)
	if j.Status != "completed" {
		t.Errorf("a job submitted through A after the heal: %s (%v)", j.Status, deref(j.Error))
	}
	ranOn := "B"
	if j.node() == a.id {
		ranOn = "A"
	}
	t.Logf("A renewed its leases %s after the heal; a new job through it %s on %s",
		renewed.Round(time.Millisecond), j.Status, ranOn)
}

// countAttempt counts the beat lines of attempt in the file.
func countAttempt(t *testing.T, path, attempt string) int {
	data, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for line := range strings.Lines(string(data)) {
		if strings.HasPrefix(line, attempt+" ") {
			n++
		}
	}
	return n
}

// lastAndFirst reads the beats: the last one of attempt 1, the first of attempt 2.
func lastAndFirst(t *testing.T, path string) (last1, first2 time.Time) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("malformed beat %q", line)
		}
		ns, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("malformed beat %q: %v", line, err)
		}
		at := time.Unix(0, ns)
		switch f[0] {
		case "1":
			if at.After(last1) {
				last1 = at
			}
		case "2":
			if first2.IsZero() || at.Before(first2) {
				first2 = at
			}
		default:
			t.Fatalf("beat of attempt %q: %q", f[0], line)
		}
	}
	if last1.IsZero() || first2.IsZero() {
		t.Fatalf("beats of both attempts wanted:\n%s", data)
	}
	return last1, first2
}

// procsOfAttempt lists the marked processes of one attempt.
func procsOfAttempt(marker, attempt string) []proc {
	var out []proc
	for _, p := range procsWith(marker) {
		if p.attempt == attempt {
			out = append(out, p)
		}
	}
	return out
}

// TestCutMidRenewalDoesNotStallOtherNodes cuts node A off in the middle
// of its lease renewal: PostgreSQL has run A's UPDATE of its jobs' leases
// (and holds those rows locked) when A falls silent, its transaction left
// open. That is what a network partition does to a node at an unlucky
// moment. Node B must still rescue A's job (attempt 2 runs on B), and B's
// own running job must not suffer: B keeps renewing its leases, never
// fences itself, and its job runs on.
func TestCutMidRenewalDoesNotStallOtherNodes(t *testing.T) {
	url := postgres(t)
	target, _ := viaProxy(t, url, "")
	px := newProxy(t, target)
	_, proxied := viaProxy(t, url, px.Addr())
	marker := "midtx-" + strings.ToLower(ids.New())
	killMarked(t, marker)

	a := start(t, "A", proxied)
	onA := a.execute(a.task("sleep 30", 1, marker))
	a.waitJob(onA, 10*time.Second, func(j jobRec) bool { return j.Status == "running" })
	b := start(t, "B", url)
	onB := b.execute(b.task("sleep 30", 0, marker))
	if j := b.waitJob(onB, 10*time.Second, func(j jobRec) bool { return j.Status == "running" }); j.node() != b.id {
		t.Fatalf("B's job runs on %q, want B (%s)", j.node(), b.id)
	}

	// The renewal statement (job/queries.sql RenewLeases).
	px.CutAfter("RETURNING id, attempt, cancel_requested")
	if !eventually(2*lease, px.isCut) {
		t.Fatalf("A never renewed its leases through the proxy\n%s", a.tail())
	}
	cut := time.Now()

	deadline := cut.Add(4 * lease)
	var ja, jb jobRec
	for {
		ja, jb = b.job(onA), b.job(onB)
		if jb.Status != "running" {
			t.Fatalf("B's own job ended %s (%v) %s after A was cut off mid-renewal\n%s%s",
				jb.Status, deref(jb.Error), time.Since(cut).Round(time.Millisecond), pgActivity(url), tails(a, b))
		}
		if ja.Attempt == 2 && ja.Status == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A's job not rescued %s after A was cut off mid-renewal: %s attempt %d on %s\n%s%s",
				4*lease, ja.Status, ja.Attempt, ja.node(), pgActivity(url), tails(a, b))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("A cut off mid-renewal: its job rescued by B %s after the cut", time.Since(cut).Round(time.Millisecond))
	if ja.node() != b.id {
		t.Errorf("A's job rescued onto %q, want B (%s)", ja.node(), b.id)
	}
	// B's own job must stay unharmed for a lease more (a late fence would show now).
	for hold := time.Now().Add(lease); time.Now().Before(hold); time.Sleep(50 * time.Millisecond) {
		if jb = b.job(onB); jb.Status != "running" {
			t.Fatalf("B's own job ended %s (%v) %s after A was cut off mid-renewal\n%s",
				jb.Status, deref(jb.Error), time.Since(cut).Round(time.Millisecond), tails(a, b))
		}
	}
	if strings.Contains(b.logs.String(), "cannot renew job leases") {
		t.Errorf("B fenced itself though only A was cut off\n%s", b.tail())
	}
}

// pgActivity describes the server's sessions in transactions, for failure
// messages: who waits on a lock, who sits idle in a transaction.
func pgActivity(url string) string {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return err.Error()
	}
	defer db.Close()
	rows, err := db.Query(`SELECT pid, state, coalesce(wait_event_type, ''), coalesce(wait_event, ''),
		coalesce(now() - xact_start, '0'::interval)::text, left(query, 90)
		FROM pg_stat_activity WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid() ORDER BY xact_start`)
	if err != nil {
		return err.Error()
	}
	defer rows.Close()
	var b strings.Builder
	b.WriteString("--- PostgreSQL sessions in a transaction ---\n")
	for rows.Next() {
		var pid int
		var state, wt, we, age, q string
		if rows.Scan(&pid, &state, &wt, &we, &age, &q) == nil {
			fmt.Fprintf(&b, "pid %d %s (waits: %s %s) for %s: %s\n", pid, state, wt, we, age, strings.Join(strings.Fields(q), " "))
		}
	}
	return b.String()
}
