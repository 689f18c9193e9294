package faulttest

// The storage under the server goes wrong: the SQLite file is deleted or
// replaced while it serves, the disk fills up and frees again.

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the test's own reads of the file, as a backup tool would
)

// writeAttempts are the writes tried against a broken database: each must
// be refused with 503 unavailable and Retry-After, none acknowledged.
func writeAttempts(taskID string) []struct {
	method, path string
	body         any
} {
	return []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/v1/tasks/" + taskID + "/$execute", nil},
		{"POST", "/api/v1/tasks", shellBody("echo written", 0)},
		{"PATCH", "/api/v1/tasks/" + taskID, map[string]any{"retries": 1}},
		{"POST", "/api/v1/artifacts", map[string]any{"data": map[string]any{"k": "v"}}},
	}
}

// TestDatabaseFileGone is the row "the SQLite file is deleted (or
// replaced) while serving": /health said 503, yet $execute answered 202
// and task create 201, and after a restart none of them existed. Every
// write must now answer 503 unavailable with Retry-After, the log must
// say which file is gone, and whatever was acknowledged must be in the
// file a restarted server opens.
func TestDatabaseFileGone(t *testing.T) {
	for _, how := range []string{"deleted", "replaced"} {
		t.Run(how, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "fault.db")
			s := start(t, config{db: sqliteIn(dir)})
			taskID := s.shellTask("true", 0)
			before := s.execute(taskID, nil)
			s.waitEnd(before, endWithin)

			switch how {
			case "deleted":
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
			case "replaced":
				// As an operator restoring a backup would: a consistent copy
				// renamed over the file, the stale WAL and index removed.
				backup(t, path, path+".copy")
				if err := os.Rename(path+".copy", path); err != nil {
					t.Fatal(err)
				}
				os.Remove(path + "-wal")
				os.Remove(path + "-shm")
			}

			var acked []string
			tried, refused := 0, 0
			for round := range 10 {
				for _, w := range writeAttempts(taskID) {
					if round >= 5 && w.method != "POST" {
						continue
					}
					r := s.do(w.method, w.path, w.body)
					tried++
					switch {
					case r.status == 503 && r.problemType() == "urn:servicekit:error:unavailable" && r.header.Get("Retry-After") != "":
						refused++
					case r.status < 300:
						var a struct{ ID, JobID string }
						if json.Unmarshal(r.body, &a) == nil {
							acked = append(acked, w.method+" "+w.path+" → "+a.ID+a.JobID)
						}
						t.Errorf("%s %s on a %s file: %s (acknowledged)", w.method, w.path, how, r)
					default:
						t.Errorf("%s %s on a %s file: %s, want 503 unavailable with Retry-After", w.method, w.path, how, r)
					}
				}
			}
			h := s.do("GET", "/health", nil)
			if h.status != 503 && !strings.Contains(string(h.body), `"degraded"`) {
				t.Errorf("/health on a %s file: %s", how, h)
			}
			if logs := s.logs.String(); !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, path) {
				t.Errorf("the log does not name the lost file %s at level ERROR:\n%s", path, s.tail())
			}

			// A restart opens what is at the path now: the copy, or a new
			// file. The job stored before the break is in the copy.
			s = s.restart()
			if how == "replaced" {
				if j := s.job(before); j.Status != "completed" {
					t.Errorf("the job stored before the replacement is %s in the copy", j.Status)
				}
			}
			figures(t, "%d writes tried on a %s file: %d refused with 503 + Retry-After, %d acknowledged", tried, how, refused, len(acked))
		})
	}
}

// backup makes a consistent copy of the SQLite file at path (VACUUM INTO
// reads through the WAL), as `sqlite3 path ".backup copy"` would.
func backup(t *testing.T, path, copy string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("VACUUM INTO ?", copy); err != nil {
		t.Fatalf("copy %s: %v", path, err)
	}
}

// mountTmpfs mounts a tmpfs of size at dir, unmounted at the end. It
// needs root (the CI runs as root); elsewhere the test skips, saying so.
func mountTmpfs(t *testing.T, dir, size string) {
	t.Helper()
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("a full disk needs a small tmpfs, and mounting one failed (run as root): %v %s", err, strings.TrimSpace(string(out)))
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// fill writes a file at path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			return
		}
	}
}

