package shell

// The per-job supervisor: the server's own binary re-executed with
// superviseArg. It runs /bin/sh -c COMMAND, reports the shell's exit status
// to the server, and kills every process of the job when the server says
// so or dies. See the package documentation, "Containment".

import (
	"bufio"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// superviseArg, as argv[1], makes the binary a supervisor instead of
// whatever it would otherwise be (see init).
const superviseArg = "__servicekit_supervise"

// The supervisor's file descriptors beyond stdin, stdout and stderr, in the
// order startSupervised passes them.
const (
	fdJobStdout = 3 // the job's stdout pipe, handed to the shell
	fdJobStderr = 4 // the job's stderr pipe (may be the same pipe as fdJobStdout)
	fdStatus    = 5 // supervisor → server: "started PID", "error TEXT", "exit WAITSTATUS", "done"
	fdControl   = 6 // server → supervisor: "term", "kill"; end of file: the server is gone
)

// killTimeout bounds how long the supervisor, and KillStrays, keep killing
// a job's processes: only a process stuck in the kernel (an unresponsive
// NFS server, say) can outlast SIGKILL that long.
const killTimeout = 10 * time.Second

// init turns the process into a supervisor before main runs, when it was
// started as one. It is in package init rather than in a command of the CLI
// so that every binary that can run shell jobs (the servicekit command, a
// program of one's own built on it, a test binary) can also supervise them.
func init() {
	if len(os.Args) > 1 && os.Args[1] == superviseArg {
		exit(supervise(os.Args[2:]))
	}
}

// exit ends the supervisor at once. It is os.Exit without the race
// detector's exit pause (a second, by default, in a -race build), which
// would make every job of a race-built server, such as the one a test
// suite runs, take a second longer; the supervisor has nothing to flush.
func exit(code int) {
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, uintptr(code), 0, 0)
}

// supervisor is the state of the supervisor process.
type supervisor struct {
	server int    // the server's pid, this process's parent until the server dies
	cgroup string // the job's cgroup directory, "" without one
	self   int
	status *os.File
}

// supervise is the supervisor's main. Its arguments are the server's pid,
// the job's cgroup directory ("" for none) and the command line.
func supervise(args []string) int {
	if len(args) != 3 {
		fmt.Fprintf(os.Stderr, "%s is internal to servicekit's shell jobs: it is started by the server only\n", superviseArg)
		return 2
	}
	// Our descriptors must not reach the shell: it would then hold the
	// control pipe open for ever and the status pipe for the server.
	for fd := fdJobStdout; fd <= fdControl; fd++ {
		syscall.CloseOnExec(fd)
	}
	server, _ := strconv.Atoi(args[0])
	s := &supervisor{server: server, cgroup: args[1], self: os.Getpid(), status: os.NewFile(fdStatus, "status")}

	// Every catchable signal comes here rather than ending the supervisor:
	// the job may signal its own process group, which the supervisor is in
	// ("kill 0"), and the only signal that means something is the parent
	// death signal, told apart by the parent having changed.
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs)
	if os.Getppid() != server {
		return 1 // the server died before the supervisor got this far
	}
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		s.report("error cannot become a child subreaper: " + err.Error())
		return 1
	}
	sh, err := s.startShell(args[2])
	if err != nil {
		s.report("error " + err.Error())
		return 1
	}
	s.report("started " + strconv.Itoa(sh))

	shExit := make(chan syscall.WaitStatus, 1)
	noChildren := make(chan struct{})
	go reap(sh, shExit, noChildren)
	control := make(chan string)
	go readControl(os.NewFile(fdControl, "control"), control)

	for {
		select {
		case ws := <-shExit:
			s.reportExit(ws)
		case cmd, ok := <-control:
			switch {
			case !ok || cmd == "kill": // end of file: the server is gone
				s.killAll(shExit, noChildren)
				return 0
			case cmd == "term":
				s.signalAll(syscall.SIGTERM)
				s.signalAll(syscall.SIGCONT)
			}
		case <-sigs:
			if os.Getppid() != s.server {
				s.killAll(shExit, noChildren)
				return 0
			}
		}
	}
}

