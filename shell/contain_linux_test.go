package shell

// Containment tests: real processes, counted from /proc.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// markEnv is the variable by which a test finds its own processes.
const markEnv = "SHELLTEST_MARK"

func newMark(t *testing.T) string {
	b := make([]byte, 6)
	rand.Read(b)
	mark := hex.EncodeToString(b)
	t.Cleanup(func() { killMarked(mark) })
	return mark
}

// marked lists the live processes with markEnv=mark and counts those named
// sleep among them. It reads /proc itself rather than through the package's
// helpers, so that a bug there cannot hide a survivor.
func marked(mark string) (pids []int, sleeps int) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		env, err := os.ReadFile(d + "/environ")
		if err != nil || pid == os.Getpid() || !alive(pid) {
			continue
		}
		if !bytes.Contains(append([]byte{0}, env...), []byte("\x00"+markEnv+"="+mark+"\x00")) {
			continue
		}
		pids = append(pids, pid)
		if comm, _ := os.ReadFile(d + "/comm"); strings.TrimSpace(string(comm)) == "sleep" {
			sleeps++
		}
	}
	return pids, sleeps
}

// killMarked kills what a failed test left behind.
func killMarked(mark string) {
	pids, _ := marked(mark)
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// describe is ps-like detail on pids, for failure messages.
func describe(pids []int) string {
	var b strings.Builder
	for _, pid := range pids {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		fmt.Fprintf(&b, "\n  %s", strings.TrimSpace(string(stat)))
	}
	return b.String()
}

// supervisorOf returns the supervisor running the marked job: the parent,
// not marked itself, of its shell (0 when the job was started directly).
func supervisorOf(mark string) int {
	pids, _ := marked(mark)
	for _, pid := range pids {
		st, ok := readStat(pid)
		if !ok || st.ppid == os.Getpid() || st.ppid <= 1 {
			continue
		}
		if parent, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", st.ppid)); bytes.Contains(parent, []byte("\x00"+superviseArg+"\x00")) {
			return st.ppid
		}
	}
	return 0
}

// waitSleeps waits until the command started at least n marked sleeps.
func waitSleeps(t *testing.T, mark string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, got := marked(mark); got >= n {
			return
		}
		if time.Now().After(deadline) {
			pids, got := marked(mark)
			t.Fatalf("the command started %d sleeps, want %d:%s", got, n, describe(pids))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitStopped waits until a marked process is stopped (state T).
func waitStopped(t *testing.T, mark string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		pids, _ := marked(mark)
		for _, pid := range pids {
			stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
			if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'T' {
				return
			}
		}
	}
	t.Fatal("the command did not stop itself")
}

func needSetsid(t *testing.T) string {
	path, err := exec.LookPath("setsid")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("setsid (util-linux) is missing")
		}
		t.Skip("setsid (util-linux) is missing")
	}
	return path
}

type namedContainment struct {
	name string
	k    *containment
}

// containments are the setups every containment test runs under: the
// supervisor with and without a cgroup, and direct start, with and without
// one. The cgroup variants need a host where this process may create
// cgroups.
func containments(t *testing.T) []namedContainment {
	out := []namedContainment{
		{"subreaper", &containment{mode: ContainSubreaper, supervisor: true}},
		{"direct", &containment{mode: ContainSubreaper}},
	}
	k := detect("")
	if k.mode == ContainCgroup {
		out = append(out,
			namedContainment{"cgroup", &containment{mode: ContainCgroup, supervisor: true, cgroupBase: k.cgroupBase}},
			namedContainment{"cgroup-direct", &containment{mode: ContainCgroup, cgroupBase: k.cgroupBase}})
	} else {
		t.Logf("cgroup mode is not available here, its variants do not run: %v", k.notes)
	}
	return out
}

// hostileCase is a command trying to outlive its job.
type hostileCase struct {
	name string
	// cmd may use {pidfile}, a file a process that drops its environment
	// (and so the mark) writes its pid to, and {go}, a file the test
	// creates once it has counted the sleeps.
	cmd    string
	sleeps int  // marked sleep processes to wait for before acting
	cancel bool // cancel the job; else the test creates {go} and the command ends itself
	stop   bool // SIGSTOP every process of the job, and its supervisor, before the cancel
	// stopped: wait, once {go} exists, until the command stopped itself.
	stopped bool
	// tree: escapes direct start without a cgroup (it drops the token
	// with its environment).
	tree   bool
	signal string // the Result's signal, if it must be one
}

