package clustertest

import (
	"fmt"
	"os"
	"path/filepath"
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
	if !strings.Contains(a.logs.String(), "cannot renew job leases") {
		t.Errorf("node A never logged that it fenced itself\n%s", a.tail())
	}
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
