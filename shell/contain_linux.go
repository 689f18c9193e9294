package shell

// Containment on Linux: which mode is active, how a run is started in it,
// and KillStrays. See the package documentation, "Containment".

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// supervisorTimeout bounds how long the server waits for a supervisor to
// kill its job after "kill" before killing the supervisor's group itself:
// the supervisor's own bound plus room.
const supervisorTimeout = killTimeout + 5*time.Second

// startTimeout bounds the wait for a supervisor to start the shell: it
// takes milliseconds, unless the binary is not one that can supervise.
const startTimeout = 30 * time.Second

// containment is how runs are started and their processes found.
type containment struct {
	mode       string   // ContainCgroup or ContainSubreaper
	supervisor bool     // each run starts under a per-job supervisor
	cgroupBase string   // in ContainCgroup: where the job cgroups are made
	notes      []string // why a weaker setup is active, for the log
}

// active is the containment detected at the first run (or the first call
// of ContainmentMode or KillStrays), and logged then.
var active = sync.OnceValue(func() *containment {
	k := detect(os.Getenv(ContainmentEnv))
	k.log(slog.Default())
	return k
})

// ContainmentMode tells how shell jobs' processes are contained on this
// host: ContainCgroup or ContainSubreaper (see the package documentation). The
// first call detects it, which starts two short probe processes, and logs
// it through slog.Default.
func ContainmentMode() string { return active().mode }

func (k *containment) note(format string, args ...any) {
	k.notes = append(k.notes, fmt.Sprintf(format, args...))
}

// detect finds the strongest containment this process can use; setting is
// the value of ContainmentEnv.
func detect(setting string) *containment {
	k := &containment{mode: ContainSubreaper, supervisor: true}
	if err := k.probe(); err != nil {
		k.supervisor = false
		k.note("no per-job supervisor (%v): jobs start directly, a job's processes that left its process group are "+
			"found by their %s, and when the server is killed only each job's shell dies with it", err, tokenEnv)
	}
	switch setting {
	case "", "auto", ContainCgroup:
	case ContainSubreaper:
		k.note("cgroups not tried: %s=%s", ContainmentEnv, setting)
		return k
	default:
		k.note("%s=%q is not auto, cgroup or subreaper; treated as auto", ContainmentEnv, setting)
	}
	base, err := findCgroupBase()
	if err == nil {
		err = k.tryCgroup(base)
	}
	if err != nil {
		k.note("no cgroup per job: %v", err)
		if setting == ContainCgroup {
			k.note("%s=cgroup was asked for and cannot be had", ContainmentEnv)
		}
		return k
	}
	k.mode, k.cgroupBase = ContainCgroup, base
	if n := sweepCgroups(base); n > 0 {
		k.note("killed %d processes left in the cgroups of dead servers", n)
	}
	return k
}

