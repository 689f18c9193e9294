package faulttest

// The server is SIGKILLed: at random under load, and at the moment a job
// ends. Nothing accepted may be lost, nothing run twice without retries,
// nothing left running.

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRandomSIGKILLsUnderLoad kills the server with SIGKILL ten times at
// random moments while four clients submit shell jobs as fast as they
// are answered, restarting it each time on the same SQLite file. Each job
// appends its $SERVICEKIT_JOB_ID to a file, so what ran is counted from
// what really happened. Every job acknowledged with 202 must be found
// after the last restart and end; with retries 0 none may have run twice.
func TestRandomSIGKILLsUnderLoad(t *testing.T) {
	for _, retries := range []int{0, 2} {
		t.Run(fmt.Sprintf("retries_%d", retries), func(t *testing.T) { chaos(t, retries) })
	}
}

func chaos(t *testing.T, retries int) {
	const kills, clients = 10, 4
	seed := uint64(time.Now().UnixNano())
	rnd := rand.New(rand.NewPCG(seed, 0))
	dir := t.TempDir()
	ran := filepath.Join(dir, "ran")
	// --max-pending bounds the backlog, so the jobs accepted drain in
	// seconds after the last restart; the clients back off on 429.
	s := start(t, config{db: sqliteIn(dir), args: []string{"--max-concurrency", "8", "--max-pending", "100"}})
	taskID := s.shellTask(`echo "$SERVICEKIT_JOB_ID $SERVICEKIT_JOB_ATTEMPT" >> `+ran+`; sleep 0.05`, retries)

	// The clients submit to the current server; when it is gone they
	// wait for the next one.
	var mu sync.Mutex
	changed := sync.NewCond(&mu)
	cur, gen, done := s, 0, false
	accepted := map[string]bool{}
	refused, downtimeErrors := 0, 0
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				mu.Lock()
				srv, g, stop := cur, gen, done
				mu.Unlock()
				if stop {
					return
				}
				id, r, err := srv.submit(taskID)
				mu.Lock()
				switch {
				case err == nil:
					accepted[id] = true
				case r.status == 429 || r.status == 503:
					refused++
					mu.Unlock()
					time.Sleep(20 * time.Millisecond) // the client's back-off, as Retry-After asks
					continue
				case r.status != 0:
					t.Errorf("$execute under load: %s", r)
				default: // the server is gone: wait for the next
					downtimeErrors++
					for gen == g && !done {
						changed.Wait()
					}
				}
				mu.Unlock()
			}
		})
	}
	for k := range kills {
		// Load for a random while, then the kill: where it lands in the
		// life of the running jobs is the point of the test.
		time.Sleep(time.Duration(200+rnd.IntN(1000)) * time.Millisecond)
		s.kill()
		s = s.restart()
		mu.Lock()
		cur, gen = s, gen+1
		changed.Broadcast()
		n := len(accepted)
		mu.Unlock()
		t.Logf("kill %d: %d jobs accepted so far", k+1, n)
	}
	time.Sleep(500 * time.Millisecond) // a last stretch of load after the tenth restart
	mu.Lock()
	done = true
	changed.Broadcast()
	mu.Unlock()
	wg.Wait()

	// Everything accepted ends: pending ones run, the killed ones' leases
	// expire and they are rescued (failed, or retried).
	if !eventually(120*time.Second, func() bool { return s.countJobs("pending")+s.countJobs("running") == 0 }) {
		t.Fatalf("%d pending and %d running jobs 120 s after the last restart\n%s", s.countJobs("pending"), s.countJobs("running"), s.tail())
	}
	all := s.allJobs()
	runs := countRuns(t, ran)
	lost, twice, completedUnrun := 0, 0, 0
	states := map[string]int{}
	for id := range accepted {
		j, ok := all[id]
		if !ok {
			lost++
			t.Errorf("job %s was accepted (202) and is not in the database", id)
			continue
		}
		states[j.Status]++
		if !j.terminal() {
			t.Errorf("job %s is %s", id, j.Status)
		}
		if runs[id] > 1 {
			twice++
			if retries == 0 {
				t.Errorf("job %s with retries 0 ran %d times", id, runs[id])
			}
		}
		if j.Status == "completed" && runs[id] == 0 {
			completedUnrun++
			t.Errorf("job %s is completed and never ran", id)
		}
	}
	unacked := 0
	for id := range runs {
		if !accepted[id] {
			unacked++ // stored and run, but the 202 was lost with the server
		}
	}
	figures(t, "seed %d; %d SIGKILLs under %d clients; %d jobs accepted (202), %d refused (429/503), %d requests hit a dead server; lost %d; final states %v; run more than once %d; completed but never run %d; run but never acknowledged %d",
		seed, kills, clients, len(accepted), refused, downtimeErrors, lost, states, twice, completedUnrun, unacked)
}

// countRuns reads the file the jobs append to: job id → lines.
func countRuns(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runs := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if id, _, ok := strings.Cut(sc.Text(), " "); ok {
			runs[id]++
		}
	}
	return runs
}

// TestCrashDuringFinish kills the server right after a job's process has
// exited, while the server is collecting its output and storing its end,
// with several delays and output sizes. After the restart the job must
// end completed (its end was stored) or failed (it was not, and the rescue
// says so), never stay running; a completed one has its exit code and artifact.
func TestCrashDuringFinish(t *testing.T) {
	dir := t.TempDir()
	srv := start(t, config{db: sqliteIn(dir)})
	states := map[string]int{}
	cases := 0
	for _, size := range []int{0, 64 << 10, 1 << 20, 4 << 20} {
		for _, delay := range []time.Duration{0, 500 * time.Microsecond, 2 * time.Millisecond, 10 * time.Millisecond} {
			name := fmt.Sprintf("out_%dKiB/kill_%s_after_exit", size>>10, delay)
			t.Run(name, func(t *testing.T) {
				s := srv.in(t)
				cases++
				gate := filepath.Join(t.TempDir(), "gate")
				command := fmt.Sprintf(`while [ ! -e %s ]; do sleep 0.01; done; head -c %d /dev/zero | tr '\0' x`, gate, size)
				id := s.execute(s.shellTask(command, 0), nil)
				shell := jobShell(t, id, command).pid
				touch(t, gate)
				deadline := time.Now().Add(readyWithin)
				for !exited(shell) { // as tight as it gets: the window is milliseconds
					if time.Now().After(deadline) {
						t.Fatalf("the job's shell %d did not exit", shell)
					}
				}
				time.Sleep(delay) // the point in the finish at which the server dies
				srv = s.restart()
				s = srv
				j := s.waitEnd(id, 3*lease+endWithin)
				states[j.Status]++
				switch j.Status {
				case "completed":
					if j.ExitCode == nil || *j.ExitCode != 0 || j.ArtifactID == nil {
						t.Errorf("completed without its exit code or artifact: %+v", j)
					}
				case "failed":
				default:
					t.Errorf("job ended %s (%s), want completed (its end was stored) or failed (rescued)", j.Status, j.err())
				}
			})
		}
	}
	figures(t, "%d kills right after a job's process exited (outputs 0 B to 4 MiB, 0 to 10 ms after): ended %v, none stuck running", cases, states)
}
