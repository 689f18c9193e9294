package clustertest

// Finding the processes a job left behind, by a marker in their environment
// (a shell may exec its last command, so the command line would not do).

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// markEnv names the environment variable a test's tasks set to its marker.
const markEnv = "CLUSTERTEST_MARK"

// proc is a live (not zombie) process whose environment holds a marker.
type proc struct {
	pid, pgid int
	attempt   string // its SERVICEKIT_JOB_ATTEMPT, "" if unreadable
}

// groups counts the distinct process groups of ps: one per shell job.
func groups(ps []proc) int {
	g := map[int]bool{}
	for _, p := range ps {
		g[p.pgid] = true
	}
	return len(g)
}

// procsWith scans /proc for live processes with markEnv=marker.
func procsWith(marker string) []proc {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []proc
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(d + "/environ")
		if err != nil || zombie(pid) {
			continue
		}
		p, marked := proc{pid: pid, pgid: pgid(pid)}, false
		for _, kv := range bytes.Split(env, []byte{0}) {
			if v, ok := strings.CutPrefix(string(kv), "SERVICEKIT_JOB_ATTEMPT="); ok {
				p.attempt = v
			}
			marked = marked || string(kv) == markEnv+"="+marker
		}
		if marked {
			out = append(out, p)
		}
	}
	return out
}

// pgid is the process group of pid (0 if unreadable).
func pgid(pid int) int {
	stat, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	// After "comm)": state, ppid, pgrp.
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 3 {
		return 0
	}
	g, _ := strconv.Atoi(f[2])
	return g
}

// zombie reports whether pid has exited and waits to be reaped (or is gone).
func zombie(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z'
}

// killMarked kills, when the test ends, every process group with marker: a node killed with SIGKILL leaves its jobs' shells
// behind (they are in process groups of their own), and they must not
// outlive the test.
func killMarked(t *testing.T, marker string) {
	t.Cleanup(func() {
		for _, p := range procsWith(marker) {
			if p.pgid > 1 {
				syscall.Kill(-p.pgid, syscall.SIGKILL)
			}
			syscall.Kill(p.pid, syscall.SIGKILL)
		}
	})
}