// tryCgroup checks that job cgroups can be made in base, killed and
// removed, by running a probe job in one.
func (k *containment) tryCgroup(base string) error {
	if err := os.Mkdir(base, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	probe := filepath.Join(base, "probe."+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(probe, 0o755); err != nil {
		return err
	}
	_, err := os.Stat(filepath.Join(probe, "cgroup.kill"))
	syscall.Rmdir(probe)
	if err != nil {
		return fmt.Errorf("no cgroup.kill (Linux 5.14 or later has it): %w", err)
	}
	c := *k
	c.mode, c.cgroupBase, c.notes = ContainCgroup, base, nil
	return c.probe()
}

// probe runs a job that exits 7 the way k would run any job.
func (k *containment) probe() error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := Cmd{Command: "exit 7", Env: map[string]string{JobIDEnv: "probe"}}.run(ctx, k)
	if err == nil && res.ExitCode != 7 {
		err = fmt.Errorf("the probe job ended %+v, not with exit status 7", res)
	}
	return err
}

func (k *containment) log(l *slog.Logger) {
	attrs := []any{"mode", k.mode, "supervisor", k.supervisor}
	if k.cgroupBase != "" {
		attrs = append(attrs, "cgroups", k.cgroupBase)
	}
	if len(k.notes) > 0 {
		attrs = append(attrs, "notes", strings.Join(k.notes, "; "))
	}
	if k.supervisor {
		l.Info("shell jobs: process containment", attrs...)
	} else {
		l.Warn("shell jobs: process containment is weaker than it should be", attrs...)
	}
}

var runSeq atomic.Uint64

// newToken is a run's tokenEnv value, unique on this host.
func newToken() string {
	b := make([]byte, 4)
	rand.Read(b)
	return strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(runSeq.Add(1), 10) + "-" + hex.EncodeToString(b)
}

// safeName matches job ids that can be used as they are in a cgroup name.
var safeName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// cgroupPrefix is how the names of a job's cgroups begin: "JOBID.", or
// "run." when the run has no usable job id.
func cgroupPrefix(jobID string) (string, bool) {
	if !safeName.MatchString(jobID) {
		return "run.", false
	}
	return jobID + ".", true
}

func (k *containment) start(c Cmd, env []string, stdout, stderr *os.File) (started, error) {
	token := newToken()
	// Ours, not one the job or the server's environment brought along.
	env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, tokenEnv+"=") })
	env = append(env, tokenEnv+"="+token)
	var cg string
	if k.mode == ContainCgroup {
		prefix, _ := cgroupPrefix(c.Env[JobIDEnv])
		cg = filepath.Join(k.cgroupBase, prefix+token)
		os.Mkdir(k.cgroupBase, 0o755) // gone if someone removed it
		if err := makeCgroup(cg); err != nil {
			return nil, err
		}
	}
	var p started
	var err error
	if k.supervisor {
		p, err = startSupervised(c, env, stdout, stderr, cg, token)
	} else {
		p, err = startDirect(c, env, stdout, stderr, cg, token)
	}
	if err != nil && cg != "" {
		syscall.Rmdir(cg)
	}
	return p, err
}

// supervised is a run under a supervisor process, seen from the server.
type supervised struct {
	cmd    *exec.Cmd
	ctl    *os.File      // write end of the control pipe
	exitCh chan struct{} // closed when the shell's status came, or the supervisor is gone
	gone   chan struct{} // closed at end of file on the status pipe: the supervisor exited
	cgroup string
	token  string

	// Set by readStatus before it closes exitCh (ws) and gone (done).
	ws     syscall.WaitStatus
	haveWS bool
	done   bool // the supervisor reported every process of the job gone

	killOnce sync.Once
}

// startSupervised starts the supervisor (see supervise) and waits until it
// has started the shell, or failed to.
func startSupervised(c Cmd, env []string, stdout, stderr *os.File, cg, token string) (*supervised, error) {
	statusR, statusW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		statusR.Close()
		statusW.Close()
		return nil, err
	}
	cmd := &exec.Cmd{
		// /proc/self/exe is this very binary even if its file was replaced
		// or removed since it started (an upgrade in place).
		Path:   "/proc/self/exe",
		Args:   []string{argv0(), superviseArg, strconv.Itoa(os.Getpid()), cg, c.Command},
		Env:    env,
		Dir:    c.Dir,
		Stderr: os.Stderr, // the supervisor's own complaints go to the server's log
		// Stdin and Stdout nil: /dev/null.
		ExtraFiles: []*os.File{stdout, stderr, statusW, ctlR},
		// Its own process group, which the shell joins; SIGTERM when the
		// server dies, besides the control pipe's end of file.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM},
	}
	err = cmd.Start()
	statusW.Close()
	ctlR.Close()
	if err != nil {
		statusR.Close()
		ctlW.Close()
		return nil, err
	}
	s := &supervised{cmd: cmd, ctl: ctlW, exitCh: make(chan struct{}), gone: make(chan struct{}), cgroup: cg, token: token}
	r := bufio.NewReader(statusR)
	// Bounded: a binary that is not ours (the probe's case) might take the
	// arguments for something else and run on.
	statusR.SetReadDeadline(time.Now().Add(startTimeout))
	line, _ := r.ReadString('\n')
	statusR.SetReadDeadline(time.Time{})
	line = strings.TrimSpace(line)
	if !strings.HasPrefix(line, "started ") {
		statusR.Close()
		ctlW.Close()
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // not reaped yet: still its group
		cmd.Wait()
		if msg, ok := strings.CutPrefix(line, "error "); ok {
			return nil, errors.New("shell: " + msg)
		}
		return nil, fmt.Errorf("shell: the job's supervisor (%s %s) ended before it started the command: %s", cmd.Path, superviseArg, cmd.ProcessState)
	}
	go s.readStatus(r, statusR)
	return s, nil
}

