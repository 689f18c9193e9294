package main

// These tests run the real servicekit binary: they build it, start it on a
// real SQLite file, talk HTTP to it and kill it with SIGKILL.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/servicekit once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "servicekit-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "servicekit")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	logs *bytes.Buffer
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the binary with args and waits until /health answers.
func start(t *testing.T, db string, args ...string) *server {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(binary(t), append([]string{"serve", "--addr", addr, "--database", "sqlite:///" + db}, args...)...)
	logs := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, cmd: cmd, url: "http://" + addr, logs: logs}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if res, err := http.Get(s.url + "/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return s
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("server did not come up:\n%s", logs)
	return nil
}

func (s *server) call(method, path string, body any, out any) int {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.url+path, rd)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, b)
		}
	}
	return res.StatusCode
}

type jobRec struct {
	ID         string  `json:"id"`
	Status     string  `json:"status"`
	Error      *string `json:"error"`
	Attempt    int     `json:"attempt"`
	ArtifactID *string `json:"artifact_id"`
}

func (s *server) task(body map[string]any) string {
	var t struct{ ID string }
	if code := s.call("POST", "/api/v1/tasks", body, &t); code != 201 {
		s.t.Fatalf("create task: %d", code)
	}
	return t.ID
}

func (s *server) execute(taskID string) string {
	var a struct {
		JobID string `json:"job_id"`
	}
	if code := s.call("POST", "/api/v1/tasks/"+taskID+"/$execute", nil, &a); code != 202 {
		s.t.Fatalf("execute: %d", code)
	}
	return a.JobID
}

func (s *server) job(id string) jobRec {
	var j jobRec
	if code := s.call("GET", "/api/v1/jobs/"+id, nil, &j); code != 200 {
		s.t.Fatalf("get job %s: %d", id, code)
	}
	return j
}

// waitFor polls the job until cond holds (tests only; the product never polls).
func (s *server) waitFor(id string, within time.Duration, cond func(jobRec) bool) jobRec {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		j := s.job(id)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s stuck at %+v\n%s", id, j, s.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func terminal(j jobRec) bool {
	return j.Status == "completed" || j.Status == "failed" || j.Status == "canceled"
}

// TestCrashLosesNothing kills the server with SIGKILL while jobs run and
// wait, restarts it on the same database, and finds every accepted job:
// the pending ones completed, the running ones failed with a clear error
// (or retried and completed, when the task allows retries), none stuck.
func TestCrashLosesNothing(t *testing.T) {
	db := filepath.Join(t.TempDir(), "crash.db")
	s := start(t, db, "--max-concurrency", "2")
	once := s.task(map[string]any{"command": "sleep 0.5; echo done"})
	retried := s.task(map[string]any{"command": "sleep 0.5; echo done", "retries": 1})
	var accepted []string
	for i := range 10 {
		if i%2 == 0 {
			accepted = append(accepted, s.execute(once))
		} else {
			accepted = append(accepted, s.execute(retried))
		}
	}
	running := map[string]bool{}
	s.waitFor(accepted[0], 10*time.Second, func(j jobRec) bool { return j.Status == "running" })
	for _, id := range accepted {
		if s.job(id).Status == "running" {
			running[id] = true
		}
	}
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.cmd.Wait()

	s2 := start(t, db, "--max-concurrency", "2")
	for _, id := range accepted {
		j := s2.waitFor(id, 60*time.Second, terminal)
		switch {
		case !running[id]:
			if j.Status != "completed" || j.Attempt != 1 {
				t.Errorf("pending job %s: %+v", id, j)
			}
		case j.Status == "failed":
			if j.Error == nil || !strings.Contains(*j.Error, "stopped while running") {
				t.Errorf("running job %s failed without a clear error: %+v", id, j)
			}
		case j.Status == "completed":
			if j.Attempt != 2 {
				t.Errorf("running job %s completed on attempt %d, want a retry", id, j.Attempt)
			}
		default:
			t.Errorf("job %s: %+v", id, j)
		}
		if j.ArtifactID == nil {
			t.Errorf("job %s has no artifact", id)
		}
	}
	if len(running) == 0 {
		t.Fatal("no job was running at the kill; the test proved nothing")
	}
}

