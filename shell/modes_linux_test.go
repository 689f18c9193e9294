package shell

// The package's tests in every containment mode, and the server's death.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nestedEnv, set in a child test process, names the containment forced on
// it: "subreaper" (through ContainmentEnv) or "direct" (no supervisor).
const nestedEnv = "SHELLTEST_NESTED"

func init() {
	if os.Getenv(nestedEnv) == "direct" {
		k := &containment{mode: ContainSubreaper}
		active = func() *containment { return k }
	}
}

// selfIterating are the tests that run every containment themselves, or
// stand in for a server: not run again nested.
const selfIterating = "^(TestSuiteInOtherModes|TestHostileJobsLeaveNoSurvivors|TestSupervisorKilled|" +
	"TestStartErrorsUnderSupervisor|TestSupervisorReused|TestServerSIGKILL|TestHelperServer|TestSweepDeadServersCgroups|TestContainmentMode)$"

// TestSuiteInOtherModes runs this package's tests again in a child process,
// with SERVICEKIT_CONTAINMENT=subreaper and with direct start (no
// supervisor): the tests of Run (exit statuses, output, cancellation, the
// kill grace) must hold whatever the containment. This process's own run
// covers the mode detected here (cgroup where available).
func TestSuiteInOtherModes(t *testing.T) {
	if os.Getenv(nestedEnv) != "" {
		t.Skip("nested")
	}
	for _, m := range []struct{ name, env string }{
		{"subreaper", ContainmentEnv + "=subreaper"},
		{"direct", ContainmentEnv + "="},
	} {
		t.Run(m.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^Test", "-test.skip="+selfIterating, "-test.count=1", "-test.timeout=10m")
			cmd.Env = append(os.Environ(), nestedEnv+"="+m.name, m.env)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("the tests fail with containment %s: %v\n%s", m.name, err, out)
			}
			if want := "mode=subreaper supervisor=true"; m.name == "subreaper" && !strings.Contains(string(out), want) {
				t.Errorf("the nested run did not log %q:\n%s", want, out)
			}
		})
	}
}

// helperEnv makes TestHelperServer a stand-in server with the named
// containment ("active", "subreaper" or "direct").
const helperEnv = "SHELLTEST_HELPER_SERVER"

// TestHelperServer is not a test of its own: started by TestServerSIGKILL
// as a child process, it runs one shell job and waits to be killed.
func TestHelperServer(t *testing.T) {
	var k *containment
	switch os.Getenv(helperEnv) {
	case "":
		t.Skip("a stand-in server for TestServerSIGKILL")
	case "active":
		k = active()
	case "subreaper":
		k = detect(ContainSubreaper)
	case "direct":
		k = &containment{mode: ContainSubreaper}
	}
	Cmd{Command: os.Getenv("SHELLTEST_HELPER_CMD"), Env: map[string]string{markEnv: os.Getenv("SHELLTEST_HELPER_MARK")}}.run(context.Background(), k)
	t.Fatal("the job ended before the server was killed")
}

// TestServerSIGKILL kills with SIGKILL a process running a shell job (this
// test binary as a stand-in server) and counts the job's processes, the
// setsid'ed ones included: none is left 2 s later. Without a supervisor
// only the shell itself dies (Pdeathsig), as documented.
func TestServerSIGKILL(t *testing.T) {
	setsid := needSetsid(t)
	for _, mode := range []string{"active", "subreaper", "direct"} {
		t.Run(mode, func(t *testing.T) {
			mark := newMark(t)
			server := exec.Command(os.Args[0], "-test.run=^TestHelperServer$", "-test.timeout=5m")
			server.Env = append(os.Environ(), helperEnv+"="+mode, "SHELLTEST_HELPER_MARK="+mark,
				"SHELLTEST_HELPER_CMD="+`sleep 300 & `+setsid+` sleep 300 & `+setsid+` -f sh -c 'trap "" TERM; sleep 300'; sh -c 'sleep 300' & wait`)
			out := &logBuffer{}
			server.Stdout, server.Stderr = out, out
			if err := server.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { server.Process.Kill(); server.Wait() })
			waitSleeps(t, mark, 4)
			var shell int
			pids, _ := marked(mark)
			for _, pid := range pids {
				comm, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
				if st, ok := readStat(pid); ok && st.ppid == server.Process.Pid && strings.TrimSpace(string(comm)) == "sh" {
					shell = pid
				}
			}

			server.Process.Signal(syscall.SIGKILL)
			server.Wait()
			killed := time.Now()
			if mode == "direct" {
				if shell == 0 {
					t.Fatalf("no shell among the server's children:%s", describe(pids))
				}
				for alive(shell) {
					if time.Since(killed) > 2*time.Second {
						t.Fatalf("the job's shell %d outlived the server by 2s (Pdeathsig)", shell)
					}
					time.Sleep(5 * time.Millisecond)
				}
				left, _ := marked(mark)
				t.Logf("direct start: the shell died with the server; %d of the job's processes outlived it, as documented", len(left))
				return
			}
			for {
				left, _ := marked(mark)
				left = append(left, supervisorsOf(server.Process.Pid)...)
				cgroups, _ := filepath.Glob(filepath.Join(active().cgroupBase, fmt.Sprintf("sup.%d-*", server.Process.Pid)))
				if active().cgroupBase == "" {
					cgroups = nil
				}
				if len(left) == 0 && len(cgroups) == 0 {
					t.Logf("every process of the job, every supervisor and its cgroup, was gone %s after the server's SIGKILL", time.Since(killed).Round(time.Millisecond))
					return
				}
				if len(left) == 0 && time.Since(killed) > 2*time.Second {
					t.Fatalf("the dead server's supervisors left their cgroups: %v", cgroups)
				}
				if time.Since(killed) > 2*time.Second {
					t.Fatalf("%d processes of the job or supervisors outlived the server by 2s:%s\nserver log:\n%s", len(left), describe(left), out)
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// logBuffer collects a child's output; safe to read while it writes.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// supervisorsOf lists the live supervisors of the server with that pid
// (their argv names it).
func supervisorsOf(server int) []int {
	var out []int
	want := "\x00" + superviseArg + "\x00" + strconv.Itoa(server) + "\x00"
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		if cmdline, err := os.ReadFile(d + "/cmdline"); err == nil && strings.Contains(string(cmdline), want) && alive(pid) {
			out = append(out, pid)
		}
	}
	return out
}