func hostileCases(setsid string) []hostileCase {
	const waitGo = `while [ ! -e {go} ]; do sleep 0.01; done`
	return []hostileCase{
		{name: "traps TERM", cmd: `trap '' TERM; sleep 300 & sh -c 'trap "" TERM; exec sleep 300' & wait`,
			sleeps: 2, cancel: true},
		{name: "forks", cmd: `for i in 1 2 3; do (sleep 300 &); sh -c 'sleep 300 & sleep 300 & wait' & done; wait`,
			sleeps: 9, cancel: true},
		{name: "setsid", cmd: `setsid sleep 300 & setsid -f sleep 300; setsid sh -c 'trap "" TERM; sleep 300 & wait' & wait`,
			sleeps: 3, cancel: true},
		{name: "setpgid", cmd: `set -m; (sleep 300 & wait) & (trap '' TERM; sleep 300) & wait`,
			sleeps: 2, cancel: true},
		{name: "SIGSTOPped", cmd: `sleep 300 & setsid sleep 300 & setsid sh -c 'trap "" TERM; sleep 300 & wait' & wait`,
			sleeps: 3, cancel: true, stop: true},
		{name: "stops its own group", cmd: `setsid sleep 300 & sleep 300 & ` + waitGo + `; kill -STOP 0`,
			sleeps: 2, cancel: true, stopped: true},
		{name: "kills its own group", cmd: `setsid -f sleep 300; setsid sleep 300 & sleep 300 & ` + waitGo + `; kill -9 0`,
			sleeps: 3, signal: "SIGKILL"},
		{name: "exits leaving daemons", cmd: `setsid -f sleep 300; setsid sh -c 'trap "" TERM HUP; sleep 300' & sleep 300 & ` + waitGo,
			sleeps: 3},
		{name: "drops its environment", cmd: `env -i /bin/sh -c '` + setsid + ` -f /bin/sh -c "echo \$\$ > {pidfile}; exec /bin/sleep 300"'; sleep 300 & wait`,
			sleeps: 1, cancel: true, tree: true},
	}
}

// TestHostileJobsLeaveNoSurvivors runs commands that fight their
// containment (trap SIGTERM, fork, setsid, setpgid, SIGSTOP, signal their
// own group, daemonize, drop their environment), ends each job by cancel or
// by its own exit, and counts from /proc what is left the moment Run
// returns: nothing.
func TestHostileJobsLeaveNoSurvivors(t *testing.T) {
	setsid := needSetsid(t)
	for _, nk := range containments(t) {
		t.Run(nk.name, func(t *testing.T) {
			for _, hc := range hostileCases(setsid) {
				t.Run(hc.name, func(t *testing.T) {
					if hc.tree && !nk.k.supervisor && nk.k.mode != ContainCgroup {
						t.Skip("a process that drops its environment outside the process group escapes direct start without a cgroup (documented)")
					}
					testHostile(t, nk.k, hc)
				})
			}
		})
	}
}

