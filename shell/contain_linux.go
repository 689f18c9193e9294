package shell

// Containment on Linux: which mode is active, how a run is started in it,
// and KillStrays. See the package documentation, "Containment".

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// containment is how runs are started and their processes found.
type containment struct {
	mode       string   // ContainCgroup or ContainSubreaper
	supervisor bool     // runs are handed to supervisors
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
// host: ContainCgroup or ContainSubreaper (see the package documentation).
// The first call detects it, which runs a few short probe jobs, and logs it
// through slog.Default.
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
	base := ""
	if k.mode == ContainCgroup {
		base = k.cgroupBase
	}
	if k.supervisor {
		return startSupervised(c, env, stdout, stderr, base, token)
	}
	var cg string
	if base != "" {
		// Without a supervisor, a cgroup for the run alone.
		prefix, _ := cgroupPrefix(c.Env[JobIDEnv])
		cg = filepath.Join(base, prefix+token)
		if err := makeCgroup(cg); err != nil {
			return nil, err
		}
	}
	p, err := startDirect(c, env, stdout, stderr, cg, token)
	if err != nil && cg != "" {
		syscall.Rmdir(cg)
	}
	return p, err
}

// KillStrays kills every process on this host whose environment holds
// SERVICEKIT_JOB_ID=jobID, and what is left in the job cgroups of servers
// that no longer run (which can only hold jobs that died with them), and
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
	if k.cgroupBase != "" {
		total += sweepCgroups(k.cgroupBase)
		// A run started without a supervisor has a cgroup named after its job.
		if prefix, ok := cgroupPrefix(jobID); ok {
			entries, _ := os.ReadDir(k.cgroupBase)
			for _, e := range entries {
				if e.IsDir() && strings.HasPrefix(e.Name(), prefix) {
					n, err := killCgroup(filepath.Join(k.cgroupBase, e.Name()), deadline)
					total += n
					errs = append(errs, err)
				}
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
// running left behind (a supervisor that dies with its server empties its
// cgroup but may not get to remove it), killing what is still in them, and
// returns how many processes it killed. A cgroup's name holds its server's
// pid ("sup.PID-N", or "JOBID.PID-N-R" without a supervisor); a cgroup
// whose server runs is never touched.
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
