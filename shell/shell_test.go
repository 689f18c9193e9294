//go:build unix

package shell

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/servicekit/servicekit/internal/output"
)

// run runs c with a generous timeout so a broken Run fails the test instead
// of hanging it.
func run(t *testing.T, c Cmd) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := c.Run(ctx)
	if err != nil {
		t.Fatalf("Run(%q): %v", c.Command, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("Run(%q) hit the test timeout", c.Command)
	}
	return res
}

func TestExitStatus(t *testing.T) {
	tests := []struct {
		command string
		want    Result
		text    string
	}{
		{"true", Result{ExitCode: 0}, ""},
		{"exit 0", Result{ExitCode: 0}, ""},
		{"exit 3", Result{ExitCode: 3}, "exit status 3"},
		{"false", Result{ExitCode: 1}, "exit status 1"},
		{"no-such-command-servicekit", Result{ExitCode: 127}, "exit status 127"},
		{"kill -USR1 $$", Result{ExitCode: -1, Signal: "SIGUSR1"}, "killed by signal SIGUSR1"},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			got := run(t, Cmd{Command: tt.command})
			if got != tt.want {
				t.Errorf("Result = %+v, want %+v", got, tt.want)
			}
			if text := got.ErrorText(); text != tt.text {
				t.Errorf("ErrorText = %q, want %q", text, tt.text)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		r    Result
		want string
	}{
		{Result{}, ""},
		{Result{ExitCode: 3}, "exit status 3"},
		{Result{ExitCode: -1, Signal: "SIGKILL"}, "killed by signal SIGKILL"},
		{Result{ExitCode: -1}, "not started"},
	}
	for _, tt := range tests {
		if got := tt.r.ErrorText(); got != tt.want {
			t.Errorf("%+v.ErrorText() = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestEnvMerge(t *testing.T) {
	t.Setenv("SERVICEKIT_TEST_OVERRIDE", "server")
	t.Setenv("SERVICEKIT_TEST_KEEP", "kept")
	var out bytes.Buffer
	res := run(t, Cmd{
		Command: `printf '%s|%s|%s|' "$SERVICEKIT_TEST_OVERRIDE" "$SERVICEKIT_TEST_KEEP" "$SERVICEKIT_TEST_NEW"
env | grep -c '^SERVICEKIT_TEST_OVERRIDE='`,
		Env:    map[string]string{"SERVICEKIT_TEST_OVERRIDE": "task", "SERVICEKIT_TEST_NEW": "new value"},
		Stdout: &out,
	})
	if res.ExitCode != 0 {
		t.Fatalf("Result = %+v", res)
	}
	// The count of 1 shows the override replaced the variable rather than
	// adding a second one that the shell happened to prefer.
	if got, want := out.String(), "task|kept|new value|1\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestEnvInvalid(t *testing.T) {
	for _, env := range []map[string]string{
		{"A=B": "x"},
		{"": "x"},
		{"A\x00": "x"},
		{"A": "x\x00y"},
	} {
		res, err := Cmd{Command: "true", Env: env}.Run(t.Context())
		if err == nil {
			t.Errorf("Env %q: Run succeeded", env)
		}
		if res.ExitCode != -1 {
			t.Errorf("Env %q: ExitCode = %d, want -1", env, res.ExitCode)
		}
	}
}

func TestDir(t *testing.T) {
	dir := t.TempDir()
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	run(t, Cmd{Command: `pwd -P; echo "$PWD"`, Dir: dir, Stdout: &out})
	if got, want := out.String(), real+"\n"+dir+"\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestNotStarted(t *testing.T) {
	res, err := Cmd{Command: "true", Dir: filepath.Join(t.TempDir(), "missing")}.Run(t.Context())
	if err == nil || res.ExitCode != -1 {
		t.Errorf("missing Dir: Run = %+v, %v; want ExitCode -1 and an error", res, err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	res, err = Cmd{Command: "true"}.Run(ctx)
	if !errors.Is(err, context.Canceled) || res.ExitCode != -1 {
		t.Errorf("canceled ctx: Run = %+v, %v; want ExitCode -1 and context.Canceled", res, err)
	}
}

func TestStdoutStderrSeparated(t *testing.T) {
	var stdout, stderr bytes.Buffer
	run(t, Cmd{Command: "echo out1; echo err1 >&2; echo out2; echo err2 >&2", Stdout: &stdout, Stderr: &stderr})
	if got := stdout.String(); got != "out1\nout2\n" {
		t.Errorf("stdout = %q", got)
	}
	if got := stderr.String(); got != "err1\nerr2\n" {
		t.Errorf("stderr = %q", got)
	}
}

// TestSameWriter checks that one writer for both streams gets them through
// one pipe: in order, and (under -race) never from two goroutines at once.
func TestSameWriter(t *testing.T) {
	var out bytes.Buffer
	run(t, Cmd{Command: "for i in 1 2 3 4 5; do echo o$i; echo e$i >&2; done", Stdout: &out, Stderr: &out})
	if got, want := out.String(), "o1\ne1\no2\ne2\no3\ne3\no4\ne4\no5\ne5\n"; got != want {
		t.Errorf("output = %q, want %q", got, want)
	}
}

func TestNilWriters(t *testing.T) {
	if res := run(t, Cmd{Command: "echo out; echo err >&2; exit 4"}); res.ExitCode != 4 {
		t.Errorf("Result = %+v", res)
	}
}

func TestFileWriter(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "out"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	run(t, Cmd{Command: "echo to file", Stdout: f})
	b, err := os.ReadFile(f.Name())
	if err != nil || string(b) != "to file\n" {
		t.Errorf("file = %q, %v", b, err)
	}
}

func TestStdinDevNull(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd/0"); err != nil {
		t.Skip("no /proc")
	}
	var out bytes.Buffer
	run(t, Cmd{Command: "cat; readlink /proc/self/fd/0", Stdout: &out})
	if got := out.String(); got != "/dev/null\n" {
		t.Errorf("stdin is %q, want /dev/null", got)
	}
}

func TestOutputComplete(t *testing.T) {
	var out, want bytes.Buffer
	for i := 1; i <= 100000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	res := run(t, Cmd{Command: "seq 1 100000; seq 1 100000 >&2", Stdout: &out, Stderr: &out})
	if res.ExitCode != 0 {
		t.Fatalf("Result = %+v", res)
	}
	if twice := want.String() + want.String(); out.String() != twice {
		t.Errorf("got %d bytes, want %d", out.Len(), len(twice))
	}
}

// slowWriter stalls on its first write, longer than outputDrainTimeout, as
// a writer storing output in a busy database might.
type slowWriter struct {
	buf   bytes.Buffer
	once  sync.Once
	stall time.Duration
}

func (w *slowWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { time.Sleep(w.stall) })
	return w.buf.Write(p)
}

// TestOutputCompleteSlowWriter checks that output still sitting in the pipe
// when the drain deadline passes is delivered, not dropped.
func TestOutputCompleteSlowWriter(t *testing.T) {
	w := &slowWriter{stall: outputDrainTimeout + 500*time.Millisecond}
	// About 50 KB: fits in the pipe buffer, so the shell exits at once.
	res := run(t, Cmd{Command: "seq 1 10000", Stdout: w})
	if res.ExitCode != 0 {
		t.Fatalf("Result = %+v", res)
	}
	var want bytes.Buffer
	for i := 1; i <= 10000; i++ {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if w.buf.String() != want.String() {
		t.Errorf("got %d bytes, want %d", w.buf.Len(), want.Len())
	}
}

// waitForFile polls until path has content, as a way to know a command got
// past some point, and returns the content.
func waitForFile(t *testing.T, path string) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil && strings.HasSuffix(string(b), "\n") {
			return strings.TrimSpace(string(b))
		}
	}
	t.Fatalf("%s was not written", path)
	return ""
}

// alive reports whether pid is a running process. A zombie counts as dead:
// once reparented, reaping is up to init, which in a container may never do
// it.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err)
	}
	// The state follows the parenthesized command name.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

// assertDies fails the test unless pid is gone within 2s, and kills it if
// not so that a failing test leaves nothing behind.
func assertDies(t *testing.T, pid int) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !alive(pid) {
			return
		}
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("process %d still running after Run returned", pid)
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || n <= 0 {
		t.Fatalf("bad pid %q", s)
	}
	return n
}

func TestCancelSIGTERM(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := Cmd{Command: "sleep 30"}.Run(ctx)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if res.Signal != "SIGTERM" || res.ExitCode != -1 || res.ErrorText() != "killed by signal SIGTERM" {
		t.Errorf("Result = %+v (%q), want killed by SIGTERM", res, res.ErrorText())
	}
	// Well under DefaultKillGrace, so it was not the SIGKILL that ended it.
	if elapsed > 3*time.Second {
		t.Errorf("Run took %v after cancel", elapsed)
	}
}

func TestCancelIgnoredTERMGetsSIGKILL(t *testing.T) {
	ready := make(chan struct{}, 1)
	lines := output.NewLines(0, func(line string) {
		if line == "ready" {
			ready <- struct{}{}
		}
	})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const grace = 300 * time.Millisecond
	type ran struct {
		res Result
		err error
		at  time.Time
	}
	done := make(chan ran, 1)
	go func() {
		res, err := Cmd{Command: "trap '' TERM; echo ready; sleep 30", Stdout: lines, KillGrace: grace}.Run(ctx)
		done <- ran{res, err, time.Now()}
	}()
	select {
	case <-ready: // the trap is set; a SIGTERM now would be ignored
	case <-time.After(10 * time.Second):
		t.Fatal("command never got ready")
	}
	canceled := time.Now()
	cancel()
	var r ran
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if r.res.Signal != "SIGKILL" || r.res.ErrorText() != "killed by signal SIGKILL" {
		t.Errorf("Result = %+v, want killed by SIGKILL", r.res)
	}
	if took := r.at.Sub(canceled); took < grace || took > grace+3*time.Second {
		t.Errorf("killed %v after cancel, want just after KillGrace %v", took, grace)
	}
}

func TestCancelKillsProcessTree(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		// A grandchild of the job's shell that holds the job's stdout.
		_, err := Cmd{
			Command: fmt.Sprintf(`sh -c 'sleep 300 & echo $! > %s; wait'`, pidfile),
			Stdout:  &out,
		}.Run(ctx)
		done <- err
	}()
	pid := atoi(t, waitForFile(t, pidfile))
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("Run did not return after cancel")
	}
	assertDies(t, pid)
}

