//go:build unix

package shell

import (
	"fmt"
	"os/exec"
	"sync"
	"syscall"
)

// started is a run's processes as Run sees them, however containment
// started them.
type started interface {
	// exited is closed once the shell has exited.
	exited() <-chan struct{}
	// terminate sends SIGTERM, then SIGCONT, to every process of the run.
	terminate()
	// kill sends SIGKILL to every process of the run and returns once they
	// are gone (or a bound has passed). Only the first call does anything.
	kill()
	// wait reaps what is left after kill and reports how the shell ended.
	wait() (Result, error)
}

// strays finds the processes of a run that may have left its process group.
type strays interface {
	signal(sig syscall.Signal)
	kill()
	cleanup()
}

// groupRun is a shell the server started itself, in a process group of its
// own whose id is the shell's pid.
type groupRun struct {
	cmd      *exec.Cmd
	exitCh   chan struct{}
	strays   strays // nil: the process group is all there is to find
	release  func() // called once the shell is reaped; may be nil
	killOnce sync.Once
}

// newGroupRun watches the started cmd. The shell is waited for without
// being reaped (waitExited), so that its pid, the group id, stays ours
// while the group is signalled.
func newGroupRun(cmd *exec.Cmd, s strays, release func()) *groupRun {
	g := &groupRun{cmd: cmd, exitCh: make(chan struct{}), strays: s, release: release}
	go func() {
		waitExited(cmd.Process.Pid)
		close(g.exitCh)
	}()
	return g
}

func (g *groupRun) exited() <-chan struct{} { return g.exitCh }

func (g *groupRun) terminate() {
	pid := g.cmd.Process.Pid
	// SIGCONT wakes stopped members so the SIGTERM takes effect.
	syscall.Kill(-pid, syscall.SIGTERM)
	syscall.Kill(-pid, syscall.SIGCONT)
	if g.strays != nil {
		g.strays.signal(syscall.SIGTERM)
		g.strays.signal(syscall.SIGCONT)
	}
}

func (g *groupRun) kill() {
	g.killOnce.Do(func() {
		syscall.Kill(-g.cmd.Process.Pid, syscall.SIGKILL) // ESRCH when none are left
		if g.strays != nil {
			g.strays.kill()
		}
	})
}

func (g *groupRun) wait() (Result, error) {
	waitErr := g.cmd.Wait()
	if g.release != nil {
		g.release()
	}
	if g.strays != nil {
		g.strays.cleanup()
	}
	if g.cmd.ProcessState == nil {
		return Result{ExitCode: -1}, fmt.Errorf("shell: wait: %w", waitErr)
	}
	return result(g.cmd.ProcessState), nil
}
