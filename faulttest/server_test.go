package faulttest

// Building, starting, killing and talking to real server processes.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// lease is the --lease of every server: short, so that the jobs of a
// killed server are rescued within seconds (and the kill grace of a
// canceled shell job, lease/4, is short too).
const lease = 2 * time.Second

// binaries are built once per run, each on first use.
type build struct {
	once   sync.Once
	pkg    string // relative to this package's directory
	env    string // a variable naming a prebuilt binary to use instead
	noRace bool   // never with -race (for memory figures, which the race detector multiplies)
	path   string
	err    error
}

var (
	buildDir      string
	buildDirOnce  sync.Once
	serverBuild   = &build{pkg: "./testserver", env: "FAULTTEST_BIN"}
	plainBuild    = &build{pkg: "./testserver", env: "FAULTTEST_PLAIN_BIN", noRace: true}
	exampleBuild  = &build{pkg: "../examples/task_execution", env: "FAULTTEST_EXAMPLE_BIN"}
	buildsStarted sync.Mutex // one `go build` at a time: the machine is small
)

// binary returns the path of b's binary, building it the first time (with
// -race when this test binary has it, so the server's own data races are
// caught too, see checkRaces; unless b is noRace).
func (b *build) binary(t *testing.T) string {
	t.Helper()
	b.once.Do(func() {
		if bin := os.Getenv(b.env); bin != "" {
			b.path = bin
			return
		}
		buildDirOnce.Do(func() { buildDir, b.err = os.MkdirTemp("", "faulttest-bin") })
		if b.err != nil {
			return
		}
		buildsStarted.Lock()
		defer buildsStarted.Unlock()
		b.path = filepath.Join(buildDir, filepath.Base(b.pkg))
		if b.noRace {
			b.path += "-norace"
		}
		args := []string{"build", "-o", b.path}
		if raceEnabled && !b.noRace {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, b.pkg)...).CombinedOutput()
		if err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatal(b.err)
	}
	return b.path
}

// TestMain removes the built binaries after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if n := reapLeftovers(); n > 0 {
		fmt.Fprintf(os.Stderr, "faulttest: killed %d processes the jobs of this run left behind\n", n)
	}
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// logBuffer collects a process's output; safe to read while it writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// config is how a server process is started.
type config struct {
	bin  *build   // serverBuild unless set
	db   string   // --database URL
	key  string   // an API key the server requires (via SERVICEKIT_API_KEYS) and requests send
	args []string // more serve flags
	env  []string // more environment, KEY=VALUE
	// nofile, if not 0, is the RLIMIT_NOFILE (soft and hard) the server
	// starts with, set by a shell's ulimit before it execs the server.
	nofile int
}

// server is one running server process.
type server struct {
	t      *testing.T // fails on trouble
	owner  *testing.T // kills the process at its end: the test that started the first server
	cfg    config
	cmd    *exec.Cmd
	url    string
	logs   *logBuffer
	exited chan struct{} // closed when the process ended
}

// sqliteIn is the URL of a SQLite file in dir.
func sqliteIn(dir string) string { return "sqlite:///" + filepath.Join(dir, "fault.db") }

// launch starts a server without waiting for it.
func launch(t *testing.T, cfg config) *server {
	t.Helper()
	return launchOwned(t, t, cfg)
}

// launchOwned is launch for a server that outlives test t: owner ends it.
func launchOwned(t, owner *testing.T, cfg config) *server {
	t.Helper()
	if cfg.bin == nil {
		cfg.bin = serverBuild
	}
	bin := cfg.bin.binary(t)
	addr := freeAddr(t)
	args := append([]string{"serve", "--addr", addr, "--database", cfg.db, "--lease", lease.String()}, cfg.args...)
	cmd := exec.Command(bin, args...)
	if cfg.nofile > 0 {
		// sh -c 'ulimit -n N && exec "$0" "$@"' bin args…: the server is
		// the same process (pid) as the shell, with both limits at N.
		cmd = exec.Command("/bin/sh", append([]string{"-c", fmt.Sprintf(`ulimit -n %d && exec "$0" "$@"`, cfg.nofile), bin}, args...)...)
	}
	cmd.Dir = owner.TempDir() // a stray default ./servicekit.db lands here, not in the repo
	cmd.Env = append(os.Environ(), cfg.env...)
	if cfg.key != "" {
		cmd.Env = append(cmd.Env, "SERVICEKIT_API_KEYS="+cfg.key)
	}
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, owner: owner, cfg: cfg, cmd: cmd, url: "http://" + addr, logs: logs, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	owner.Cleanup(func() {
		s.kill()
		checkRaces(owner, s)
	})
	return s
}