func testHostile(t *testing.T, k *containment, hc hostileCase) {
	mark := newMark(t)
	dir := t.TempDir()
	pidfile, goFile := filepath.Join(dir, "pid"), filepath.Join(dir, "go")
	const grace = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	jobCtx, cancelJob := context.WithCancel(ctx)
	defer cancelJob()
	type ran struct {
		res Result
		err error
	}
	done := make(chan ran, 1)
	var out bytes.Buffer
	go func() {
		command := strings.NewReplacer("{pidfile}", pidfile, "{go}", goFile).Replace(hc.cmd)
		res, err := Cmd{Command: command, Env: map[string]string{markEnv: mark},
			Stdout: &out, Stderr: &out, KillGrace: grace}.run(jobCtx, k)
		done <- ran{res, err}
	}()
	waitSleeps(t, mark, hc.sleeps)
	escapee := 0
	if strings.Contains(hc.cmd, "{pidfile}") {
		escapee = atoi(t, waitForFile(t, pidfile))
		defer syscall.Kill(escapee, syscall.SIGKILL)
	}
	if hc.stop {
		pids, _ := marked(mark)
		if sup := supervisorOf(mark); sup != 0 {
			pids = append(pids, sup)
		} else if k.supervisor {
			t.Fatal("no supervisor found to stop")
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGSTOP)
		}
	}
	if err := os.WriteFile(goFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if hc.stopped {
		waitStopped(t, mark)
	}
	ended := time.Now()
	if hc.cancel {
		cancelJob()
	}
	var r ran
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		pids, _ := marked(mark)
		t.Fatalf("Run did not return 20s after the job ended; marked processes:%s", describe(pids))
	}
	took := time.Since(ended)
	if r.err != nil {
		t.Fatalf("Run: %v (output %q)", r.err, out.String())
	}
	// Counted at once: Run returns only when the job's processes are gone.
	if pids, _ := marked(mark); len(pids) > 0 {
		t.Errorf("%d processes of the job survived it (result %+v):%s", len(pids), r.res, describe(pids))
	}
	if escapee != 0 && alive(escapee) {
		t.Errorf("process %d, which dropped its environment, survived the job", escapee)
	}
	if hc.signal != "" && r.res.Signal != hc.signal {
		t.Errorf("Result = %+v, want killed by %s", r.res, hc.signal)
	}
	if !hc.cancel && r.res.Signal == "" && r.res.ExitCode != 0 {
		t.Errorf("Result = %+v, want exit status 0", r.res)
	}
	if took > grace+5*time.Second {
		t.Errorf("Run returned %v after the job ended", took)
	}
}

// TestSupervisorKilled: when a job's supervisor is killed (by anyone), the
// server kills the job's processes itself, those that left the process
// group too, and Run says what happened.
func TestSupervisorKilled(t *testing.T) {
	setsid := needSetsid(t)
	for _, nk := range containments(t) {
		if !nk.k.supervisor {
			continue
		}
		t.Run(nk.name, func(t *testing.T) {
			mark := newMark(t)
			type ran struct {
				res Result
				err error
			}
			done := make(chan ran, 1)
			go func() {
				res, err := Cmd{Command: setsid + ` sleep 300 & sleep 300 & wait`, Env: map[string]string{markEnv: mark}}.run(t.Context(), nk.k)
				done <- ran{res, err}
			}()
			waitSleeps(t, mark, 2)
			sup := supervisorOf(mark)
			if sup == 0 {
				pids, _ := marked(mark)
				t.Fatalf("no supervisor above%s", describe(pids))
			}
			syscall.Kill(sup, syscall.SIGKILL)
			var r ran
			select {
			case r = <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("Run did not return after its supervisor was killed")
			}
			if left, _ := marked(mark); len(left) > 0 {
				t.Errorf("%d processes outlived their killed supervisor:%s", len(left), describe(left))
			}
			if r.err == nil || !strings.Contains(r.err.Error(), "supervisor was killed") {
				t.Errorf("Run = %+v, %v; want an error saying the supervisor was killed", r.res, r.err)
			}
			// The next job gets a new supervisor.
			if res, err := (Cmd{Command: "exit 3"}).run(t.Context(), nk.k); err != nil || res.ExitCode != 3 {
				t.Errorf("the next job: %+v, %v", res, err)
			}
		})
	}
}

