package shell

// The supervisor: the server's own binary re-executed with superviseArg.
// It runs one job at a time, as the server asks over a unix socket: starts
// /bin/sh -c COMMAND, reports the shell's exit status, and kills every
// process of the job when the server says so or dies. See the package
// documentation, "Containment".

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// superviseArg, as argv[1], makes the binary a supervisor instead of
// whatever it would otherwise be (see init).
const superviseArg = "__servicekit_supervise"

// fdConn is the supervisor's end of its socket to the server.
const fdConn = 3

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
		// Not on init's own goroutine: during package initialization it
		// is locked to the main thread, which would turn each wakeup of the
		// supervisor into a handoff between threads.
		code := make(chan int)
		go func() { code <- supervise(os.Args[2:]) }()
		exit(<-code)
	}
}

// exit ends the supervisor at once. It is os.Exit without the race
// detector's exit pause (a second, by default, in a -race build), which
// would hold up every test that ends a race-built server; the supervisor
// has nothing to flush.
func exit(code int) {
	syscall.RawSyscall(syscall.SYS_EXIT_GROUP, uintptr(code), 0, 0)
}

// supervisor is the state of the supervisor process.
type supervisor struct {
	server int // the server's pid, this process's parent until the server dies
	self   int
	conn   *net.UnixConn
	msgs   <-chan received // from the server; closed when it is gone
	sigs   chan os.Signal  // signals that would end it
	chld   chan os.Signal  // SIGCHLD: a child to reap
}

// received is a message from the server with its descriptors.
type received struct {
	m   message
	fds []int
}

// supervise is the supervisor's main. Its argument is the server's pid.
func supervise(args []string) int {
	if len(args) != 1 {
		fmt.Fprintf(os.Stderr, "%s is internal to servicekit's shell jobs: only the server starts it\n", superviseArg)
		return 2
	}
	// One job at a time needs one thread: more only add wakeups and
	// handoffs between threads, which cost more than the supervisor's work.
	runtime.GOMAXPROCS(1)
	// The socket must not reach the shells: one would hold it open after
	// the server died.
	syscall.CloseOnExec(fdConn)
	server, _ := strconv.Atoi(args[0])
	s := &supervisor{server: server, self: os.Getpid(), sigs: make(chan os.Signal, 32), chld: make(chan os.Signal, 1)}

	// Every signal that would end the supervisor comes here instead; the
	// only one that means something is the parent death signal, told apart
	// by the parent having changed (Go also sends it when the server thread
	// that forked the supervisor ends).
	signal.Notify(s.sigs, endingSignals()...)
	// Children are reaped when SIGCHLD says one changed, not by a thread
	// blocked in wait4: a supervisor's cost is mostly its wakeups.
	signal.Notify(s.chld, syscall.SIGCHLD)
	if os.Getppid() != server {
		return 1 // the server died before the supervisor got this far
	}
	c, err := net.FileConn(os.NewFile(fdConn, "server"))
	if err != nil {
		fmt.Fprintf(os.Stderr, "servicekit supervisor: %v\n", err)
		return 1
	}
	s.conn = c.(*net.UnixConn)
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		s.send(message{Op: "error", Text: "cannot become a child subreaper: " + err.Error()})
		return 1
	}
	msgs := make(chan received)
	s.msgs = msgs
	go s.read(msgs)

	// The cgroup of the last job, reused by the next: an idle supervisor
	// whose server is gone removes it, as nobody else would until the next
	// server on this host sweeps.
	var cgroup string
	defer func() {
		if cgroup != "" {
			removeCgroup(cgroup)
		}
	}()
	for {
		select {
		case r, ok := <-s.msgs:
			if !ok {
				return 0 // the server is gone, and no job runs
			}
			if r.m.Op != "run" {
				closeAll(r.fds)
				continue
			}
			cgroup = r.m.Cgroup
			if !s.runJob(r) {
				return 0
			}
		case <-s.sigs:
			if s.serverGone() {
				return 0
			}
		}
	}
}

