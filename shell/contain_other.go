//go:build unix && !linux

package shell

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

// containment on systems other than Linux is the process group alone.
type containment struct{}

func active() *containment { return &containment{} }

// ContainmentMode is ContainProcessGroup on systems other than Linux: a process
// that leaves the job's process group is not found.
func ContainmentMode() string { return ContainProcessGroup }

// KillStrays needs Linux's /proc; elsewhere it reports errors.ErrUnsupported.
func KillStrays(jobID string) (int, error) { return 0, errors.ErrUnsupported }

func (k *containment) start(c Cmd, env []string, stdout, stderr *os.File) (started, error) {
	cmd := &exec.Cmd{
		Path:        "/bin/sh",
		Args:        []string{"sh", "-c", c.Command},
		Env:         env,
		Dir:         c.Dir,
		Stdout:      stdout,
		Stderr:      stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return newGroupRun(cmd, nil, nil), nil
}
