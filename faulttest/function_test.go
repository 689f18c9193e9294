package faulttest

// Go functions that misbehave: one that ignores its context, one that
// returns a result far too large to store.

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// abandoned reads the servicekit_job_goroutines_abandoned gauge.
func (s *server) abandoned() int {
	s.t.Helper()
	r := s.do("GET", "/metrics", nil)
	m := regexp.MustCompile(`(?m)^servicekit_job_goroutines_abandoned (\d+)`).FindSubmatch(r.body)
	if m == nil {
		s.t.Fatalf("/metrics has no servicekit_job_goroutines_abandoned: %s", r)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// release opens the FIFO for writing, which lets the function blocked on
// it return; it polls because the open fails (ENXIO) until the reader is there.
func release(t *testing.T, fifo string) {
	t.Helper()
	var f *os.File
	if !eventually(endWithin, func() bool {
		var err error
		f, err = os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		return err == nil || !errors.Is(err, syscall.ENXIO)
	}) || f == nil {
		t.Fatalf("no reader on %s", fifo)
	}
	f.WriteString("late")
	f.Close()
}

// TestFunctionIgnoringContext is the row "a Go function ignores its
// context (blocked read)": timeout and cancel did not free the slot,
// $cancel answered 200 with status running after 15 s, and the dispatcher
// stalled. On a server with one slot, the job must end (canceled, or
// failed by its timeout) a grace after the stop, saying the function did
// not return; the jobs queued behind it must run; the goroutine must be
// counted as abandoned until it returns; and its late return must change
// nothing.
func TestFunctionIgnoringContext(t *testing.T) {
	s := start(t, config{db: sqliteIn(t.TempDir()), args: []string{"--max-concurrency", "1"}})
	next := s.shellTask("true", 0)
	for _, c := range []struct {
		name   string
		extra  map[string]any
		status string
	}{
		{"cancel", nil, "canceled"},
		{"timeout", map[string]any{"timeout_seconds": 1}, "failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := s.in(t)
			fifo := filepath.Join(t.TempDir(), "fifo")
			if err := syscall.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			body := map[string]any{"command": "block_on_fifo", "params": map[string]any{"fifo": fifo}}
			for k, v := range c.extra {
				body[k] = v
			}
			id := s.execute(s.task(body), nil)
			s.waitJob(id, endWithin, func(j jobRec) bool { return j.Status == "running" })
			var queued []string
			for range 5 {
				queued = append(queued, s.execute(next, nil))
			}
			stopped := time.Now()
			if c.name == "cancel" {
				if j := s.cancel(id); j.Status == "running" {
					t.Errorf("$cancel answered status running")
				}
			}
			j := s.waitEnd(id, endWithin)
			took := time.Since(stopped)
			if j.Status != c.status || !strings.Contains(j.err(), "did not return") {
				t.Errorf("job ended %s (%q), want %s with an error saying the function did not return", j.Status, j.err(), c.status)
			}
			for _, q := range queued {
				if j := s.waitEnd(q, endWithin); j.Status != "completed" {
					t.Errorf("a job queued behind it ended %s (%s)", j.Status, j.err())
				}
			}
			if n := s.abandoned(); n != 1 {
				t.Errorf("abandoned goroutines %d, want 1", n)
			}
			health := string(s.do("GET", "/health", nil).body)
			release(t, fifo)
			if !eventually(endWithin, func() bool { return s.abandoned() == 0 }) {
				t.Errorf("abandoned goroutines %d after the function returned", s.abandoned())
			}
			if late := s.job(id); late.Status != c.status || string(late.Result) != "null" && len(late.Result) > 0 {
				t.Errorf("the late return changed the job: %s %s", late.Status, late.Result)
			}
			figures(t, "ended %s %s after the %s; 5 queued jobs ran; /health while abandoned: %s", j.Status, took.Round(time.Millisecond), c.name, health)
		})
	}
}

// TestHugeResult is the row "a function returns a huge result": a 289 MB
// result was stored in the job row and the artifact (RSS 4.1 GB, database
// 2.4 GB). Over the 1 MiB limit the job must fail with a clear error, not
// be retried, and store none of it.
func TestHugeResult(t *testing.T) {
	dir := t.TempDir()
	s := start(t, config{db: sqliteIn(dir)})
	for _, c := range []struct {
		name   string
		bytes  int
		status string
	}{
		{"under_limit", 1<<20 - 1000, "completed"},
		{"just_over", 1<<20 + 1, "failed"},
		{"32MiB", 32 << 20, "failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := s.in(t)
			id := s.execute(s.task(map[string]any{"command": "huge_result", "retries": 2, "params": map[string]any{"bytes": c.bytes}}), nil)
			j := s.waitEnd(id, 60*time.Second)
			if j.Status != c.status {
				t.Fatalf("a %d-byte result: job %s (%s), want %s", c.bytes, j.Status, j.err(), c.status)
			}
			if c.status == "completed" {
				return
			}
			if !strings.Contains(j.err(), "limit") || len(j.Result) > 4 || j.Attempt != 1 {
				t.Errorf("a %d-byte result: error %q, result %d bytes, attempt %d; want a limit error, no result, no retry",
					c.bytes, j.err(), len(j.Result), j.Attempt)
			}
			if j.ArtifactID != nil {
				a := s.do("GET", "/api/v1/artifacts/"+*j.ArtifactID, nil)
				if len(a.body) > 64<<10 {
					t.Errorf("the artifact of the failed job holds %d bytes", len(a.body))
				}
			}
		})
	}
	t.Run("configured_4KiB", func(t *testing.T) {
		s := start(t, config{db: sqliteIn(t.TempDir()), args: []string{"--max-result", "4096"}})
		fn := s.task(map[string]any{"command": "huge_result"})
		if j := s.waitEnd(s.execute(fn, map[string]any{"params": map[string]any{"bytes": 3000}}), endWithin); j.Status != "completed" {
			t.Errorf("a 3 kB result under --max-result 4096: %s (%s)", j.Status, j.err())
		}
		if j := s.waitEnd(s.execute(fn, map[string]any{"params": map[string]any{"bytes": 5000}}), endWithin); j.Status != "failed" || len(j.Result) > 4 {
			t.Errorf("a 5 kB result over --max-result 4096: %s %d bytes (%s)", j.Status, len(j.Result), j.err())
		}
	})
	var stored int64
	for _, suffix := range []string{"", "-wal"} {
		if fi, err := os.Stat(filepath.Join(dir, "fault.db"+suffix)); err == nil {
			stored += fi.Size()
		}
	}
	if stored > 16<<20 {
		t.Errorf("database and WAL hold %d bytes after the huge results", stored)
	}
	figures(t, "results of 1 MiB−1000 B (stored), 1 MiB+1 B and 32 MiB (failed, not retried), 3 kB and 5 kB under --max-result 4096 (stored, failed); database + WAL %d KiB; server peak RSS %s",
		stored>>10, peakRSS(s.pid()))
}

// peakRSS is the VmHWM line of /proc/pid/status ("" if unreadable).
func peakRSS(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	m := regexp.MustCompile(`VmHWM:\s+(\d+ kB)`).FindSubmatch(b)
	if m == nil {
		return "?"
	}
	return string(m[1])
}
