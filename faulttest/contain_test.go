package faulttest

// Containment of a shell job's processes: whatever a job starts ends with
// the job, however it tried to get away (a new session, a new group, a
// trap on SIGTERM, a fork storm, SIGSTOP), and dies with a killed server.

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// escape is a shell job that tries to outlive its end, and the number of
// processes it has once it has started all of them.
type escape struct {
	name    string
	command string
	procs   int
	stopped bool // it waits stopped (SIGSTOP): ready when every process is in state T
}

// setpgidSleep starts a sleep in a process group of its own (setpgid(0, 0)
// before exec), which a kill of the job's group does not reach.
const setpgidSleep = `perl -e 'setpgrp(0, 0); exec "sleep", "120"'`

// readyWithin bounds how long a job may take to start its processes.
const readyWithin = 15 * time.Second

// endWithin bounds how long a job may take to end after a cancel or a
// timeout: its kill grace (lease/4) and then some.
const endWithin = 20 * time.Second

// goneWithin is how long the processes of an ended job may take to exit:
// the server has sent SIGKILL, the kernel needs a moment. An escaped
// process never goes.
const goneWithin = 2 * time.Second

// startJob creates a task for command (with extra task fields), executes
// it, and waits until the job has n processes (n stopped ones if stopped).
func startJob(t *testing.T, s *server, command string, n int, stopped bool, extra map[string]any) (id string, ps []proc) {
	t.Helper()
	body := shellBody(command, 0)
	for k, v := range extra {
		body[k] = v
	}
	id = s.execute(s.task(body), nil)
	var got []proc
	if !eventually(readyWithin, func() bool {
		got = jobProcs(id)
		if !stopped {
			return len(got) >= n
		}
		// A supervising process of the server's (if it has one) carries
		// the job's id too, and is not stopped.
		stops := 0
		for _, p := range got {
			if p.state == 'T' {
				stops++
			}
		}
		return stops >= n
	}) {
		t.Fatalf("job %s (%s) has %v after %s, want %d processes (stopped: %v)\n%s", id, command, got, readyWithin, n, stopped, s.tail())
	}
	return id, got
}

// TestCancelNoSurvivors cancels shell jobs that resist: they ignore
// SIGTERM, fork while being killed, start many children, leave their
// process group or session, or sit stopped (SIGSTOP, so a SIGTERM stays
// pending). After $cancel the job must be canceled and none of its
// processes alive, counted from /proc by SERVICEKIT_JOB_ID.
func TestCancelNoSurvivors(t *testing.T) {
	s := start(t, config{db: sqliteIn(t.TempDir()), args: []string{"--max-concurrency", "4"}})
	total, killed := 0, 0
	for _, c := range []escape{
		{name: "trap", command: `trap '' TERM INT HUP; sleep 120 & sleep 120 & wait`, procs: 3},
		{name: "trap_spawns", command: `trap 'sleep 120 & sleep 120 &' TERM; sleep 120 & wait; wait`, procs: 2},
		{name: "fork", command: `i=0; while [ $i -lt 30 ]; do sleep 120 & i=$((i+1)); done; wait`, procs: 31},
		{name: "fork_tree", command: `sh -c 'sh -c "sleep 120 & sleep 120; :" & sleep 120; :' & wait`, procs: 6},
		{name: "setsid", command: `setsid sleep 120 & sleep 120 & wait`, procs: 3},
		{name: "setsid_trap", command: `setsid sh -c "trap '' TERM; sleep 120; :" & wait`, procs: 3},
		{name: "setpgid", command: setpgidSleep + ` & wait`, procs: 2},
		{name: "sigstop", command: `sleep 120 & kill -STOP $!; kill -STOP $$; wait`, procs: 2, stopped: true},
		{name: "sigstop_setsid", command: `setsid sh -c 'kill -STOP $$; sleep 120' & sleep 120 & kill -STOP $!; kill -STOP $$; wait`, procs: 3, stopped: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := s.in(t)
			id, ps := startJob(t, s, c.command, c.procs, c.stopped, nil)
			total += len(ps)
			s.cancel(id)
			if j := s.waitEnd(id, endWithin); j.Status != "canceled" {
				t.Errorf("job ended %s (%s), want canceled", j.Status, j.err())
			}
			if left := survivors(id, goneWithin); len(left) > 0 {
				t.Errorf("%d of the job's %d processes survived its cancel: %v", len(left), len(ps), left)
			} else {
				killed += len(ps)
			}
		})
	}
	figures(t, "9 resisting jobs canceled, %d of their %d processes gone", killed, total)
}