// TestSupervisorReused: jobs one after the other run under the same
// supervisor (and, in cgroup mode, in the same cgroup while jobs leave
// nothing behind). A job whose leftovers had to be killed makes the next job
// get a new cgroup, and that job runs normally (Linux kills a process born
// into a cgroup once killed). An idle supervisor someone killed is replaced.
func TestSupervisorReused(t *testing.T) {
	setsid := needSetsid(t)
	for _, nk := range containments(t) {
		if !nk.k.supervisor {
			continue
		}
		t.Run(nk.name, func(t *testing.T) {
			type where struct {
				supervisor int
				cgroup     string
			}
			run := func(command string) where {
				t.Helper()
				var out bytes.Buffer
				res, err := (Cmd{Command: command + `; echo $PPID; grep '^0::' /proc/self/cgroup`, Stdout: &out}).run(t.Context(), nk.k)
				lines := strings.Split(strings.TrimSpace(out.String()), "\n")
				if err != nil || res.ExitCode != 0 || len(lines) < 2 {
					t.Fatalf("%q: %+v, %v, output %q", command, res, err, out.String())
				}
				return where{atoi(t, lines[len(lines)-2]), lines[len(lines)-1]}
			}
			first := run("true")
			if second := run("true"); second != first {
				t.Errorf("two jobs in a row ran under %+v and %+v, want one supervisor reused", first, second)
			}
			if nk.k.mode == ContainCgroup && !strings.Contains(first.cgroup, "/sup.") {
				t.Errorf("the job ran in cgroup %q, not its supervisor's", first.cgroup)
			}
			left := run(setsid + " -f sleep 300")
			after := run("true")
			if after.supervisor != left.supervisor {
				t.Errorf("the supervisor was not reused after a job that left a process: %+v, then %+v", left, after)
			}
			if nk.k.mode == ContainCgroup && after.cgroup == left.cgroup {
				t.Errorf("the job after a killed cgroup ran in the same cgroup %s", after.cgroup)
			}

			syscall.Kill(after.supervisor, syscall.SIGKILL)
			for alive(after.supervisor) {
				time.Sleep(time.Millisecond)
			}
			if next := run("true"); next.supervisor == after.supervisor {
				t.Errorf("a job ran under the killed supervisor %d", next.supervisor)
			}
		})
	}
}

// TestEscapedProcessDoesNotHang covers the one setup a process can escape:
// direct start without a cgroup, by a process that left the process group
// and dropped its environment. It cannot be killed, but Run must not wait
// for it (it holds the job's stdout) longer than the drain timeout.
func TestEscapedProcessDoesNotHang(t *testing.T) {
	setsid := needSetsid(t)
	pidfile := filepath.Join(t.TempDir(), "pid")
	var out bytes.Buffer
	start := time.Now()
	done := make(chan Result, 1)
	go func() {
		res, err := Cmd{
			Command: fmt.Sprintf(`env -i /bin/sh -c '%[2]s /bin/sh -c "echo \$\$ > %[1]s; exec /bin/sleep 300"' &
while [ ! -s %[1]s ]; do sleep 0.01; done
echo done`, pidfile, setsid),
			Stdout: &out,
		}.run(t.Context(), &containment{mode: ContainSubreaper})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	pid := atoi(t, waitForFile(t, pidfile))
	defer syscall.Kill(pid, syscall.SIGKILL)
	var res Result
	select {
	case res = <-done:
	case <-time.After(outputDrainTimeout + 5*time.Second):
		t.Fatal("Run waited for the escaped process")
	}
	elapsed := time.Since(start)
	if res.ExitCode != 0 || out.String() != "done\n" {
		t.Errorf("Result = %+v, output %q", res, out.String())
	}
	if elapsed > outputDrainTimeout+3*time.Second {
		t.Errorf("Run took %v", elapsed)
	}
	if !alive(pid) {
		t.Error("the escaped process is dead: this test no longer covers an escape")
	}
}

// TestStartErrorsUnderSupervisor: errors starting the shell itself come back
// from Run as errors, as they do without a supervisor.
func TestStartErrorsUnderSupervisor(t *testing.T) {
	for _, nk := range containments(t) {
		t.Run(nk.name, func(t *testing.T) {
			res, err := Cmd{Command: "true", Dir: filepath.Join(t.TempDir(), "missing")}.run(t.Context(), nk.k)
			if err == nil || res.ExitCode != -1 || !strings.Contains(err.Error(), "no such file") {
				t.Errorf("missing Dir: %+v, %v", res, err)
			}
		})
	}
}

// TestKillStrays starts, outside any Run, processes as a dead server would
// leave them (in a session of their own, daemonized, in a leftover cgroup
// with their environment dropped) and checks that KillStrays kills exactly
// them, not another job's.
func TestKillStrays(t *testing.T) {
	setsid := needSetsid(t)
	mark := newMark(t)
	jobID, other := "strays"+mark, "other"+mark
	start := func(id, command string) {
		cmd := exec.Command(setsid, "sh", "-c", command)
		cmd.Env = append(os.Environ(), JobIDEnv+"="+id, markEnv+"="+mark)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go cmd.Wait()
	}
	start(jobID, `sleep 300 & setsid -f sleep 300; sh -c 'trap "" TERM; sleep 300' & wait`)
	start(other, `sleep 300`)
	waitSleeps(t, mark, 4)

	// In cgroup mode, a process in a leftover job cgroup that dropped its
	// environment: only the cgroup can find it.
	var inCgroup *exec.Cmd
	if k := active(); k.mode == ContainCgroup {
		cg := filepath.Join(k.cgroupBase, jobID+".1-1-test")
		if err := os.Mkdir(cg, 0o755); err != nil {
			t.Fatal(err)
		}
		defer removeCgroup(cg)
		dir, err := os.Open(cg)
		if err != nil {
			t.Fatal(err)
		}
		inCgroup = exec.Command("/bin/sleep", "300")
		inCgroup.Env = []string{}
		inCgroup.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(dir.Fd())}
		err = inCgroup.Start()
		dir.Close()
		if err != nil {
			t.Fatal(err)
		}
		defer inCgroup.Process.Kill()
	}

	before, _ := marked(mark)
	var mine int
	for _, pid := range before {
		if hasEnv(pid, JobIDEnv+"="+jobID) {
			mine++
		}
	}
	want := mine
	if inCgroup != nil {
		want++
	}
	killed, err := KillStrays(jobID)
	if err != nil {
		t.Fatal(err)
	}
	if killed != want {
		t.Errorf("KillStrays killed %d processes, want %d", killed, want)
	}
	after, sleeps := marked(mark)
	for _, pid := range after {
		if !hasEnv(pid, JobIDEnv+"="+other) {
			t.Errorf("process %d of job %s survived KillStrays", pid, jobID)
		}
	}
	if sleeps != 1 {
		t.Errorf("after KillStrays: %d sleeps left, want the other job's one:%s", sleeps, describe(after))
	}
	if inCgroup != nil {
		if err := inCgroup.Wait(); err == nil || inCgroup.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Errorf("the process in the leftover cgroup ended %v, want killed by SIGKILL", inCgroup.ProcessState)
		}
	}
	if n, err := KillStrays(jobID); n != 0 || err != nil {
		t.Errorf("second KillStrays: %d, %v", n, err)
	}
}

