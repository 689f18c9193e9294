package shell

// Finding and signalling a run's processes through /proc.

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// procStat is what containment needs from /proc/PID/stat.
type procStat struct {
	pid, ppid, pgrp int
	zombie          bool // exited, waiting to be reaped: nothing left to kill
}

// readStat reads /proc/pid/stat; ok is false once the process is gone.
func readStat(pid int) (st procStat, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return st, false
	}
	// "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses,
	// so the fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return st, false
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 3 || len(f[0]) != 1 {
		return st, false
	}
	st.pid = pid
	st.zombie = f[0][0] == 'Z' || f[0][0] == 'X'
	st.ppid, _ = strconv.Atoi(string(f[1]))
	st.pgrp, _ = strconv.Atoi(string(f[2]))
	return st, true
}

// pids lists the process ids in /proc.
func pids() []int {
	d, err := os.Open("/proc")
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(-1)
	out := make([]int, 0, len(names))
	for _, n := range names {
		if pid, err := strconv.Atoi(n); err == nil && pid > 0 {
			out = append(out, pid)
		}
	}
	return out
}

// descendants returns the live (non-zombie) descendants of root, found by
// following parent pids through /proc. For a child subreaper this is every
// process it started, directly or not, that is still running: an orphan
// is reparented to the nearest subreaper above it, so it cannot leave the
// tree.
func descendants(root int) []int {
	children := map[int][]procStat{}
	for _, pid := range pids() {
		if st, ok := readStat(pid); ok {
			children[st.ppid] = append(children[st.ppid], st)
		}
	}
	var out []int
	queue := []int{root}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			if c.pid == root {
				continue
			}
			queue = append(queue, c.pid)
			if !c.zombie {
				out = append(out, c.pid)
			}
		}
	}
	return out
}

// isDescendant reports whether pid runs below root now.
func isDescendant(pid, root int) bool {
	for range 4096 { // a bound against a cycle seen through a racing reparent
		st, ok := readStat(pid)
		if !ok || st.zombie || st.ppid <= 0 {
			return false
		}
		if st.ppid == root {
			return true
		}
		pid = st.ppid
	}
	return false
}

// hasEnv reports whether the environment pid started with holds kv
// ("NAME=value") exactly. Reading another process's environment needs the
// same uid (or root); an unreadable one does not match.
func hasEnv(pid int, kv string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	want := []byte(kv)
	for len(b) > 0 {
		var entry []byte
		entry, b, _ = bytes.Cut(b, []byte{0})
		if bytes.Equal(entry, want) {
			return true
		}
	}
	return false
}

// withEnv lists the live processes other than this one whose environment
// holds kv.
func withEnv(kv string) []int {
	self := os.Getpid()
	var out []int
	for _, pid := range pids() {
		if pid == self {
			continue
		}
		if st, ok := readStat(pid); ok && !st.zombie && hasEnv(pid, kv) {
			out = append(out, pid)
		}
	}
	return out
}

// signalIf sends sig to pid if check(pid) still holds once a pidfd pins
// the process: a pid freed and reused by an unrelated process between the
// scan that found it and the signal is then never hit. Without pidfds
// (Linux before 5.3) it checks and signals by pid.
func signalIf(pid int, sig syscall.Signal, check func(int) bool) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, syscall.ENOSYS) {
		return check(pid) && syscall.Kill(pid, sig) == nil
	}
	if err != nil {
		return false // gone
	}
	defer unix.Close(fd)
	return check(pid) && unix.PidfdSendSignal(fd, sig, nil, 0) == nil
}

// killUntilNone sends SIGKILL to every process list() returns, again and
// again, until it returns none or the deadline passes. Repeating catches
// processes forked between a scan and the kill; check re-validates each pid
// right before its signal. It returns the distinct pids it killed, and
// whether it saw the list empty.
func killUntilNone(list func() []int, check func(int) bool, deadline time.Time) (killed map[int]bool, done bool) {
	killed = map[int]bool{}
	for pause := 100 * time.Microsecond; ; pause = min(2*pause, 10*time.Millisecond) {
		ps := list()
		if len(ps) == 0 {
			return killed, true
		}
		for _, pid := range ps {
			if signalIf(pid, syscall.SIGKILL, check) {
				killed[pid] = true
			}
		}
		if time.Now().After(deadline) {
			return killed, false
		}
		// A killed process is not gone at once; give the kernel a moment
		// before looking again rather than spinning.
		time.Sleep(pause)
	}
}
