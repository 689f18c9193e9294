//go:build unix

package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultKillGrace is the time between SIGTERM and SIGKILL when Cmd.KillGrace is 0.
const DefaultKillGrace = 5 * time.Second

// outputDrainTimeout bounds how long Run waits, after the job's processes
// are gone, for the output pipes to reach end of file. Only a process that
// escaped containment can hold them open that long.
const outputDrainTimeout = time.Second

// drainLimit bounds the bytes read from a pipe that is still held open after
// outputDrainTimeout: enough for a full pipe buffer (the job's last words),
// not an endless stream from an escaped process.
const drainLimit = 1 << 20

// Cmd describes one run of a shell command line via /bin/sh -c.
type Cmd struct {
	Command   string            // passed to /bin/sh -c
	Env       map[string]string // added over the server's own environment (os.Environ()), key by key
	Dir       string            // working directory; "" = current
	Stdout    io.Writer         // may be nil (discard)
	Stderr    io.Writer         // may be nil (discard)
	KillGrace time.Duration     // time between SIGTERM and SIGKILL on cancel; 0 means DefaultKillGrace
}

// Result is how a run ended.
type Result struct {
	ExitCode int    // process exit status; -1 when killed by a signal or never started
	Signal   string // e.g. "SIGTERM", "SIGKILL" when the shell was killed by a signal; else ""
}

// ErrorText returns the text a failed job records as its error: "" for exit
// status 0, "exit status 3", or "killed by signal SIGKILL". It is a string
// rather than an error because a failing command is a normal outcome of a
// job, not a failure of the runner.
func (r Result) ErrorText() string {
	switch {
	case r.Signal != "":
		return "killed by signal " + r.Signal
	case r.ExitCode < 0:
		return "not started"
	case r.ExitCode != 0:
		return "exit status " + strconv.Itoa(r.ExitCode)
	}
	return ""
}

// Run starts the command, waits for it to finish and for its output to be
// delivered, and reports how it ended. When ctx is done the job's processes
// are terminated as the package documentation describes: Run returns once
// they are gone, at most about KillGrace after cancellation, and ctx.Err()
// tells the caller why it ended. Every process the command started is
// killed when Run returns (see "Containment").
//
// Run returns an error only when the command could not be run: the context
// was already done, Env is invalid, /bin/sh or Dir is missing, or its exit
// status could not be collected. A non-zero exit or death by signal is
// reported in Result, with a nil error.
func (c Cmd) Run(ctx context.Context) (Result, error) {
	if err := ctx.Err(); err != nil {
		return Result{ExitCode: -1}, err
	}
	return c.run(ctx, active())
}