// argv0 is the supervisor's argv[0]: the server's, so that ps shows whose
// supervisor it is.
func argv0() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		return os.Args[0]
	}
	return "servicekit"
}

func (s *supervised) readStatus(r *bufio.Reader, f *os.File) {
	defer f.Close()
	defer close(s.gone)
	for {
		line, err := r.ReadString('\n')
		switch line = strings.TrimSpace(line); {
		case strings.HasPrefix(line, "exit ") && !s.haveWS:
			n, perr := strconv.ParseUint(strings.TrimPrefix(line, "exit "), 10, 32)
			if perr == nil {
				s.ws, s.haveWS = syscall.WaitStatus(n), true
				close(s.exitCh)
			}
		case line == "done":
			s.done = true
		}
		if err != nil {
			if !s.haveWS {
				close(s.exitCh)
			}
			return
		}
	}
}

func (s *supervised) exited() <-chan struct{} { return s.exitCh }

// send writes one command to the supervisor. A job that stopped its own
// process group ("kill -STOP 0") stopped the supervisor too: SIGCONT first.
func (s *supervised) send(cmd string) {
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGCONT)
	s.ctl.WriteString(cmd + "\n") // EPIPE if the supervisor is gone: kill's backstop acts
}

func (s *supervised) terminate() { s.send("term") }

func (s *supervised) kill() {
	s.killOnce.Do(func() {
		s.send("kill")
		t := time.NewTimer(supervisorTimeout)
		defer t.Stop()
		select {
		case <-s.gone:
			if s.done {
				return
			}
		case <-t.C:
		}
		// The supervisor died (a job's "kill -9 0" can do that) or hangs:
		// kill its group (it is not reaped yet, so the group id is still
		// its own), then whatever carries the run's token or is left in its
		// cgroup.
		deadline := time.Now().Add(killTimeout)
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		if s.cgroup != "" {
			killCgroup(s.cgroup, deadline)
		}
		kv := tokenEnv + "=" + s.token
		killUntilNone(func() []int { return withEnv(kv) }, func(pid int) bool { return hasEnv(pid, kv) }, deadline)
		<-s.gone
	})
}

func (s *supervised) wait() (Result, error) {
	s.cmd.Wait()
	s.ctl.Close()
	if s.cgroup != "" {
		removeCgroup(s.cgroup)
	}
	ps := s.cmd.ProcessState
	switch {
	case s.haveWS:
		return waitResult(s.ws), nil
	case ps != nil && ps.Sys().(syscall.WaitStatus).Signaled():
		// Killed before it could report the shell, most likely with the
		// shell, by a signal to the whole group: that is how the job ended.
		return result(ps), nil
	}
	return Result{ExitCode: -1}, fmt.Errorf("shell: the job's supervisor ended (%v) without the command's exit status", ps)
}

// startDirect starts the shell from the server itself, when no supervisor
// can be used: in its own process group, in the job's cgroup if there is
// one, with SIGKILL as its parent death signal.
func startDirect(c Cmd, env []string, stdout, stderr *os.File, cg, token string) (started, error) {
	cmd := &exec.Cmd{
		Path:        "/bin/sh",
		Args:        []string{"sh", "-c", c.Command},
		Env:         env,
		Dir:         c.Dir,
		Stdout:      stdout,
		Stderr:      stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
	}
	if cg != "" {
		dir, err := os.Open(cg)
		if err != nil {
			return nil, err
		}
		defer dir.Close()
		cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, int(dir.Fd())
	}
	release, err := lockedStart(cmd)
	if err != nil {
		return nil, err
	}
	return newGroupRun(cmd, &directStrays{cgroup: cg, kv: tokenEnv + "=" + token}, release), nil
}

