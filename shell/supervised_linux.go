package shell

// The supervisors seen from the server: a pool of them, and a run handed to
// one (see supervise_linux.go for the other side).

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxIdleSupervisors bounds the supervisors kept for reuse. Starting one
// costs a few milliseconds (the server's binary is exec'ed again), as much
// as a trivial job, so they are reused; each idle one holds about 2 MB.
const maxIdleSupervisors = 8

// supervisorProc is a supervisor process, seen from the server.
type supervisorProc struct {
	cmd  *exec.Cmd
	conn *net.UnixConn
	msgs chan message // from the supervisor; closed when it is gone

	// cgroup is the supervisor's job cgroup, made at its first job in
	// cgroup mode and reused, emptied, job after job: a new cgroup per job
	// would cost more (about 0.15 ms) than a short job's fork and exec.
	cgroupMu sync.Mutex
	cgroup   string
}

var supervisorSeq atomic.Uint64

// cgroupIn returns the supervisor's cgroup in base, made on first use. Its
// name holds the server's pid (see sweepCgroups).
func (sp *supervisorProc) cgroupIn(base string) (string, error) {
	sp.cgroupMu.Lock()
	defer sp.cgroupMu.Unlock()
	if sp.cgroup != "" && filepath.Dir(sp.cgroup) == base {
		return sp.cgroup, nil
	}
	if sp.cgroup != "" {
		return "", errors.New("shell: a supervisor's cgroup is in another base directory")
	}
	cg := filepath.Join(base, fmt.Sprintf("sup.%d-%d", os.Getpid(), supervisorSeq.Add(1)))
	os.Mkdir(base, 0o755) // gone if someone removed it
	if err := makeCgroup(cg); err != nil {
		return "", err
	}
	sp.cgroup = cg
	return cg, nil
}

// idleSupervisors are supervisors between jobs.
var idleSupervisors struct {
	sync.Mutex
	list []*supervisorProc
}

// getSupervisor returns an idle supervisor (reused true), or starts one.
func getSupervisor() (sp *supervisorProc, reused bool, err error) {
	idleSupervisors.Lock()
	for len(idleSupervisors.list) > 0 {
		n := len(idleSupervisors.list) - 1
		sp := idleSupervisors.list[n]
		idleSupervisors.list = idleSupervisors.list[:n]
		if sp.alive() {
			idleSupervisors.Unlock()
			return sp, true, nil
		}
	}
	idleSupervisors.Unlock()
	sp, err = startSupervisor()
	return sp, false, err
}

// alive reports whether an idle supervisor still runs (its connection has
// not reached end of file).
func (sp *supervisorProc) alive() bool {
	select {
	case _, ok := <-sp.msgs:
		if !ok {
			return false
		}
		return true // a stray message from an idle supervisor: dropped
	default:
		return true
	}
}

// release gives the supervisor back for the next job if its last job ended
// cleanly; else it ends it.
func (sp *supervisorProc) release(clean bool) {
	if clean {
		idleSupervisors.Lock()
		if len(idleSupervisors.list) < maxIdleSupervisors {
			idleSupervisors.list = append(idleSupervisors.list, sp)
			idleSupervisors.Unlock()
			return
		}
		idleSupervisors.Unlock()
	}
	sp.conn.Close() // end of file: the supervisor exits; read reaps it
}

// startSupervisor starts a supervisor: this very binary again
// (/proc/self/exe is that even if its file was replaced since it started),
// in a process group of its own so that a terminal's Ctrl-C or a signal to
// the server's group misses it, with SIGTERM as parent death signal besides
// the end of file on its socket.
func startSupervisor() (*supervisorProc, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("shell: socketpair: %w", err)
	}
	ours, theirs := os.NewFile(uintptr(fds[0]), "supervisor"), os.NewFile(uintptr(fds[1]), "server")
	defer theirs.Close()
	c, err := net.FileConn(ours)
	ours.Close()
	if err != nil {
		theirs.Close()
		return nil, err
	}
	cmd := &exec.Cmd{
		Path: "/proc/self/exe",
		Args: []string{argv0(), superviseArg, strconv.Itoa(os.Getpid())},
		// Stdin and Stdout nil: /dev/null. Its own complaints go to the
		// server's log.
		Stderr:      os.Stderr,
		ExtraFiles:  []*os.File{theirs},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM},
	}
	if err := cmd.Start(); err != nil {
		c.Close()
		return nil, fmt.Errorf("shell: start a supervisor: %w", err)
	}
	sp := &supervisorProc{cmd: cmd, conn: c.(*net.UnixConn), msgs: make(chan message, 4)}
	go sp.read()
	return sp, nil
}

func (sp *supervisorProc) read() {
	for {
		m, fds, err := readMessage(sp.conn)
		closeAll(fds)
		if err != nil {
			break
		}
		sp.msgs <- m
	}
	close(sp.msgs)
	sp.conn.Close()
	sp.cmd.Wait()
	sp.cgroupMu.Lock()
	defer sp.cgroupMu.Unlock()
	if sp.cgroup != "" {
		killCgroup(sp.cgroup, time.Now().Add(killTimeout))
	}
}

// argv0 is the supervisor's argv[0]: the server's, so that ps shows whose
// supervisor it is.
func argv0() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		return os.Args[0]
	}
	return "servicekit"
}