// start starts a server and waits until it answers /health.
func start(t *testing.T, cfg config) *server {
	t.Helper()
	s := launch(t, cfg)
	s.waitUp(30 * time.Second)
	return s
}

// restart kills s (if it still runs) and starts a server with the same
// configuration, on the same database, on a new port.
func (s *server) restart() *server {
	s.t.Helper()
	s.kill()
	n := launchOwned(s.t, s.owner, s.cfg)
	n.waitUp(30 * time.Second)
	return n
}

// in is s for use in subtest t: its helpers fail t, not the test that
// started the server.
func (s *server) in(t *testing.T) *server {
	c := *s
	c.t = t
	return &c
}

// waitUp waits for /health to answer at all (200 or 503: a server on a
// broken database still serves); it fails at once if the process exits.
func (s *server) waitUp(within time.Duration) {
	s.t.Helper()
	ok := eventually(within, func() bool {
		select {
		case <-s.exited:
			s.t.Fatalf("server exited before it answered /health (%s):\n%s", s.cmd.ProcessState, s.logs)
		default:
		}
		res, err := quick.Get(s.url + "/health")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == 200 || res.StatusCode == 503
	})
	if !ok {
		s.t.Fatalf("server not up after %s:\n%s", within, s.tail())
	}
}

// pid is the server's process id.
func (s *server) pid() int { return s.cmd.Process.Pid }

// kill ends the process with SIGKILL (if it still runs) and waits for it.
func (s *server) kill() {
	s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
}

// checkRaces fails the test if the (race-built) server reported a data race.
func checkRaces(t *testing.T, s *server) {
	if logs := s.logs.String(); strings.Contains(logs, "WARNING: DATA RACE") {
		t.Errorf("the server reported a data race:\n%s", logs)
	}
}

