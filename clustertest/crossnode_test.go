package clustertest

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit/internal/ids"
)

// pair starts two nodes on one database.
func pair(t *testing.T) (a, b *node) {
	url := postgres(t)
	return start(t, "A", url), start(t, "B", url)
}

// runningElsewhere submits a job of taskID through a (b is the other node), waits until it runs,
// and returns the job and the node that does not run it (the one the test
// then drives it through), so the job's node is read from its record.
func runningElsewhere(t *testing.T, a, b *node, taskID string) (id string, owner, other *node) {
	t.Helper()
	id = a.execute(taskID)
	j := a.waitJob(id, 10*time.Second, func(j jobRec) bool { return j.Status == "running" })
	switch j.node() {
	case a.id:
		return id, a, b
	case b.id:
		return id, b, a
	}
	t.Fatalf("job %s runs on %q, neither A (%s) nor B (%s)", id, j.node(), a.id, b.id)
	return
}

// TestCancelReachesOtherNode cancels, through one node, a shell job running
// on the other, ten times: $cancel must answer canceled within 1 s (p50 and
// max logged; any answer over 1.5 s fails), and the job's processes must be
// gone.
func TestCancelReachesOtherNode(t *testing.T) {
	a, b := pair(t)
	marker := "cancel-" + strings.ToLower(ids.New())
	killMarked(t, marker)
	taskID := a.task("sleep 30", 0, marker)
	var took []time.Duration
	var rounds []string
	for round := range 10 {
		via, peer := a, b
		if round%2 == 1 {
			via, peer = b, a
		}
		id, owner, other := runningElsewhere(t, via, peer, taskID)
		if !eventually(5*time.Second, func() bool { return groups(procsWith(marker)) == 1 }) {
			t.Fatalf("round %d: the job's shell never showed up", round)
		}
		began := time.Now()
		var j jobRec
		other.call("POST", "/api/v1/jobs/"+id+"/$cancel", nil, 200, &j)
		d := time.Since(began)
		took = append(took, d)
		rounds = append(rounds, fmt.Sprintf("on %s via %s %s", owner.name, other.name, d.Round(time.Millisecond)))
		if j.Status != "canceled" {
			t.Fatalf("round %d: $cancel via %s of a job on %s answered %s after %s, want canceled\n%s",
				round, other.name, owner.name, j.Status, d, tails(a, b))
		}
		if d > 1500*time.Millisecond {
			t.Errorf("round %d: $cancel via %s of a job on %s took %s (want ≤ 1 s)", round, other.name, owner.name, d)
		}
		if !eventually(2*time.Second, func() bool { return len(procsWith(marker)) == 0 }) {
			t.Fatalf("round %d: the canceled job's processes still run: %v", round, procsWith(marker))
		}
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	t.Logf("cross-node $cancel over %d rounds: p50 %s, max %s (%s)", len(took),
		sorted[len(sorted)/2].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond), strings.Join(rounds, ", "))
}

// TestStreamFromOtherNode opens $stream on the node that does not run the
// job: it must show the job's log lines as they come and its terminal
// status, then close.
func TestStreamFromOtherNode(t *testing.T) {
	a, b := pair(t)
	// The first line waits until the test's stream is open, so the lines
	// are seen live rather than replayed.
	gate := t.TempDir() + "/open"
	taskID := a.task(fmt.Sprintf(`while [ ! -e '%s' ]; do sleep 0.05; done; for i in 1 2 3 4 5; do echo line-$i; sleep 0.2; done`, gate), 0, "")
	id, owner, other := runningElsewhere(t, a, b, taskID)
	s := other.openStream(t, id, 20*time.Second)
	var lines, statuses []string
	opened := false
	for {
		e, ok, timedOut := s.next(10 * time.Second)
		if timedOut {
			t.Fatalf("stream via %s of a job on %s: no event for 10 s; got lines %v, statuses %v\n%s",
				other.name, owner.name, lines, statuses, tails(a, b))
		}
		if !ok {
			break
		}
		switch e.Kind {
		case "log":
			var l struct{ Line string }
			json.Unmarshal([]byte(e.Data), &l)
			lines = append(lines, l.Line)
		case "status":
			var st struct{ Status string }
			json.Unmarshal([]byte(e.Data), &st)
			statuses = append(statuses, st.Status)
			if st.Status == "running" && !opened {
				opened = true
				touch(t, gate)
			}
		}
	}
	if want := []string{"line-1", "line-2", "line-3", "line-4", "line-5"}; !slices.Equal(lines, want) {
		t.Errorf("stream via %s of a job on %s: lines %v, want %v", other.name, owner.name, lines, want)
	}
	if want := []string{"pending", "running", "completed"}; !slices.Equal(statuses, want) {
		t.Errorf("stream via %s of a job on %s: statuses %v, want %v", other.name, owner.name, statuses, want)
	}
}

// TestDeleteFromOtherNode deletes, through one node, a shell job running on
// the other, while a $stream of it is open on the deleting node: DELETE
// must answer 204 (never 500), the stream must end with a status event
// saying "deleted", and the job must be gone from both nodes.
func TestDeleteFromOtherNode(t *testing.T) {
	a, b := pair(t)
	marker := "delete-" + strings.ToLower(ids.New())
	killMarked(t, marker)
	taskID := a.task("echo started; sleep 30", 0, marker)
	id, owner, other := runningElsewhere(t, a, b, taskID)
	s := other.openStream(t, id, 20*time.Second)
	// Wait until the stream is live: it has shown the job running.
	for {
		e, ok, timedOut := s.next(10 * time.Second)
		if !ok || timedOut {
			t.Fatalf("stream via %s ended or went quiet before the job ran", other.name)
		}
		if e.Kind == "status" && strings.Contains(e.Data, `"status":"running"`) {
			break
		}
	}
	began := time.Now()
	code, body := other.do("DELETE", "/api/v1/jobs/"+id, nil)
	d := time.Since(began)
	if code != 204 {
		t.Fatalf("DELETE via %s of a job running on %s: %d after %s: %s\n%s", other.name, owner.name, code, d, body, tails(a, b))
	}
	t.Logf("DELETE via %s of a job running on %s: 204 after %s", other.name, owner.name, d.Round(time.Millisecond))
	var last sseEvent
	for {
		e, ok, timedOut := s.next(5 * time.Second)
		if timedOut {
			t.Fatalf("stream via %s did not end within 5 s of the DELETE (last event %+v)", other.name, last)
		}
		if !ok {
			break
		}
		last = e
	}
	if last.Kind != "status" || !strings.Contains(last.Data, `"deleted"`) {
		t.Errorf("stream via %s ended with %+v, want event: status with \"deleted\"", other.name, last)
	}
	for _, n := range []*node{a, b} {
		if code, _ := n.do("GET", "/api/v1/jobs/"+id, nil); code != 404 {
			t.Errorf("GET via %s of the deleted job: %d, want 404", n.name, code)
		}
	}
	if !eventually(2*time.Second, func() bool { return len(procsWith(marker)) == 0 }) {
		t.Errorf("the deleted job's processes still run: %v", procsWith(marker))
	}
}

// touch creates an empty file.
func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}