// TestSweepDeadServersCgroups: at detection, a job cgroup whose server is
// gone is emptied and removed; one whose server runs is left alone.
func TestSweepDeadServersCgroups(t *testing.T) {
	k := active()
	if k.mode != ContainCgroup {
		t.Skip("cgroup mode is not available here")
	}
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(k.cgroupBase, fmt.Sprintf("job.%d-1-test", gone.Process.Pid))
	live := filepath.Join(k.cgroupBase, fmt.Sprintf("job.%d-1-test", os.Getpid()))
	for _, dir := range []string{dead, live} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		defer removeCgroup(dir)
	}
	f, _ := os.Open(dead)
	orphan := exec.Command("/bin/sleep", "300")
	orphan.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(f.Fd())}
	err := orphan.Start()
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer orphan.Process.Kill()
	if n := sweepCgroups(k.cgroupBase); n != 1 {
		t.Errorf("sweep killed %d processes, want 1", n)
	}
	orphan.Wait()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("the dead server's cgroup is still there: %v", err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("the live server's cgroup was removed: %v", err)
	}
}

// TestContainmentMode: the detected mode is one of the two, and the
// environment variable forces the subreaper.
func TestContainmentMode(t *testing.T) {
	if m := ContainmentMode(); m != ContainCgroup && m != ContainSubreaper {
		t.Errorf("ContainmentMode() = %q", m)
	}
	if !active().supervisor {
		t.Errorf("the test binary cannot supervise its jobs: %v", active().notes)
	}
	k := detect(ContainSubreaper)
	if k.mode != ContainSubreaper || !k.supervisor || k.cgroupBase != "" {
		t.Errorf("detect(subreaper) = %+v", k)
	}
}