// endingSignals are the signals whose default action ends a process:
// those a supervisor must survive. SIGCHLD, SIGURG, SIGWINCH and SIGCONT
// are left out, so that they do not wake it for nothing.
func endingSignals() []os.Signal {
	sigs := []os.Signal{syscall.SIGHUP, syscall.SIGINT, syscall.SIGQUIT, syscall.SIGTERM, syscall.SIGUSR1,
		syscall.SIGUSR2, syscall.SIGPIPE, syscall.SIGALRM, syscall.SIGSTKFLT, syscall.SIGTSTP, syscall.SIGTTIN,
		syscall.SIGTTOU, syscall.SIGVTALRM, syscall.SIGXCPU, syscall.SIGXFSZ, syscall.SIGIO, syscall.SIGPWR,
		syscall.SIGABRT, syscall.SIGTRAP, syscall.SIGSYS}
	for rt := 34; rt <= 64; rt++ { // SIGRTMIN..SIGRTMAX
		sigs = append(sigs, syscall.Signal(rt))
	}
	return sigs
}

func (s *supervisor) read(msgs chan<- received) {
	defer close(msgs)
	for {
		m, fds, err := readMessage(s.conn)
		if err != nil {
			return
		}
		msgs <- received{m, fds}
	}
}

func (s *supervisor) send(m message) {
	writeMessage(s.conn, m) // the server may be gone: nobody to tell
}

// sendEnd tells the server the job is over: "done" when every process of
// it is gone, "dirty" when some outlived SIGKILL.
func (s *supervisor) sendEnd(done, cgroupRemoved bool) {
	if done {
		s.send(message{Op: "done", CgroupRemoved: cgroupRemoved})
	} else {
		s.send(message{Op: "dirty"})
	}
}

func (s *supervisor) serverGone() bool { return os.Getppid() != s.server }

// runJob runs one job to its end, and reports whether the supervisor can
// take another: not when the server is gone or a process outlived SIGKILL.
func (s *supervisor) runJob(r received) bool {
	sh, err := startShell(r.m, r.fds)
	closeAll(r.fds) // the shell has its own copies
	if err != nil {
		s.send(message{Op: "error", Text: err.Error()})
		return true
	}
	s.send(message{Op: "started", Pid: sh})
	j := &jobProcs{self: s.self, sh: sh, cgroup: r.m.Cgroup, chld: s.chld}
	termed := false // a cancel is under way: the server says when to kill
	for {
		select {
		case <-s.chld:
			if !j.reap() {
				continue
			}
			if !termed {
				// A job ends when its shell ends: kill what it left at
				// once, and report both, sparing the server a round trip.
				done := j.killAll()
				s.send(message{Op: "exit", Status: uint32(j.ws)})
				s.sendEnd(done, j.cgroupRemoved)
				return done
			}
			s.send(message{Op: "exit", Status: uint32(j.ws)})
		case r, ok := <-s.msgs:
			if ok {
				closeAll(r.fds)
			}
			switch {
			case !ok || r.m.Op == "kill": // end of file: the server is gone
				reported := j.shExited
				done := j.killAll()
				if !reported && j.shExited {
					s.send(message{Op: "exit", Status: uint32(j.ws)})
				}
				s.sendEnd(done, j.cgroupRemoved)
				return ok && done
			case r.m.Op == "term":
				termed = true
				j.signalAll(syscall.SIGTERM)
				j.signalAll(syscall.SIGCONT)
			}
		case <-s.sigs:
			if s.serverGone() {
				j.killAll()
				return false
			}
		}
	}
}

