package clustertest

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/servicekit/servicekit/internal/ids"
)

// TestKilledNodesJobsAreRescued kills a node with SIGKILL while it runs
// shell jobs (sleep 30): the other nodes must rescue each of them once its
// lease expires. Without retries a job ends failed with an error naming the
// dead node; with one retry it completes on attempt 2 on another node. The
// survivors' node registry drops the dead node after its lease.
//
// Attempt 2 skips the sleep ($SERVICEKIT_JOB_ATTEMPT > 1), so the test
// measures the rescue, not 30 s of sleeping.
func TestKilledNodesJobsAreRescued(t *testing.T) {
	url := postgres(t)
	marker := "rescue-" + strings.ToLower(ids.New())
	killMarked(t, marker)
	// A runs alone at first, so every job submitted now runs on A.
	a := start(t, "A", url, "--max-concurrency", "4")
	cmd := `echo attempt $SERVICEKIT_JOB_ATTEMPT on $SERVICEKIT_NODE; [ "$SERVICEKIT_JOB_ATTEMPT" -gt 1 ] || sleep 30`
	once, retried := a.task(cmd, 0, marker), a.task(cmd, 1, marker)
	victims := map[string]int{} // job id → retries
	for range 2 {
		victims[a.execute(once)] = 0
		victims[a.execute(retried)] = 1
	}
	for id := range victims {
		if j := a.waitJob(id, 10*time.Second, func(j jobRec) bool { return j.Status == "running" }); j.node() != a.id {
			t.Fatalf("job %s runs on %q, want A (%s)", id, j.node(), a.id)
		}
	}
	if !eventually(10*time.Second, func() bool { return groups(procsWith(marker)) == len(victims) }) {
		t.Fatalf("want the process groups of %d shell jobs, found processes %v", len(victims), procsWith(marker))
	}
	b, c := start(t, "B", url), start(t, "C", url)
	if got := liveNodes(b); len(got) != 3 {
		t.Fatalf("B lists live nodes %v, want A, B and C", got)
	}

	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.exited
	killed := time.Now()

	// Poll every victim through B until it left A: rescued.
	rescuedAfter := map[string]time.Duration{}
	deadline := killed.Add(3 * lease)
	for len(rescuedAfter) < len(victims) {
		for id := range victims {
			if _, ok := rescuedAfter[id]; ok {
				continue
			}
			if j := b.job(id); j.Status != "running" || j.Attempt > 1 {
				rescuedAfter[id] = time.Since(killed)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s only %d of %d jobs of the dead node were rescued\n%s", 3*lease, len(rescuedAfter), len(victims), tails(b, c))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var times []time.Duration
	for _, d := range rescuedAfter {
		times = append(times, d)
	}
	slices.Sort(times)
	t.Logf("SIGKILL → rescue (lease %s): first %s, last %s", lease, times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond))

	for id, retries := range victims {
		j := b.waitJob(id, 20*time.Second, jobRec.terminal)
		switch retries {
		case 0:
			if j.Status != "failed" || j.Error == nil || !strings.Contains(*j.Error, a.id) {
				t.Errorf("job %s without retries: %s, error %v; want failed with an error naming %s", id, j.Status, deref(j.Error), a.id)
			}
		case 1:
			if j.Status != "completed" || j.Attempt != 2 || j.node() == a.id || j.node() == "" {
				t.Errorf("job %s with a retry: %s on attempt %d on %q; want completed on attempt 2 on B or C", id, j.Status, j.Attempt, j.node())
			}
		}
		checkRescuedOnce(t, b, id, retries)
	}

	var left []proc
	for _, p := range procsWith(marker) {
		if p.attempt == "1" {
			left = append(left, p)
		}
	}
	t.Logf("%d processes of attempt 1 outlived the dead node (TestKilledNodesProcessesDoNotRunBesideRescue)", len(left))

	// The dead node leaves the registry once its heartbeat is older than its lease.
	var got []string
	if !eventually(2*lease, func() bool { got = liveNodes(c); return len(got) == 2 }) {
		t.Fatalf("C still lists live nodes %v %s after the kill", got, time.Since(killed).Round(time.Millisecond))
	}
	t.Logf("the dead node left the live nodes %s after the kill", time.Since(killed).Round(time.Millisecond))
	if slices.Contains(got, a.id) || !slices.Contains(got, b.id) || !slices.Contains(got, c.id) {
		t.Errorf("C lists live nodes %v, want B (%s) and C (%s)", got, b.id, c.id)
	}
}

// checkRescuedOnce reads the job's whole event history (a $stream of a
// finished job replays it and closes) and checks the rescue happened once:
// pending, running, then failed; or pending, running, pending, running,
// completed with a retry.
func checkRescuedOnce(t *testing.T, n *node, id string, retries int) {
	t.Helper()
	s := n.openStream(t, id, 10*time.Second)
	var statuses []string
	for e := range s.Events {
		if e.Kind != "status" {
			continue
		}
		var st struct{ Status string }
		json.Unmarshal([]byte(e.Data), &st)
		statuses = append(statuses, st.Status)
	}
	want := []string{"pending", "running", "failed"}
	if retries > 0 {
		want = []string{"pending", "running", "pending", "running", "completed"}
	}
	if !slices.Equal(statuses, want) {
		t.Errorf("job %s went through %v, want %v", id, statuses, want)
	}
}

// liveNodes is the ids of the live nodes n lists in /api/v1/system.
func liveNodes(n *node) []string {
	var out []string
	for _, l := range n.system().Nodes {
		out = append(out, l.ID)
	}
	return out
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}

// TestKilledNodesProcessesDoNotRunBesideRescue kills with SIGKILL a node
// whose shell job (one retry) appends "attempt timestamp" to a file every
// 100 ms. Another node rescues the job and runs attempt 2; the processes of
// attempt 1 must not go on writing beside it. A cut-off node fences itself
// (TestCutOffNodeStopsBeforeRescue), but a killed node cannot: its job's
// process group, started with Setpgid, outlives the server unless something
// ends it: the shell package's containment (a supervisor per job that
// kills the job's processes when its server dies). The loop runs in the
// job's own shell, and in a child process of that shell (as a script the
// command line starts would): both must end.
func TestKilledNodesProcessesDoNotRunBesideRescue(t *testing.T) {
	loop := `while true; do echo "$SERVICEKIT_JOB_ATTEMPT $(date +%%s%%N)" >> '%s'; sleep 0.1; done`
	for _, c := range []struct{ name, cmd string }{
		{"shell", loop},
		{"grandchild", `sh -c '` + strings.ReplaceAll(loop, "'", `'"'"'`) + `'; echo the loop ended`},
	} {
		t.Run(c.name, func(t *testing.T) { testKilledNodesProcesses(t, c.cmd) })
	}
}

func testKilledNodesProcesses(t *testing.T, cmdFormat string) {
	url := postgres(t)
	marker := "killed-" + strings.ToLower(ids.New())
	killMarked(t, marker)
	beats := filepath.Join(t.TempDir(), "beats.txt")
	a := start(t, "A", url)
	id := a.execute(a.task(fmt.Sprintf(cmdFormat, beats), 1, marker))
	a.waitJob(id, 10*time.Second, func(j jobRec) bool { return j.Status == "running" })
	b := start(t, "B", url)
	if !eventually(5*time.Second, func() bool { return countAttempt(t, beats, "1") >= 3 }) {
		t.Fatalf("attempt 1 does not beat\n%s", a.tail())
	}
	a.kill()
	killed := time.Now()
	b.waitJob(id, 4*lease, func(j jobRec) bool { return j.Attempt == 2 && j.Status == "running" })
	if !eventually(5*time.Second, func() bool { return countAttempt(t, beats, "2") >= 5 }) {
		t.Fatalf("attempt 2 does not beat\n%s", b.tail())
	}
	left := procsOfAttempt(marker, "1")
	var end jobRec
	b.call("POST", "/api/v1/jobs/"+id+"/$cancel", nil, 200, &end)
	last1, first2 := lastAndFirst(t, beats)
	t.Logf("SIGKILL: attempt 1 last beat %s after the kill, attempt 2 first beat %s after it",
		last1.Sub(killed).Round(time.Millisecond), first2.Sub(killed).Round(time.Millisecond))
	if !last1.Before(first2) {
		t.Errorf("attempt 1 of the killed node was still writing %s after attempt 2 began on B, when the test stopped looking: the job ran twice at once",
			last1.Sub(first2).Round(time.Millisecond))
	}
	if len(left) > 0 {
		t.Errorf("processes of attempt 1 outlived the killed node and ran beside attempt 2: %v", left)
	}
}