func TestExitKillsOrphans(t *testing.T) {
	var out bytes.Buffer
	start := time.Now()
	// The background sleep inherits stdout and ignores SIGTERM; the shell exits at once.
	res := run(t, Cmd{Command: "trap '' TERM; sleep 300 & echo $!", Stdout: &out})
	elapsed := time.Since(start)
	pid := atoi(t, out.String())
	assertDies(t, pid)
	if res.ExitCode != 0 {
		t.Errorf("Result = %+v", res)
	}
	// Returning by the drain timeout would mean Run waited on the orphan's
	// pipe instead of killing it.
	if elapsed >= outputDrainTimeout/2 {
		t.Errorf("Run took %v", elapsed)
	}
}

func TestLargeOutputThroughTail(t *testing.T) {
	const limit = 1 << 20
	tail := output.NewTail(limit)
	res := run(t, Cmd{Command: "head -c 100000000 /dev/zero", Stdout: tail})
	if res.ExitCode != 0 {
		t.Fatalf("Result = %+v", res)
	}
	if got := len(tail.Bytes()); got != limit {
		t.Errorf("tail holds %d bytes, want %d", got, limit)
	}
	if !tail.Truncated() {
		t.Error("Truncated = false")
	}
	if got := tail.Total(); got != 100_000_000 {
		t.Errorf("Total = %d, want 100000000", got)
	}
}