// startShell starts /bin/sh -c with the job's environment, directory and
// output descriptors, in a process group of its own, in the job's cgroup if
// it has one.
func startShell(m message, fds []int) (int, error) {
	if len(fds) != 2 {
		return 0, fmt.Errorf("the job's output descriptors did not arrive (%d of 2)", len(fds))
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return 0, err
	}
	defer devnull.Close()
	sys := &syscall.SysProcAttr{Setpgid: true}
	if m.Cgroup != "" {
		dir, err := os.Open(m.Cgroup)
		if err != nil {
			return 0, fmt.Errorf("open the job's cgroup: %w", err)
		}
		defer dir.Close()
		// The shell is born in the cgroup (clone3 CLONE_INTO_CGROUP), so
		// not even its first fork happens outside it.
		sys.UseCgroupFD, sys.CgroupFD = true, int(dir.Fd())
	}
	pid, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", m.Command}, &syscall.ProcAttr{
		Dir:   m.Dir,
		Env:   m.Env,
		Files: []uintptr{devnull.Fd(), uintptr(fds[0]), uintptr(fds[1])},
		Sys:   sys,
	})
	if err != nil {
		if m.Dir != "" {
			if _, serr := os.Stat(m.Dir); serr != nil {
				return 0, fmt.Errorf("chdir %s: %w", m.Dir, serr)
			}
		}
		return 0, fmt.Errorf("fork/exec /bin/sh: %w", err)
	}
	return pid, nil
}

// jobProcs are the processes of the job a supervisor runs: its descendants,
// and whatever is in the job's cgroup (a root process could move itself out
// of the one, hardly out of both).
type jobProcs struct {
	self   int    // the supervisor
	sh     int    // the shell, whose pid is the job's process group id
	cgroup string // "" without one
	chld   <-chan os.Signal

	shExited   bool               // the shell is reaped (its pid may be reused)
	ws         syscall.WaitStatus // its status, once shExited
	noChildren bool               // none is left: nor, then, any descendant

	cgroupRemoved bool // killAll had to kill the cgroup, and removed it (see emptyCgroup)
}

// reap reaps every child that exited, and reports whether the shell was
// among them.
func (j *jobProcs) reap() (shell bool) {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil: // ECHILD
			j.noChildren = true
			return shell
		case pid == 0: // the others still run
			return shell
		case pid == j.sh:
			j.ws, j.shExited, shell = ws, true, true
		}
	}
}

func (j *jobProcs) members() []int {
	ps := descendants(j.self)
	if j.cgroup != "" && !j.cgroupRemoved {
		ps = append(ps, cgroupProcs(j.cgroup)...)
	}
	return ps
}

// member is the check before each signal: pid still belongs to the job.
func (j *jobProcs) member(pid int) bool {
	return pid != j.self && (isDescendant(pid, j.self) || (j.cgroup != "" && inCgroup(pid, j.cgroup)))
}

// signalAll sends sig to every process of the job: first to its process
// group at once, while the shell (the group leader) is known not to be
// reaped, then to each member, which reaches those that left the group.
func (j *jobProcs) signalAll(sig syscall.Signal) {
	if !j.shExited {
		syscall.Kill(-j.sh, sig)
	}
	for _, pid := range j.members() {
		signalIf(pid, sig, j.member)
	}
}

// killAll kills every process of the job and waits until all are reaped
// and the cgroup is empty (it stays, for the supervisor's next job). It
// reports false if some outlived killTimeout.
func (j *jobProcs) killAll() bool {
	deadline := time.Now().Add(killTimeout)
	if j.cgroup != "" {
		// Atomic: nothing in the cgroup can fork during the kill.
		_, killed, err := emptyCgroup(j.cgroup, deadline)
		if err != nil {
			fmt.Fprintf(os.Stderr, "servicekit supervisor: %v\n", err)
		}
		if killed && err == nil {
			j.cgroupRemoved = removeCgroup(j.cgroup) == nil
		}
	}
	j.reap()
	members := func() []int {
		if j.noChildren {
			// No child, so no descendant: skip the scan of /proc, which
			// is the common case of a job that left nothing behind.
			if j.cgroup == "" || j.cgroupRemoved || !populated(j.cgroup) {
				return nil
			}
		}
		return j.members()
	}
	_, done := killUntilNone(members, j.member, deadline)
	// Killed children, and orphans reparented here as their parents die,
	// are reaped as their SIGCHLD comes.
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	for j.reap(); !j.noChildren; j.reap() {
		select {
		case <-j.chld:
		case <-t.C:
			return false
		}
	}
	return done
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