// supervised is a run under a supervisor, seen from the server.
type supervised struct {
	sp     *supervisorProc
	exitCh chan struct{} // closed when the shell's status came, or the supervisor is gone
	ended  chan struct{} // closed when the supervisor is done with the job, or gone
	cgroup string
	token  string

	// Set by follow before it closes exitCh (ws) and ended (the rest).
	ws     syscall.WaitStatus
	haveWS bool
	clean  bool // the supervisor reported every process of the job gone

	termed   atomic.Bool // "term" was sent: the supervisor waits for "kill"
	killOnce sync.Once
}

// startTimeout bounds the wait for a supervisor to start the shell: it
// takes milliseconds, unless the binary is not one that can supervise.
const startTimeout = 30 * time.Second

// startSupervised hands the run to a supervisor and waits until it has
// started the shell, or failed to. An idle supervisor found dead at that
// moment (someone killed it) is replaced by a new one.
func startSupervised(c Cmd, env []string, stdout, stderr *os.File, cgroupBase, token string) (*supervised, error) {
	run := message{Op: "run", Command: c.Command, Env: env, Dir: c.Dir}
	for {
		sp, reused, err := getSupervisor()
		if err != nil {
			return nil, err
		}
		cg := ""
		if cgroupBase != "" {
			if cg, err = sp.cgroupIn(cgroupBase); err != nil {
				sp.release(false)
				return nil, err
			}
		}
		run.Cgroup = cg
		if err := writeMessage(sp.conn, run, int(stdout.Fd()), int(stderr.Fd())); err != nil {
			sp.release(false)
			if reused {
				continue
			}
			return nil, fmt.Errorf("shell: hand the job to a supervisor: %w", err)
		}
		t := time.NewTimer(startTimeout)
		var m message
		var ok bool
		select {
		case m, ok = <-sp.msgs:
		case <-t.C:
			// A binary that is not ours (the probe's case) may take the
			// arguments for something else and run on.
			syscall.Kill(sp.cmd.Process.Pid, syscall.SIGKILL)
		}
		t.Stop()
		switch {
		case ok && m.Op == "started":
			s := &supervised{sp: sp, exitCh: make(chan struct{}), ended: make(chan struct{}), cgroup: cg, token: token}
			go s.follow()
			return s, nil
		case ok && m.Op == "error":
			sp.release(true)
			return nil, errors.New("shell: " + m.Text)
		case !ok && reused:
			sp.release(false)
			continue
		}
		sp.release(false)
		return nil, fmt.Errorf("shell: the job's supervisor (%s %s) ended before it started the command", sp.cmd.Path, superviseArg)
	}
}

// follow reads the supervisor's messages about the job until it is done.
func (s *supervised) follow() {
	defer close(s.ended)
	for m := range s.sp.msgs {
		switch m.Op {
		case "exit":
			if !s.haveWS {
				s.ws, s.haveWS = syscall.WaitStatus(m.Status), true
				close(s.exitCh)
			}
		case "done", "dirty":
			s.clean = m.Op == "done"
			if m.CgroupRemoved {
				s.sp.cgroupMu.Lock()
				s.sp.cgroup = "" // the next job gets a new one
				s.sp.cgroupMu.Unlock()
			}
			if !s.haveWS {
				close(s.exitCh) // cannot happen: "exit" comes first
			}
			return
		}
	}
	// The supervisor is gone.
	if !s.haveWS {
		close(s.exitCh)
	}
}

func (s *supervised) exited() <-chan struct{} { return s.exitCh }

// send writes one command to the supervisor, waking it first in case
// someone stopped it.
func (s *supervised) send(op string) {
	syscall.Kill(s.sp.cmd.Process.Pid, syscall.SIGCONT)
	writeMessage(s.sp.conn, message{Op: op}) // fails if the supervisor is gone: kill's backstop acts
}

func (s *supervised) terminate() {
	s.termed.Store(true)
	s.send("term")
}

// supervisorTimeout bounds how long the server waits for a supervisor to
// kill its job after "kill" before it acts itself: the supervisor's own
// bound plus room.
const supervisorTimeout = killTimeout + 5*time.Second

func (s *supervised) kill() {
	s.killOnce.Do(func() {
		// Without a "term", a supervisor whose shell exited kills the rest
		// on its own (and is "ended" soon if not already).
		select {
		case <-s.exitCh:
			if s.termed.Load() || !s.haveWS {
				s.send("kill")
			}
		default:
			s.send("kill")
		}
		t := time.NewTimer(supervisorTimeout)
		defer t.Stop()
		select {
		case <-s.ended:
			if s.clean {
				return
			}
		case <-t.C:
			syscall.Kill(s.sp.cmd.Process.Pid, syscall.SIGKILL)
			<-s.ended
		}
		// The supervisor died (someone killed it), hangs, or could not kill
		// everything: kill whatever is left in the job's cgroup or carries
		// the run's token.
		deadline := time.Now().Add(killTimeout)
		if s.cgroup != "" {
			emptyCgroup(s.cgroup, deadline) // not reused: the supervisor is let go
		}
		kv := tokenEnv + "=" + s.token
		killUntilNone(func() []int { return withEnv(kv) }, func(pid int) bool { return hasEnv(pid, kv) }, deadline)
	})
}

func (s *supervised) wait() (Result, error) {
	s.sp.release(s.clean)
	if s.haveWS {
		return waitResult(s.ws), nil
	}
	return Result{ExitCode: -1}, errors.New("shell: the job's supervisor was killed before the command ended; the job's processes were killed")
}