// lockedStart starts cmd from a goroutine locked to its OS thread and keeps
// the thread until release is called: the parent death signal is sent when
// the thread that forked the child ends, not the process, and Go ends a
// thread whose goroutine exits while locked to it, which any code in the
// process may do.
func lockedStart(cmd *exec.Cmd) (release func(), err error) {
	errc := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := cmd.Start()
		errc <- err
		if err == nil {
			<-done
		}
	}()
	if err := <-errc; err != nil {
		return nil, err
	}
	return sync.OnceFunc(func() { close(done) }), nil
}

// directStrays finds a directly started run's processes outside its process
// group: in its cgroup, or by the run's token in their environment.
type directStrays struct {
	cgroup string
	kv     string // tokenEnv=token
}

func (d *directStrays) signal(sig syscall.Signal) {
	if d.cgroup != "" {
		for _, pid := range cgroupProcs(d.cgroup) {
			signalIf(pid, sig, func(pid int) bool { return inCgroup(pid, d.cgroup) })
		}
	}
	for _, pid := range withEnv(d.kv) {
		signalIf(pid, sig, func(pid int) bool { return hasEnv(pid, d.kv) })
	}
}

func (d *directStrays) kill() {
	deadline := time.Now().Add(killTimeout)
	if d.cgroup != "" {
		killCgroup(d.cgroup, deadline)
	}
	killUntilNone(func() []int { return withEnv(d.kv) }, func(pid int) bool { return hasEnv(pid, d.kv) }, deadline)
}

func (d *directStrays) cleanup() {
	if d.cgroup != "" {
		removeCgroup(d.cgroup)
	}
}

// KillStrays kills every process on this host whose environment holds
// SERVICEKIT_JOB_ID=jobID, and what is left in the job's cgroups, and
// returns how many processes it killed. It is for the rescue of an attempt
// whose server died: called for a job that runs here now, it kills that
// run too. It gives up on processes that outlast SIGKILL for killTimeout
// (stuck in the kernel) and says so in the error. Processes of another
// user are beyond it unless the server runs as root, and so is a process
// that replaced its environment (exec with a new one) outside a cgroup.
func KillStrays(jobID string) (int, error) {
	if jobID == "" {
		return 0, errors.New("shell: KillStrays needs a job id")
	}
	k := active()
	deadline := time.Now().Add(killTimeout)
	total := 0
	var errs []error
	if prefix, ok := cgroupPrefix(jobID); ok && k.cgroupBase != "" {
		entries, _ := os.ReadDir(k.cgroupBase)
		for _, e := range entries {
			if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
				n, err := killCgroup(filepath.Join(k.cgroupBase, e.Name()), deadline)
				total += n
				errs = append(errs, err)
			}
		}
	}
	kv := JobIDEnv + "=" + jobID
	killed, done := killUntilNone(func() []int { return withEnv(kv) }, func(pid int) bool { return hasEnv(pid, kv) }, deadline)
	total += len(killed)
	if !done {
		errs = append(errs, fmt.Errorf("shell: processes of job %s still run %s after SIGKILL", jobID, killTimeout))
	}
	return total, errors.Join(errs...)
}

// sweepCgroups removes the job cgroups in base that servers no longer
// running left behind (killed while their supervisors could not clean up),
// killing what is still in them, and returns how many processes it killed.
// A cgroup's name holds its server's pid (see newToken); a cgroup whose
// server runs is never touched.
func sweepCgroups(base string) int {
	entries, _ := os.ReadDir(base)
	total := 0
	for _, e := range entries {
		_, token, ok := strings.Cut(e.Name(), ".")
		pidText, _, ok2 := strings.Cut(token, "-")
		pid, err := strconv.Atoi(pidText)
		if !e.IsDir() || !ok || !ok2 || err != nil || pid <= 0 || !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			continue
		}
		n, _ := killCgroup(filepath.Join(base, e.Name()), time.Now().Add(killTimeout))
		total += n
	}
	return total
}