// TestSetsidContained is the row "a shell job's process calls setsid (or
// setpgid)": it used to survive the job's cancel. Every process a job
// starts must be gone when the job ends, whether it was canceled, timed
// out or simply exited while a detached child still ran.
func TestSetsidContained(t *testing.T) {
	s := start(t, config{db: sqliteIn(t.TempDir()), args: []string{"--max-concurrency", "4"}})
	escaped := map[string]string{
		"setsid":      `setsid sleep 120`,
		"setpgid":     setpgidSleep,
		"double_fork": `sh -c 'setsid sleep 120 & :'`, // the parent exits: the sleeper is an orphan in a session of its own
	}
	total, tried := 0, 0
	for _, name := range []string{"setsid", "setpgid", "double_fork"} {
		bg := escaped[name]
		t.Run(name+"/cancel", func(t *testing.T) {
			s := s.in(t)
			id, ps := startJob(t, s, bg+` & sleep 120; :`, 3, false, nil)
			tried++
			s.cancel(id)
			s.waitEnd(id, endWithin)
			if left := survivors(id, goneWithin); len(left) > 0 {
				total += len(left)
				t.Errorf("%d of %d processes survived the cancel: %v", len(left), len(ps), left)
			}
		})
		t.Run(name+"/timeout", func(t *testing.T) {
			s := s.in(t)
			id, ps := startJob(t, s, bg+` & sleep 120; :`, 3, false, map[string]any{"timeout_seconds": 2})
			tried++
			if j := s.waitEnd(id, endWithin); j.Status != "failed" {
				t.Errorf("job past its timeout ended %s (%s), want failed", j.Status, j.err())
			}
			if left := survivors(id, goneWithin); len(left) > 0 {
				total += len(left)
				t.Errorf("%d of %d processes survived the timeout: %v", len(left), len(ps), left)
			}
		})
		t.Run(name+"/exit", func(t *testing.T) {
			// The shell waits for a file before it exits, so the detached
			// child is surely running when the job ends on its own.
			s := s.in(t)
			gate := t.TempDir() + "/gate"
			id, ps := startJob(t, s, bg+` & while [ ! -e `+gate+` ]; do sleep 0.05; done; echo done`, 2, false, nil)
			tried++
			touch(t, gate)
			if j := s.waitEnd(id, endWithin); j.Status != "completed" {
				t.Errorf("job ended %s (%s), want completed", j.Status, j.err())
			}
			if left := survivors(id, goneWithin); len(left) > 0 {
				total += len(left)
				t.Errorf("%d of %d processes survived the job's end: %v", len(left), len(ps), left)
			}
		})
	}
	figures(t, "%d jobs with a detached child (setsid, setpgid, double fork) ended by cancel, timeout and exit; %d survivors", tried, total)
}

// TestServerKilledWhileShellJobRuns is the row "the server is SIGKILLed
// while a shell job runs": the job's whole process group kept running
// after the restart. Its processes must die with the server, and what
// escaped (a new session or group) must be killed by the restarted server
// before it fails the job or runs it again.
func TestServerKilledWhileShellJobRuns(t *testing.T) {
	command := `sleep 120 & sleep 120 & setsid sleep 120 & ` + setpgidSleep + ` & wait`
	const n = 5 // the shell, two sleeps in its group, two escaped

	t.Run("failed", func(t *testing.T) {
		s := start(t, config{db: sqliteIn(t.TempDir())})
		id, ps := startJob(t, s, command, n, false, nil)
		group := jobShell(t, id, command).pgid
		s.kill()
		var inGroup []proc
		eventually(goneWithin, func() bool {
			inGroup = inGroup[:0]
			for _, p := range jobProcs(id) {
				if p.pgid == group {
					inGroup = append(inGroup, p)
				}
			}
			return len(inGroup) == 0
		})
		if len(inGroup) > 0 {
			t.Errorf("%d processes of the job's group outlived the SIGKILLed server: %v", len(inGroup), inGroup)
		}
		s = s.restart()
		j := s.waitEnd(id, endWithin)
		if j.Status != "failed" {
			t.Errorf("the job of the killed server ended %s, want failed", j.Status)
		}
		left := survivors(id, goneWithin)
		if len(left) > 0 {
			t.Errorf("%d of the job's %d processes outlived the restart and the job's end: %v", len(left), len(ps), left)
		}
		figures(t, "%d processes of a job (2 escaped); after the SIGKILL %d of its group alive, after the restart %d alive, job %s",
			len(ps), len(inGroup), len(left), j.Status)
	})

	t.Run("retried", func(t *testing.T) {
		// With a retry left, the restarted server runs the job again; the
		// first attempt's processes must be gone before the second starts.
		s := start(t, config{db: sqliteIn(t.TempDir())})
		body := shellBody(command, 1)
		id := s.execute(s.task(body), nil)
		first := waitProcs(t, id, n, readyWithin)
		s.kill()
		s = s.restart()
		s.waitJob(id, endWithin, func(j jobRec) bool { return j.Attempt == 2 && j.Status == "running" || j.terminal() })
		if !eventually(readyWithin, func() bool { return len(attemptProcs(id, 2)) > 0 }) {
			t.Fatalf("attempt 2 started no process\n%s", s.tail())
		}
		old := attemptProcs(id, 1)
		if len(old) > 0 {
			t.Errorf("attempt 2 runs beside %d live processes of attempt 1: %v", len(old), old)
		}
		s.cancel(id)
		s.waitEnd(id, endWithin)
		left := survivors(id, goneWithin)
		if len(left) > 0 {
			t.Errorf("%d processes survived the cancel of attempt 2: %v", len(left), left)
		}
		figures(t, "attempt 1 had %d processes; %d of them alive beside attempt 2; %d alive after its cancel", len(first), len(old), len(left))
	})
}

// jobShell is the job's shell: the process running sh -c command.
func jobShell(t *testing.T, id, command string) proc {
	t.Helper()
	var shell proc
	if !eventually(readyWithin, func() bool {
		for _, p := range jobProcs(id) {
			argv, _ := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/cmdline")
			a := strings.Split(strings.TrimSuffix(string(argv), "\x00"), "\x00")
			if len(a) == 3 && (a[0] == "sh" || a[0] == "/bin/sh") && a[1] == "-c" && a[2] == command {
				shell = p
				return true
			}
		}
		return false
	}) {
		t.Fatalf("job %s: no process runs sh -c %q: %v", id, command, jobProcs(id))
	}
	return shell
}

// attemptProcs are the live processes of the job's attempt a.
func attemptProcs(id string, a int) []proc {
	var out []proc
	for _, p := range jobProcs(id) {
		env, _ := os.ReadFile("/proc/" + strconv.Itoa(p.pid) + "/environ")
		if hasEnv(env, "SERVICEKIT_JOB_ATTEMPT="+strconv.Itoa(a)) {
			out = append(out, p)
		}
	}
	return out
}

// touch creates an empty file.
func touch(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}
