package faulttest

// A job refused by the shell policy at start, and the example's file
// functions confined to their data directory.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPolicyRefusedAtStart is the row "a job refused by the shell policy
// at start": it was retried through all its attempts. A job accepted
// under --shell any waits pending while the server is restarted with a
// stricter policy; when it comes to start, it must fail at once, on its
// first attempt, without running, though it has retries left.
func TestPolicyRefusedAtStart(t *testing.T) {
	for _, policy := range [][]string{{"--shell", "allowlist", "--shell-allow", "echo"}, {"--shell", "off"}} {
		t.Run(policy[1], func(t *testing.T) {
			db := sqliteIn(t.TempDir())
			ran := filepath.Join(t.TempDir(), "ran")
			s := start(t, config{db: db, args: []string{"--max-concurrency", "1", "--shell", "any"}})
			blocker := s.execute(s.shellTask("sleep 120", 0), nil)
			s.waitJob(blocker, endWithin, func(j jobRec) bool { return j.Status == "running" })
			target := s.execute(s.shellTask("touch "+ran, 3), nil)
			if j := s.job(target); j.Status != "pending" {
				t.Fatalf("the job behind the blocker is %s", j.Status)
			}
			s.kill()
			s = start(t, config{db: db, args: append([]string{"--max-concurrency", "1"}, policy...)})
			j := s.waitEnd(target, 60*time.Second)
			if j.Status != "failed" || j.Attempt != 1 {
				t.Errorf("the refused job ended %s at attempt %d of %d (%s), want failed at attempt 1", j.Status, j.Attempt, j.MaxAttempts, j.err())
			}
			if !strings.Contains(strings.ToLower(j.err()), "polic") && !strings.Contains(strings.ToLower(j.err()), "shell") {
				t.Errorf("the refused job's error does not name the policy: %q", j.err())
			}
			if _, err := os.Stat(ran); err == nil {
				t.Errorf("the refused command ran")
			}
			figures(t, "a job with 3 retries refused by --shell %s at start: %s at attempt %d of %d: %q", policy[1], j.Status, j.Attempt, j.MaxAttempts, j.err())
		})
	}
}

// TestExampleCSVConfined is the row "the example process_csv(filepath)":
// it read any file the server could, e.g. /etc/shadow's first line. The
// example's file functions must read only their data directory
// (TASK_DATA_DIR): absolute paths, .. and symbolic links leading out all
// fail the job, and nothing of the file outside shows up anywhere.
func TestExampleCSVConfined(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	os.Mkdir(data, 0o755)
	os.WriteFile(filepath.Join(data, "scores.csv"), []byte("name,score\nalice,3\nbob,5\n"), 0o644)
	secret := filepath.Join(root, "secret.csv")
	os.WriteFile(secret, []byte("SECRETCOLUMN,TOPSECRET\n1,2\n"), 0o600)
	os.Symlink(secret, filepath.Join(data, "link.csv"))
	os.Symlink(root, filepath.Join(data, "up"))
	os.Symlink("/etc", filepath.Join(data, "etc"))

	s := start(t, config{bin: exampleBuild, db: sqliteIn(t.TempDir()), env: []string{"TASK_DATA_DIR=" + data}})
	csv := s.task(map[string]any{"command": "process_csv"})
	count := s.task(map[string]any{"command": "count_files"})

	ok := s.waitEnd(s.execute(csv, map[string]any{"params": map[string]any{"filepath": "scores.csv"}}), endWithin)
	if ok.Status != "completed" || !strings.Contains(string(ok.Result), `"rows":2`) {
		t.Fatalf("process_csv on a file in the data directory: %s %s (%s)", ok.Status, ok.Result, ok.err())
	}

	// What must never appear: the secret file's header, /etc/passwd's
	// first line (root's entry) and /etc/shadow's.
	leaks := []string{"SECRETCOLUMN", "TOPSECRET", "root:"}
	paths := []string{
		"/etc/shadow", "/etc/passwd", secret, "../secret.csv", "./../secret.csv", "data/../../secret.csv",
		"../../../../../../etc/passwd", "link.csv", "up/secret.csv", "etc/passwd", "etc/shadow",
		"scores.csv/../../secret.csv", "//etc/passwd", "file:///etc/passwd",
	}
	dirs := []string{"/", "/etc", "..", "../..", "up", "etc", root}
	tried, refused := 0, 0
	check := func(what string, id string) {
		t.Helper()
		tried++
		j := s.waitEnd(id, endWithin)
		full := s.do("GET", "/api/v1/jobs/"+id, nil).body
		if j.ArtifactID != nil {
			full = append(full, s.do("GET", "/api/v1/artifacts/"+*j.ArtifactID, nil).body...)
		}
		for _, l := range leaks {
			if strings.Contains(string(full), l) {
				t.Errorf("%s: the job or its artifact shows %q from outside the data directory: %s", what, l, full)
			}
		}
		if j.Status != "failed" {
			t.Errorf("%s: job %s (%s), want failed", what, j.Status, j.Result)
		} else {
			refused++
		}
	}
	for _, p := range paths {
		check("process_csv "+p, s.execute(csv, map[string]any{"params": map[string]any{"filepath": p}}))
	}
	for _, d := range dirs {
		check("count_files "+d, s.execute(count, map[string]any{"params": map[string]any{"directory": d}}))
	}
	e := s.waitEnd(s.execute(csv, map[string]any{"params": map[string]any{"filepath": "/etc/passwd"}}), endWithin)
	figures(t, "%d paths leading out of the data directory (absolute, .., symlinks to a file and to directories): %d jobs failed, nothing outside read; e.g. %q",
		tried, refused, e.err())
}