// TestCancelKillsProcessTree cancels a shell job whose command started a
// background child; the child must not survive.
func TestCancelKillsProcessTree(t *testing.T) {
	dir := t.TempDir()
	s := start(t, filepath.Join(dir, "t.db"))
	pidfile := filepath.Join(dir, "child.pid")
	id := s.execute(s.task(map[string]any{"command": fmt.Sprintf("sleep 300 & echo $! > %s; wait", pidfile)}))
	var pid int
	deadline := time.Now().Add(10 * time.Second)
	for pid == 0 {
		b, _ := os.ReadFile(pidfile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		if time.Now().After(deadline) {
			t.Fatal("child never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var j jobRec
	if code := s.call("POST", "/api/v1/jobs/"+id+"/$cancel", nil, &j); code != 200 || j.Status != "canceled" {
		t.Fatalf("cancel: %d %+v", code, j)
	}
	deadline = time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("background child %d survived the cancel", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// alive reports whether pid runs (a zombie does not count: nobody may reap
// orphans in a container whose init does not).
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return !(i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z')
}

// TestHugeOutputStaysBounded runs shell jobs printing 100 MB (long lines,
// and many short ones) and checks the server's peak memory stays bounded
// and the artifact holds the tail.
func TestHugeOutputStaysBounded(t *testing.T) {
	s := start(t, filepath.Join(t.TempDir(), "t.db"))
	for _, cmd := range []string{
		`head -c 100000000 /dev/zero | tr '\0' 'x'; echo; echo THE-END`,
		`yes 0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghij | head -c 100000000; echo THE-END`,
	} {
		id := s.execute(s.task(map[string]any{"command": cmd}))
		j := s.waitFor(id, 120*time.Second, terminal)
		if j.Status != "completed" {
			t.Fatalf("%s: %+v", cmd, j)
		}
		var a struct {
			Data struct {
				Stdout    string `json:"stdout"`
				Truncated bool   `json:"stdout_truncated"`
			} `json:"data"`
		}
		s.call("GET", "/api/v1/artifacts/"+*j.ArtifactID, nil, &a)
		if len(a.Data.Stdout) != 1<<20 || !a.Data.Truncated || !strings.HasSuffix(a.Data.Stdout, "THE-END\n") {
			t.Fatalf("tail: %d bytes, truncated %v, ends %q", len(a.Data.Stdout), a.Data.Truncated, a.Data.Stdout[max(0, len(a.Data.Stdout)-20):])
		}
	}
	status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	for line := range strings.Lines(string(status)) {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			t.Logf("server peak RSS %d MiB after 200 MB of output", kb/1024)
			if kb > 150*1024 {
				t.Fatalf("server peak RSS %d KiB: output is not bounded", kb)
			}
		}
	}
}

// runBinary runs the servicekit binary with args and returns its exit
// status and output.
func runBinary(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(binary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SERVICEKIT_URL=", "SERVICEKIT_DATABASE_URL=", "SERVICEKIT_ADDR=")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// TestExitStatuses checks the statuses the real process exits with (the
// cli package tests check the same through its functions; this is the
// os.Exit at the end).
func TestExitStatuses(t *testing.T) {
	dir := t.TempDir()
	s := start(t, filepath.Join(dir, "t.db"))
	failing := s.task(map[string]any{"command": "exit 5"})
	greet := s.task(map[string]any{"command": "echo hi"})
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"task", "bogus"}, 2, `unknown command "bogus" for "servicekit task"`},
		{[]string{"task", "get", "--server", s.url, "01ARZ3NDEKTSV4RRFFQ69G5FAV"}, 2, "servicekit: Not Found: "},
		{[]string{"job", "list", "--server", "http://" + freeAddr(t)}, 3, "cannot reach the servicekit server"},
		{[]string{"task", "run", "--server", s.url, failing, "--wait"}, 5, "failed in "},
		{[]string{"task", "run", "--server", s.url, strings.ToLower(greet), "--follow"}, 0, "completed in "},
		{[]string{"task"}, 0, ""},
	} {
		code, _, stderr := runBinary(t, dir, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) {
			t.Errorf("servicekit %v: exit %d, want %d; stderr %q, want %q in it", c.args, code, c.code, stderr, c.want)
		}
	}
}

// TestServePortInUseBinary: a second server on a busy port exits 1 at once
// with a hint, and leaves no ./servicekit.db behind.
func TestServePortInUseBinary(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	code, _, stderr := runBinary(t, dir, "serve", "--addr", busy.Addr().String())
	if code != 1 || !strings.Contains(stderr, "already in use") || !strings.Contains(stderr, "SERVICEKIT_ADDR") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("serve left files behind: %v", entries)
	}
}

// TestCtrlCCancelsJob sends a real SIGINT to `servicekit task run --follow`
// while its job runs: the command cancels the job and exits 130.
func TestCtrlCCancelsJob(t *testing.T) {
	s := start(t, filepath.Join(t.TempDir(), "t.db"))
	taskID := s.task(map[string]any{"command": "echo started; sleep 60"})
	cmd := exec.Command(binary(t), "task", "run", "--server", s.url, taskID, "--follow")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "started\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, stdout)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 130 {
		t.Fatalf("exit %d, want 130; stderr:\n%s", code, &stderr)
	}
	m := regexp.MustCompile(`canceling job (\S+) `).FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("stderr:\n%s", &stderr)
	}
	if j := s.job(m[1]); j.Status != "canceled" {
		t.Errorf("job after Ctrl-C: %+v", j)
	}
}

// TestStartupLine reads the server's startup line, which names the console
// URL, and stops the server with SIGINT: a graceful stop exits 0.
func TestStartupLine(t *testing.T) {
	dir := t.TempDir()
	addr := freeAddr(t)
	cmd := exec.Command(binary(t), "serve", "--addr", addr, "--database", "sqlite:///"+filepath.Join(dir, "t.db"))
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	line := ""
	for sc.Scan() {
		if strings.Contains(sc.Text(), "servicekit listening") {
			line = sc.Text()
			break
		}
	}
	if !strings.Contains(line, "console=http://"+addr+"/") {
		t.Errorf("startup line %q does not name the console URL", line)
	}
	cmd.Process.Signal(os.Interrupt)
	io.Copy(io.Discard, stderr)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0", code)
	}
}