// TestParallelRuns runs jobs side by side, as the job service does, to check
// that group kills and pipes of one run never touch another.
func TestParallelRuns(t *testing.T) {
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			var out bytes.Buffer
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			res, err := Cmd{Command: fmt.Sprintf("sleep 0.0%d; echo %d; exit %d", i%10, i, i), Stdout: &out}.Run(ctx)
			if err != nil || res.ExitCode != i || out.String() != fmt.Sprintf("%d\n", i) {
				t.Errorf("run %d: %+v, %v, %q", i, res, err, out.String())
			}
		})
	}
	wg.Wait()
}

func BenchmarkRunTrue(b *testing.B) {
	var out bytes.Buffer
	for b.Loop() {
		if _, err := (Cmd{Command: "true", Stdout: &out, Stderr: &out}).Run(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBareForkExec(b *testing.B) {
	var out bytes.Buffer
	for b.Loop() {
		cmd := exec.Command("/bin/sh", "-c", "true")
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCancelTERMReachesChildren checks that SIGTERM goes to the whole group,
// so children get the chance to clean up that SIGKILL would deny them.
func TestCancelTERMReachesChildren(t *testing.T) {
	dir := t.TempDir()
	ready, termed := filepath.Join(dir, "ready"), filepath.Join(dir, "termed")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Cmd{Command: fmt.Sprintf(`(trap 'echo yes > %s; exit' TERM; echo 1 > %s; while :; do sleep 0.05; done) & wait`, termed, ready)}.Run(ctx)
		done <- err
	}()
	waitForFile(t, ready)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(termed); err != nil || string(b) != "yes\n" {
		t.Errorf("child did not handle SIGTERM: %q, %v", b, err)
	}
}

// TestCancelKillsTERMIgnoringChild checks the grace period still ends in
// SIGKILL when the shell dies of SIGTERM but a child ignores it.
func TestCancelKillsTERMIgnoringChild(t *testing.T) {
	pidfile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	const grace = 300 * time.Millisecond
	done := make(chan Result, 1)
	go func() {
		res, err := Cmd{
			// The child writes its pid only once its trap is set.
			Command:   fmt.Sprintf(`sh -c 'trap "" TERM; echo $$ > %s; exec sleep 300' & wait`, pidfile),
			KillGrace: grace,
		}.Run(ctx)
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	pid := atoi(t, waitForFile(t, pidfile))
	canceled := time.Now()
	cancel()
	select {
	case res := <-done:
		if took := time.Since(canceled); took < grace {
			t.Errorf("Run returned %v after cancel, before KillGrace %v", took, grace)
		}
		if res.Signal != "SIGTERM" {
			t.Errorf("Result = %+v, want the shell killed by SIGTERM", res)
		}
	case <-time.After(10 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("Run did not return after cancel")
	}
	assertDies(t, pid)
}
