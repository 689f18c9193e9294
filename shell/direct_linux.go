package shell

// Runs started by the server itself, when no supervisor can be used.

import (
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

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