// run is Run with the containment k.
func (c Cmd) run(ctx context.Context, k *containment) (Result, error) {
	notRun := Result{ExitCode: -1}
	if err := ctx.Err(); err != nil {
		return notRun, err
	}
	env, err := c.environ()
	if err != nil {
		return notRun, err
	}

	var copiers []*copier
	closeAll := func() {
		for _, cp := range copiers {
			cp.r.Close()
			cp.w.Close()
		}
	}
	stdout, copiers, err := attach(c.Stdout, copiers)
	stderr := stdout
	if err == nil && !sameWriter(c.Stdout, c.Stderr) {
		stderr, copiers, err = attach(c.Stderr, copiers)
	}
	if err != nil {
		closeAll()
		return notRun, err
	}
	p, err := k.start(c, env, stdout, stderr)
	if err != nil {
		closeAll()
		return notRun, err
	}

	// The child has its own copies of the write ends; ours must go, or the
	// pipes would never reach end of file.
	var copying sync.WaitGroup
	for _, cp := range copiers {
		cp.w.Close()
		copying.Go(cp.run)
	}

	outputDone := make(chan struct{})
	go func() {
		copying.Wait()
		close(outputDone)
	}()

	watching := make(chan struct{})
	go func() {
		defer close(watching)
		select {
		case <-p.exited():
			return // normal exit: the kill below ends the rest
		case <-ctx.Done():
		}
		p.terminate()
		grace := c.KillGrace
		if grace <= 0 {
			grace = DefaultKillGrace
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		// The shell usually dies of the SIGTERM at once while its children
		// are still cleaning up. Let them finish: wait for the shell and for
		// every holder of the output pipes, not just the shell.
		for exited, outputDone := p.exited(), outputDone; exited != nil || outputDone != nil; {
			select {
			case <-exited:
				exited = nil
			case <-outputDone:
				outputDone = nil
			case <-t.C:
				p.kill()
				return
			}
		}
	}()

	<-p.exited()
	<-watching
	p.kill() // the orphans; nothing to do when none are left
	res, err := p.wait()

	// With the job's processes gone the pipes reach end of file at once,
	// unless a process that escaped containment holds them: bound the wait
	// for that case.
	deadline := time.Now().Add(outputDrainTimeout)
	for _, cp := range copiers {
		cp.r.SetReadDeadline(deadline)
	}
	copying.Wait()
	for _, cp := range copiers {
		cp.r.Close()
	}
	return res, err
}

func result(ps *os.ProcessState) Result {
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok {
		return waitResult(ws)
	}
	return Result{ExitCode: ps.ExitCode()}
}

func waitResult(ws syscall.WaitStatus) Result {
	if ws.Signaled() {
		return Result{ExitCode: -1, Signal: signalName(ws.Signal())}
	}
	return Result{ExitCode: ws.ExitStatus()}
}

// environ merges c.Env over os.Environ. exec.Cmd would take the last of
// duplicate keys anyway; merging here keeps the child's environment free of
// duplicates and lets invalid names fail with a clear error.
func (c Cmd) environ() ([]string, error) {
	base := os.Environ()
	env := make([]string, 0, len(base)+len(c.Env)+1)
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if _, ok := c.Env[k]; ok {
			continue
		}
		if k == "PWD" && c.Dir != "" {
			continue // replaced below, as exec.Cmd does when it builds the environment
		}
		env = append(env, kv)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		v := c.Env[k]
		if k == "" || strings.ContainsAny(k, "=\x00") {
			return nil, fmt.Errorf("shell: invalid environment variable name %q", k)
		}
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("shell: environment variable %s contains a NUL byte", k)
		}
		env = append(env, k+"="+v)
	}
	if _, ok := c.Env["PWD"]; !ok && c.Dir != "" {
		// A stale PWD would make the shell's $PWD name the server's
		// directory instead of Dir.
		if abs, err := filepath.Abs(c.Dir); err == nil {
			env = append(env, "PWD="+abs)
		}
	}
	return env, nil
}

// sameWriter reports whether a and b are the same writer, so one pipe can
// serve both streams; two nils count as the same (discard). Writers whose
// dynamic type is not comparable are treated as different.
func sameWriter(a, b io.Writer) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

// attach returns the write end of a new pipe for the child, appending a
// copier from its read end to w (io.Discard when nil). Even an *os.File or
// a nil writer gets a pipe: the pipe reaching end of file is how Run learns
// that every process that could still write output is gone.
func attach(w io.Writer, copiers []*copier) (*os.File, []*copier, error) {
	if w == nil {
		w = io.Discard
	}
	r, pw, err := os.Pipe()
	if err != nil {
		return nil, copiers, err
	}
	return pw, append(copiers, &copier{r: r, w: pw, dst: w}), nil
}

// copier moves one stream from the pipe's read end r to dst.
type copier struct {
	r   *os.File  // read end, ours
	w   *os.File  // write end, the child's; closed by Run once the child has it
	dst io.Writer // where the output goes
	bad bool      // dst failed; discard the rest
}

func (cp *copier) write(p []byte) {
	if cp.bad {
		return
	}
	if _, err := cp.dst.Write(p); err != nil {
		cp.bad = true
	}
}

// run copies until end of file. When Run's read deadline expires because an
// escaped process holds the pipe open, run takes what the pipe already holds
// without waiting for more, then stops.
func (cp *copier) run() {
	buf := make([]byte, 32<<10)
	for {
		n, err := cp.r.Read(buf)
		if n > 0 {
			cp.write(buf[:n])
		}
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			cp.drain(buf)
		}
		return
	}
}

// drain reads, without blocking, whatever is buffered in the pipe, up to
// drainLimit bytes. The read end of an os.Pipe is non-blocking underneath, so
// a raw read returns EAGAIN rather than waiting.
func (cp *copier) drain(buf []byte) {
	cp.r.SetReadDeadline(time.Time{})
	rc, err := cp.r.SyscallConn()
	if err != nil {
		return
	}
	rc.Read(func(fd uintptr) bool {
		for left := drainLimit; left > 0; {
			n, err := syscall.Read(int(fd), buf[:min(len(buf), left)])
			if n <= 0 || err != nil {
				break
			}
			cp.write(buf[:n])
			left -= n
		}
		return true
	})
}