// tail is the end of the server's log, for failure messages.
func (s *server) tail() string {
	l := s.logs.String()
	if len(l) > 6000 {
		l = "…" + l[len(l)-6000:]
	}
	return "--- server log ---\n" + l
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// client bounds every request; $cancel and DELETE may wait server-side.
var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// quick is for polling /health while a server starts.
var quick = &http.Client{Timeout: 2 * time.Second}

// reply is an HTTP answer.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// problemType is the RFC 9457 type of an error answer ("" if none).
func (r reply) problemType() string {
	var p struct{ Type string }
	json.Unmarshal(r.body, &p)
	return p.Type
}

func (r reply) String() string { return fmt.Sprintf("%d %s", r.status, bytes.TrimSpace(r.body)) }

// send makes one request; it returns an error rather than failing the
// test, so goroutines other than the test's may use it. Bodies that are
// not []byte or string are sent as JSON.
func (s *server) send(method, path string, body any, header ...string) (reply, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	case string:
		rd = strings.NewReader(b)
	default:
		j, err := json.Marshal(body)
		if err != nil {
			return reply{}, err
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if s.cfg.key != "" {
		req.Header.Set("X-API-Key", s.cfg.key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	res, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return reply{status: res.StatusCode, header: res.Header, body: b}, err
}

// do is send that fails the test on a transport error.
func (s *server) do(method, path string, body any, header ...string) reply {
	s.t.Helper()
	r, err := s.send(method, path, body, header...)
	if err != nil {
		s.t.Fatalf("%s %s: %v\n%s", method, path, err, s.tail())
	}
	return r
}

// call is do that expects status want and decodes the body into out.
func (s *server) call(method, path string, body any, want int, out any) {
	s.t.Helper()
	r := s.do(method, path, body)
	if r.status != want {
		s.t.Fatalf("%s %s: %s, want %d", method, path, r, want)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			s.t.Fatalf("%s %s: %v: %s", method, path, err, r.body)
		}
	}
}

type jobRec struct {
	ID          string          `json:"id"`
	Status      string          `json:"status"`
	Error       *string         `json:"error"`
	Attempt     int             `json:"attempt"`
	MaxAttempts int             `json:"max_attempts"`
	ExitCode    *int            `json:"exit_code"`
	Result      json.RawMessage `json:"result"`
	ArtifactID  *string         `json:"artifact_id"`
}

func (j jobRec) terminal() bool {
	return j.Status == "completed" || j.Status == "failed" || j.Status == "canceled"
}

func (j jobRec) err() string {
	if j.Error == nil {
		return ""
	}
	return *j.Error
}

// task creates a task from body (a map) and returns its id.
func (s *server) task(body map[string]any) string {
	s.t.Helper()
	var t struct{ ID string }
	s.call("POST", "/api/v1/tasks", body, 201, &t)
	return t.ID
}

// shellTask creates a shell task running command with retries; its jobs
// carry runMark in their environment.
func (s *server) shellTask(command string, retries int) string {
	s.t.Helper()
	return s.task(shellBody(command, retries))
}

// shellBody is the body creating a shell task, with runMark in its env.
func shellBody(command string, retries int) map[string]any {
	k, v, _ := strings.Cut(runMark, "=")
	return map[string]any{"command": command, "type": "shell", "retries": retries, "env": map[string]string{k: v}}
}

// execute submits a job of task (body optional) and returns its id.
func (s *server) execute(taskID string, body any) string {
	s.t.Helper()
	var a struct {
		JobID string `json:"job_id"`
	}
	s.call("POST", "/api/v1/tasks/"+taskID+"/$execute", body, 202, &a)
	return a.JobID
}

// submit is execute for goroutines: an error for anything but 202, and
// the reply so the caller can tell a refusal from a failure.
func (s *server) submit(taskID string) (string, reply, error) {
	r, err := s.send("POST", "/api/v1/tasks/"+taskID+"/$execute", nil)
	if err != nil {
		return "", r, err
	}
	var a struct {
		JobID string `json:"job_id"`
	}
	if r.status != 202 || json.Unmarshal(r.body, &a) != nil || a.JobID == "" {
		return "", r, fmt.Errorf("execute: %s", r)
	}
	return a.JobID, r, nil
}

func (s *server) job(id string) jobRec {
	s.t.Helper()
	var j jobRec
	s.call("GET", "/api/v1/jobs/"+id, nil, 200, &j)
	return j
}

// waitJob polls the job until cond holds.
func (s *server) waitJob(id string, within time.Duration, cond func(jobRec) bool) jobRec {
	s.t.Helper()
	deadline := time.Now().Add(within)
	for {
		j := s.job(id)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s stuck at %s (%s) after %s\n%s", id, j.Status, j.err(), within, s.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitEnd waits for the job to be terminal.
func (s *server) waitEnd(id string, within time.Duration) jobRec {
	s.t.Helper()
	return s.waitJob(id, within, jobRec.terminal)
}

// cancel sends $cancel and returns the record it answers with.
func (s *server) cancel(id string) jobRec {
	s.t.Helper()
	var j jobRec
	s.call("POST", "/api/v1/jobs/"+id+"/$cancel", nil, 200, &j)
	return j
}

// countJobs counts the jobs with status through the paginated list.
func (s *server) countJobs(status string) int {
	s.t.Helper()
	var p struct{ Total int }
	s.call("GET", "/api/v1/jobs?page=1&size=1&status="+status, nil, 200, &p)
	return p.Total
}

// allJobs lists every job (status → ids), page by page.
func (s *server) allJobs() map[string]jobRec {
	s.t.Helper()
	out := map[string]jobRec{}
	for page := 1; ; page++ {
		var p struct {
			Items []jobRec
			Pages int
		}
		s.call("GET", fmt.Sprintf("/api/v1/jobs?page=%d&size=1000", page), nil, 200, &p)
		for _, j := range p.Items {
			out[j.ID] = j
		}
		if page >= p.Pages {
			return out
		}
	}
}

// eventually polls cond every 10 ms until it holds or within passes.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// figures logs a line of the figures RELIABILITY.md reports, marked so
// that `go test -v ./faulttest/ | grep FIGURES` collects them.
func figures(t *testing.T, format string, args ...any) {
	t.Helper()
	t.Logf("FIGURES %s: %s", t.Name(), fmt.Sprintf(format, args...))
}

// status is the "status" field of a /health answer.
func status(health reply) string {
	var h struct{ Status string }
	json.Unmarshal(health.body, &h)
	return h.Status
}
