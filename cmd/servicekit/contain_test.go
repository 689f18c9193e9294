package main

// Process containment through the real binary: a job's processes, setsid'ed
// ones too, end with the job and die with a SIGKILLed server.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const markEnv = "CONTAINTEST_MARK"

// markedProcs lists the live processes whose environment holds markEnv=mark
// (the tasks of these tests set it), read from /proc.
func markedProcs(mark string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		env, err := os.ReadFile(d + "/environ")
		if err != nil || pid == os.Getpid() || !alive(pid) {
			continue
		}
		if bytes.Contains(append([]byte{0}, env...), []byte("\x00"+markEnv+"="+mark+"\x00")) {
			out = append(out, pid)
		}
	}
	return out
}

// supervisorsOf lists the live job supervisors of the server with that pid
// (the binary re-executed with a hidden argument naming the server).
func supervisorsOf(server int) []int {
	want := "\x00__servicekit_supervise\x00" + strconv.Itoa(server) + "\x00"
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if cmdline, err := os.ReadFile(d + "/cmdline"); err == nil && strings.Contains(string(cmdline), want) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}

func sleepsOf(pids []int) int {
	n := 0
	for _, pid := range pids {
		if comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(comm)) == "sleep" {
			n++
		}
	}
	return n
}

func newMark(t *testing.T) string {
	b := make([]byte, 6)
	rand.Read(b)
	mark := hex.EncodeToString(b)
	t.Cleanup(func() {
		for _, pid := range markedProcs(mark) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return mark
}

// waitMarkedSleeps waits until n marked sleep processes run.
func waitMarkedSleeps(t *testing.T, mark string, n int) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); sleepsOf(markedProcs(mark)) < n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the job started %d sleeps, want %d", sleepsOf(markedProcs(mark)), n)
		}
	}
}

// hostileJob forks, setsid's, daemonizes with setsid -f and traps SIGTERM:
// four sleeps, three of them outside the job's process group.
const hostileJob = `trap '' TERM; sleep 300 & setsid sleep 300 & setsid -f sleep 300; setsid sh -c 'trap "" TERM; sleep 300' & wait`

// containments are the modes these tests run the server in: as detected,
// and with the subreaper forced.
var containments = []string{"detected", "subreaper"}

func setContainment(t *testing.T, mode string) {
	if mode == "subreaper" {
		t.Setenv("SERVICEKIT_CONTAINMENT", "subreaper")
	} else {
		t.Setenv("SERVICEKIT_CONTAINMENT", "")
	}
}

func needSetsid(t *testing.T) {
	if _, err := exec.LookPath("setsid"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("setsid (util-linux) is missing")
		}
		t.Skip("setsid (util-linux) is missing")
	}
}

// TestServerSIGKILLKillsJobProcesses kills the server with SIGKILL while a
// shell job with setsid'ed grandchildren runs: within 2 s none of the job's
// processes is left.
func TestServerSIGKILLKillsJobProcesses(t *testing.T) {
	needSetsid(t)
	for _, mode := range containments {
		t.Run(mode, func(t *testing.T) {
			setContainment(t, mode)
			mark := newMark(t)
			s := start(t, filepath.Join(t.TempDir(), "t.db"))
			id := s.execute(s.task(map[string]any{"command": hostileJob, "env": map[string]string{markEnv: mark}}))
			s.waitFor(id, 10*time.Second, func(j jobRec) bool { return j.Status == "running" })
			waitMarkedSleeps(t, mark, 4)
			s.cmd.Process.Signal(syscall.SIGKILL)
			killed := time.Now()
			defer func() {
				// Read once the server is gone (Wait returns once its log is copied).
				s.cmd.Wait()
				if !strings.Contains(s.logs.String(), "process containment") {
					t.Errorf("the server did not log its containment mode:\n%s", s.logs)
				}
			}()
			server := s.cmd.Process.Pid
			for {
				left := append(markedProcs(mark), supervisorsOf(server)...)
				if len(left) == 0 {
					t.Logf("containment %s: the job's processes and the supervisors were gone %s after the server's SIGKILL", mode, time.Since(killed).Round(time.Millisecond))
					return
				}
				if time.Since(killed) > 2*time.Second {
					t.Fatalf("%d processes of the job or supervisors outlived the SIGKILLed server by 2s: %v", len(left), left)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// TestCancelKillsSetsidProcesses cancels, through the API, a job whose
// processes left its process group: none survives the cancel.
func TestCancelKillsSetsidProcesses(t *testing.T) {
	needSetsid(t)
	for _, mode := range containments {
		t.Run(mode, func(t *testing.T) {
			setContainment(t, mode)
			mark := newMark(t)
			s := start(t, filepath.Join(t.TempDir(), "t.db"))
			id := s.execute(s.task(map[string]any{"command": hostileJob, "env": map[string]string{markEnv: mark}}))
			waitMarkedSleeps(t, mark, 4)
			var j jobRec
			if code := s.call("POST", "/api/v1/jobs/"+id+"/$cancel", nil, &j); code != 200 {
				t.Fatalf("cancel: %d %+v", code, j)
			}
			j = s.waitFor(id, 30*time.Second, terminal)
			if j.Status != "canceled" {
				t.Errorf("job %+v, want canceled", j)
			}
			// The job is recorded canceled only once Run returned, and Run
			// returns only once the job's processes are gone: count now.
			if left := markedProcs(mark); len(left) > 0 {
				t.Errorf("%d processes survived the cancel: %v", len(left), left)
			}
		})
	}
}