// startShell starts /bin/sh -c command with the job's pipes, in the job's
// cgroup if it has one, and in the supervisor's process group.
func (s *supervisor) startShell(command string) (int, error) {
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	sys := &syscall.SysProcAttr{}
	if s.cgroup != "" {
		dir, err := os.Open(s.cgroup)
		if err != nil {
			return 0, fmt.Errorf("open the job's cgroup: %w", err)
		}
		defer dir.Close()
		// The shell is born in the cgroup (clone3 CLONE_INTO_CGROUP), so
		// not even its first fork happens outside it.
		sys.UseCgroupFD, sys.CgroupFD = true, int(dir.Fd())
	}
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", command}, &syscall.ProcAttr{
		Env:   os.Environ(),
		Files: []uintptr{devnull.Fd(), fdJobStdout, fdJobStderr},
		Sys:   sys,
	})
	// The shell has its own copies; ours would keep the pipes from ever
	// reaching end of file.
	syscall.Close(fdJobStdout)
	syscall.Close(fdJobStderr)
	if err != nil {
		return 0, fmt.Errorf("fork/exec /bin/sh: %w", err)
	}
	return pid, nil
}

// reap waits for every child, the shell and the orphans reparented to the
// supervisor, passes on the shell's status, and closes noChildren when none
// is left. No child can appear after that: only a descendant could be
// reparented here.
func reap(sh int, shExit chan<- syscall.WaitStatus, noChildren chan<- struct{}) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			close(noChildren)
			return
		}
		if pid == sh {
			shExit <- ws
		}
	}
}

// readControl passes on the server's commands, one a line, and closes
// control at end of file.
func readControl(f *os.File, control chan<- string) {
	defer close(control)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		control <- strings.TrimSpace(sc.Text())
	}
}

func (s *supervisor) report(line string) {
	s.status.WriteString(line + "\n") // the server may be gone: nobody to tell
}

func (s *supervisor) reportExit(ws syscall.WaitStatus) {
	s.report("exit " + strconv.FormatUint(uint64(ws), 10))
}

// members lists the job's live processes: the supervisor's descendants and
// whatever is in the job's cgroup (a root process could move itself out of
// one of the two, hardly out of both).
func (s *supervisor) members() []int {
	ps := descendants(s.self)
	if s.cgroup != "" {
		ps = append(ps, cgroupProcs(s.cgroup)...)
	}
	return ps
}

// member is the check before each signal: pid still belongs to the job.
func (s *supervisor) member(pid int) bool {
	return pid != s.self && (isDescendant(pid, s.self) || (s.cgroup != "" && inCgroup(pid, s.cgroup)))
}

// signalAll sends sig to every process of the job: first to the process
// group at once (which the supervisor is in and ignores), then to each
// member, which reaches those that left the group.
func (s *supervisor) signalAll(sig syscall.Signal) {
	syscall.Kill(-s.self, sig)
	for _, pid := range s.members() {
		signalIf(pid, sig, s.member)
	}
}

// killAll kills every process of the job, waits until all are reaped and
// the cgroup is removed, reports the shell's status if that is still owed,
// and tells the server it is done. It gives up after killTimeout.
func (s *supervisor) killAll(shExit <-chan syscall.WaitStatus, noChildren <-chan struct{}) {
	deadline := time.Now().Add(killTimeout)
	if s.cgroup != "" {
		// Atomic: nothing in the cgroup can fork during the kill.
		if _, err := killCgroup(s.cgroup, deadline); err != nil {
			fmt.Fprintf(os.Stderr, "servicekit supervisor: %v\n", err)
		}
	}
	members := func() []int {
		select {
		case <-noChildren:
			// No child, so no descendant: skip the scan of /proc, which
			// is the common case of a job that left nothing behind.
			if s.cgroup == "" || !populated(s.cgroup) {
				return nil
			}
		default:
		}
		return s.members()
	}
	_, done := killUntilNone(members, s.member, deadline)
	select {
	case <-noChildren:
	case <-time.After(time.Until(deadline)):
		done = false
	}
	select {
	case ws := <-shExit:
		s.reportExit(ws)
	default:
	}
	if done {
		s.report("done")
	}
}

// inCgroup reports whether pid is in the cgroup directory dir or below it.
// The process's cgroup path is relative to its cgroup namespace while dir
// is a path in the mount, so they are compared by the job cgroup's name,
// which is unique (it holds the run's token).
func inCgroup(pid int, dir string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(b)) {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return strings.Contains(p+"/", "/"+filepath.Base(dir)+"/")
		}
	}
	return false
}