// TestDiskFull is the row "the disk fills up" and the disk that fills and
// then frees: writes used to answer 500 internal, /health stayed healthy,
// and jobs whose end could not be stored stayed running until a restart.
// On a 16 MiB tmpfs filled to the last byte, every write must be refused
// with 503 unavailable and Retry-After (never 500), /health degraded; a
// job that ends while the disk is full must end (completed, or failed by
// a rescue) once space is back, never stay running; every job acknowledged
// with 202 must be in the file and run; and the service must work again.
func TestDiskFull(t *testing.T) {
	dir := t.TempDir()
	mountTmpfs(t, dir, "16m")
	s := start(t, config{db: sqliteIn(dir), args: []string{"--max-concurrency", "4"}})
	release := filepath.Join(t.TempDir(), "release") // off the tmpfs
	waiter := s.shellTask(`while [ ! -e `+release+` ]; do sleep 0.05; done; echo finished $SERVICEKIT_JOB_ID`, 0)
	quick := s.shellTask("echo $SERVICEKIT_JOB_ID", 0)
	slow := s.shellTask("sleep 0.5; echo $SERVICEKIT_JOB_ID", 0)
	big := map[string]any{"env": map[string]string{"PAD": strings.Repeat("x", 8000)}}

	var accepted []string
	var running []string
	for range 2 {
		running = append(running, s.execute(waiter, nil))
	}
	for _, id := range running {
		s.waitJob(id, endWithin, func(j jobRec) bool { return j.Status == "running" })
	}
	filler := filepath.Join(dir, "filler")
	fill(t, filler)

	var fullStart time.Time
	t.Run("while_full", func(t *testing.T) {
		s := s.in(t)
		fullStart = time.Now()
		// The jobs end now, on a full disk: their end cannot be stored.
		touch(t, release)
		for _, id := range running {
			if left := survivors(id, endWithin); len(left) > 0 {
				t.Fatalf("job %s did not end when released: %v", id, left)
			}
		}
		// The disk stays full for three leases (their renewals fail too)
		// while a client keeps writing.
		tried, refused, errors500 := 0, 0, 0
		for time.Since(fullStart) < 3*lease {
			var r reply
			if tried%4 == 3 {
				r = s.do("POST", "/api/v1/tasks", shellBody("echo "+strings.Repeat("y", 8000), 0))
			} else {
				r = s.do("POST", "/api/v1/tasks/"+quick+"/$execute", big)
			}
			tried++
			switch {
			case r.status == 202:
				var a struct {
					JobID string `json:"job_id"`
				}
				json.Unmarshal(r.body, &a)
				accepted = append(accepted, a.JobID) // stored before the disk was quite full
			case r.status == 201:
			case r.status == 503:
				if r.problemType() != "urn:servicekit:error:unavailable" || r.header.Get("Retry-After") == "" {
					t.Errorf("a write on a full disk: %s %v, want 503 unavailable with Retry-After", r, r.header)
				}
				refused++
			default:
				if r.status == 500 {
					errors500++
				}
				t.Errorf("a write on a full disk: %s, want 503", r)
			}
			time.Sleep(20 * time.Millisecond) // the client's pace, not a wait for a condition
		}
		if refused == 0 {
			t.Fatalf("the disk never filled up: %d writes, %d accepted", tried, len(accepted))
		}
		h := s.do("GET", "/health", nil)
		if strings.Contains(string(h.body), `"status":"healthy"`) {
			t.Errorf("/health healthy while writes fail: %s", h)
		}
		stuck := 0
		for _, id := range running {
			if s.job(id).Status == "running" {
				stuck++ // expected: the end is not stored yet
			}
		}
		figures(t, "%d writes in %s on a full 16 MiB tmpfs: %d refused with 503 + Retry-After, %d accepted (stored before it was full), %d answered 500; /health %d %s; %d of the 2 jobs that ended meanwhile still shown running",
			tried, time.Since(fullStart).Round(time.Millisecond), refused, len(accepted), errors500, h.status, status(h), stuck)
	})

	t.Run("freed", func(t *testing.T) {
		s := s.in(t)
		os.Remove(filler)
		freed := time.Now()
		var last string
		if !eventually(20*time.Second, func() bool {
			id, _, err := s.submit(quick)
			last = id
			return err == nil
		}) {
			t.Fatalf("$execute still refused 20 s after space was freed\n%s", s.tail())
		}
		accepted = append(accepted, last)
		// Jobs that take a moment, submitted as soon as the disk is back:
		// they must run as any other, whatever the leases went through
		// while the disk was full.
		for range 3 {
			accepted = append(accepted, s.execute(slow, nil))
		}
		// The jobs that ended during the full disk: their end is stored
		// once it can be, or a rescue ends them after their lease.
		for _, id := range running {
			j := s.waitEnd(id, 10*lease+endWithin)
			if j.Status == "running" {
				t.Errorf("job %s stuck running", id)
			}
		}
		after := map[string]int{}
		for _, id := range accepted {
			j := s.waitEnd(id, endWithin)
			after[j.Status]++
			if j.Status != "completed" {
				t.Errorf("job %s accepted around the full disk ended %s (%s)", id, j.Status, j.err())
			}
		}
		if !eventually(10*time.Second, func() bool {
			return strings.Contains(string(s.do("GET", "/health", nil).body), `"status":"healthy"`)
		}) {
			t.Errorf("/health after space came back: %s", s.do("GET", "/health", nil))
		}
		if n := s.countJobs("running"); n != 0 {
			t.Errorf("%d jobs running after the disk freed", n)
		}
		// Nothing acknowledged is missing from the file: a SIGKILL and a
		// restart find every accepted job.
		s = s.restart()
		for _, id := range accepted {
			if r := s.do("GET", "/api/v1/jobs/"+id, nil); r.status != 200 {
				t.Errorf("job %s, acknowledged with 202, after a restart: %s", id, r)
			}
		}
		states := map[string]int{}
		for _, id := range running {
			states[s.job(id).Status]++
		}
		figures(t, "disk full for %s; after freeing, writes accepted again; the %d jobs accepted ended %v, all found after a restart; the 2 jobs that ended while full: %v; %s after the space came back",
			freed.Sub(fullStart).Round(time.Millisecond), len(accepted), after, states, time.Since(freed).Round(time.Millisecond))
	})
}
