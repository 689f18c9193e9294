package clustertest

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestThousandJobsRunOnceAcrossNodes submits 1,000 shell jobs round-robin
// through the APIs of three nodes on one database, from a few concurrent
// submitters. Each job appends "$SERVICEKIT_JOB_ID $SERVICEKIT_NODE" to one
// file (one short line per echo: appends under PIPE_BUF are atomic). Every
// job must end completed on its first attempt, every job id must appear in
// the file exactly once (no job lost, none run twice), the node each line
// names must be the node its record names, and more than one node must
// have run jobs.
func TestThousandJobsRunOnceAcrossNodes(t *testing.T) {
	const jobs, submitters = 1000, 4
	url := postgres(t)
	nodes := []*node{start(t, "A", url), start(t, "B", url), start(t, "C", url)}
	out := filepath.Join(t.TempDir(), "ran.txt")
	taskID := nodes[0].task(fmt.Sprintf(`echo "$SERVICEKIT_JOB_ID $SERVICEKIT_NODE" >> '%s'`, out), 0, "")

	began := time.Now()
	ids := make([]string, jobs)
	submittedVia := make([]int, jobs)
	var wg sync.WaitGroup
	for s := range submitters {
		wg.Go(func() {
			for i := s; i < jobs; i += submitters {
				submittedVia[i] = i % len(nodes)
				id, err := nodes[i%len(nodes)].submit(taskID)
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	submitted := time.Since(began)

	// Wait until all are finished: the count of completed jobs of the task.
	var done int
	ok := eventually(90*time.Second, func() bool {
		var page struct{ Total int }
		nodes[1].call("GET", "/api/v1/jobs?task_id="+taskID+"&status=completed&page=1&size=1", nil, 200, &page)
		done = page.Total
		return done == jobs
	})
	if !ok {
		t.Fatalf("%d of %d jobs completed after 90 s\n%s", done, jobs, tails(nodes...))
	}
	elapsed := time.Since(began)

	// The side effects: one line per job, naming the node that ran it.
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ranOn := map[string]string{}
	seen := map[string]int{}
	for line := range strings.Lines(string(data)) {
		id, nodeID, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || id == "" || nodeID == "" {
			t.Errorf("malformed side-effect line %q", line)
			continue
		}
		seen[id]++
		ranOn[id] = nodeID
	}
	spread := map[string]int{}
	for i, id := range ids {
		switch seen[id] {
		case 1:
		case 0:
			t.Errorf("job %s (submitted via %s) completed but never ran", id, nodes[submittedVia[i]].name)
		default:
			t.Errorf("job %s ran %d times", id, seen[id])
		}
		delete(seen, id)
		j := nodes[(i+1)%len(nodes)].job(id)
		if j.Status != "completed" || j.Attempt != 1 {
			t.Errorf("job %s: status %s attempt %d, want completed on attempt 1", id, j.Status, j.Attempt)
		}
		if j.node() != ranOn[id] {
			t.Errorf("job %s: record says node %q, its process saw SERVICEKIT_NODE=%q", id, j.node(), ranOn[id])
		}
		spread[ranOn[id]]++
	}
	for id, n := range seen {
		t.Errorf("a job %s that nobody submitted ran %d times", id, n)
	}

	names := map[string]string{}
	for _, n := range nodes {
		names[n.id] = n.name
	}
	var parts []string
	for id, c := range spread {
		parts = append(parts, fmt.Sprintf("%s (%s): %d", names[id], id, c))
	}
	sort.Strings(parts)
	t.Logf("%d jobs submitted in %s, all completed after %s (%.0f jobs/s); ran on: %s",
		jobs, submitted.Round(time.Millisecond), elapsed.Round(time.Millisecond),
		float64(jobs)/elapsed.Seconds(), strings.Join(parts, ", "))
	if len(spread) < 2 {
		t.Errorf("all jobs ran on one node: %v", parts)
	}
	for id := range spread {
		if names[id] == "" {
			t.Errorf("jobs ran on %q, which is none of the three nodes", id)
		}
	}
}
