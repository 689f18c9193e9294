package faulttest

// Finding a job's processes from /proc, by the SERVICEKIT_JOB_ID in their
// environment (which a process keeps across setsid, setpgid, fork and exec,
// while its command line, group and parent may all change).

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// proc is a live (not zombie) process of a job.
type proc struct {
	pid, ppid, pgid, sid int
	state                byte   // R, S, T (stopped), …
	comm                 string // its command name
}

func (p proc) String() string {
	return fmt.Sprintf("pid %d (%s, state %c, group %d, session %d)", p.pid, p.comm, p.state, p.pgid, p.sid)
}

// jobProcs scans /proc for the live processes whose environment has
// SERVICEKIT_JOB_ID=id.
func jobProcs(id string) []proc {
	return procsWithEnv("SERVICEKIT_JOB_ID=" + id)
}

// procsWithEnv scans /proc for live processes with kv in their environment.
func procsWithEnv(kv string) []proc {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []proc
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(d + "/environ")
		if err != nil || !hasEnv(env, kv) {
			continue
		}
		if p, ok := stat(pid); ok && p.state != 'Z' && p.state != 'X' {
			out = append(out, p)
		}
	}
	return out
}

func hasEnv(environ []byte, kv string) bool {
	for _, e := range bytes.Split(environ, []byte{0}) {
		if string(e) == kv {
			return true
		}
	}
	return false
}

// stat reads pid's state, group and session from /proc/pid/stat.
func stat(pid int) (proc, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return proc{}, false
	}
	open, close := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || close < open {
		return proc{}, false
	}
	// After "comm)": state, ppid, pgrp, session.
	f := strings.Fields(string(b[close+1:]))
	if len(f) < 4 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	pgid, _ := strconv.Atoi(f[2])
	sid, _ := strconv.Atoi(f[3])
	return proc{pid: pid, ppid: ppid, pgid: pgid, sid: sid, state: f[0][0], comm: string(b[open+1 : close])}, true
}

// exited reports whether pid is gone or a zombie (it has exited; its
// parent has not reaped it yet).
func exited(pid int) bool {
	p, ok := stat(pid)
	return !ok || p.state == 'Z' || p.state == 'X'
}

// survivors waits up to within for the job's processes to be gone and
// returns those still alive then: a process the server killed may take a
// moment to exit, one that escaped never does.
func survivors(id string, within time.Duration) []proc {
	var left []proc
	eventually(within, func() bool {
		left = jobProcs(id)
		return len(left) == 0
	})
	return left
}

// waitProcs waits until the job has at least n live processes (it has
// started all it means to) and returns them.
func waitProcs(t *testing.T, id string, n int, within time.Duration) []proc {
	t.Helper()
	var ps []proc
	if !eventually(within, func() bool {
		ps = jobProcs(id)
		return len(ps) >= n
	}) {
		t.Fatalf("job %s has %d processes after %s, want %d: %v", id, len(ps), within, n, ps)
	}
	return ps
}

// runMark is in the environment of every shell job this run starts, so
// that TestMain can kill whatever a failing containment test left behind.
var runMark = fmt.Sprintf("FAULTTEST_RUN=%d-%d", os.Getpid(), time.Now().UnixNano())

// reapLeftovers kills every process of this run's jobs that is still alive.
func reapLeftovers() int {
	left := procsWithEnv(runMark)
	for _, p := range left {
		syscall.Kill(p.pid, syscall.SIGKILL)
		syscall.Kill(p.pid, syscall.SIGCONT)
	}
	return len(left)
}
