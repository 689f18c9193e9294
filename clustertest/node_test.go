package clustertest

// Starting, stopping and talking to real server processes.

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

	"github.com/servicekit/servicekit/internal/dbtest"
)

// lease is the --lease of every node: short, so rescues take seconds.
const lease = 3 * time.Second

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmd/servicekit once per test run (with -race when the tests
// run with -race, so the servers' own races are caught too). CLUSTERTEST_BIN,
// if set, names a servicekit binary to test instead (e.g. one built from an
// older commit, to see a test fail before a fix).
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if bin := os.Getenv("CLUSTERTEST_BIN"); bin != "" {
			binPath = bin
			return
		}
		dir, err := os.MkdirTemp("", "servicekit-cluster-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "servicekit")
		args := []string{"build", "-o", binPath}
		if raceEnabled {
			args = append(args, "-race")
		}
		out, err := exec.Command("go", append(args, "../cmd/servicekit")...).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// TestMain removes the built binary after the run.
func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" && os.Getenv("CLUSTERTEST_BIN") == "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// postgres returns the URL of a fresh, empty schema (skips without a server).
func postgres(t *testing.T) string {
	t.Helper()
	return dbtest.PostgresURL(t)
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

// node is one running servicekit server.
type node struct {
	t      *testing.T
	name   string // A, B, C: for messages
	cmd    *exec.Cmd
	url    string
	logs   *logBuffer
	exited chan struct{} // closed when the process ended
	id     string        // its node id, from /api/v1/system, once up
}

// launch starts a server on database url without waiting for it.
func launch(t *testing.T, name, url string, args ...string) *node {
	t.Helper()
	addr := freeAddr(t)
	all := append([]string{"serve", "--addr", addr, "--database", url, "--lease", lease.String(), "--shell", "any"}, args...)
	cmd := exec.Command(binary(t), all...)
	logs := &logBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, name: name, cmd: cmd, url: "http://" + addr, logs: logs, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		n.kill()
		checkRaces(t, n)
	})
	return n
}

// start starts a server and waits until it is healthy.
func start(t *testing.T, name, url string, args ...string) *node {
	t.Helper()
	n := launch(t, name, url, args...)
	n.waitHealthy(30 * time.Second)
	return n
}

// in is n for use in subtest t: its helpers fail t, not the parent test
// that started the node.
func (n *node) in(t *testing.T) *node {
	c := *n
	c.t = t
	return &c
}

// waitHealthy waits for /health 200 and learns the node id; it fails the
// test at once if the process exits first.
func (n *node) waitHealthy(within time.Duration) {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for {
		select {
		case <-n.exited:
			n.t.Fatalf("node %s exited before it was healthy (%s):\n%s", n.name, n.cmd.ProcessState, n.logs)
		default:
		}
		if res, err := client.Get(n.url + "/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("node %s not healthy after %s:\n%s", n.name, within, n.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	n.id = n.system().Node
}

// kill ends the process with SIGKILL (if it still runs) and waits for it.
func (n *node) kill() {
	n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
}

// checkRaces fails the test if the (race-built) server reported a data race.
func checkRaces(t *testing.T, n *node) {
	if logs := n.logs.String(); strings.Contains(logs, "WARNING: DATA RACE") {
		t.Errorf("node %s reported a data race:\n%s", n.name, logs)
	}
}

// tail is the end of a node's log, for failure messages.
func (n *node) tail() string {
	s := n.logs.String()
	if len(s) > 8000 {
		s = "…" + s[len(s)-8000:]
	}
	return fmt.Sprintf("--- log of node %s (%s) ---\n%s", n.name, n.id, s)
}

func freeAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// client bounds every request; $cancel and DELETE wait up to 15 s server-side.
var client = &http.Client{Timeout: 30 * time.Second}

// do sends a JSON request and returns the status and body.
func (n *node) do(method, path string, body any) (int, []byte) {
	n.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			n.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, n.url+path, rd)
	if err != nil {
		n.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		n.t.Fatalf("node %s: %s %s: %v\n%s", n.name, method, path, err, n.tail())
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		n.t.Fatalf("node %s: %s %s: read body: %v", n.name, method, path, err)
	}
	return res.StatusCode, b
}

// call is do that expects status want and decodes the body into out.
func (n *node) call(method, path string, body any, want int, out any) {
	n.t.Helper()
	code, b := n.do(method, path, body)
	if code != want {
		n.t.Fatalf("node %s: %s %s: %d, want %d: %s", n.name, method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			n.t.Fatalf("node %s: %s %s: %v: %s", n.name, method, path, err, b)
		}
	}
}

type jobRec struct {
	ID          string  `json:"id"`
	Status      string  `json:"status"`
	Error       *string `json:"error"`
	Attempt     int     `json:"attempt"`
	MaxAttempts int     `json:"max_attempts"`
	Node        *string `json:"node"`
}

func (j jobRec) node() string {
	if j.Node == nil {
		return ""
	}
	return *j.Node
}

func (j jobRec) terminal() bool {
	return j.Status == "completed" || j.Status == "failed" || j.Status == "canceled"
}

type systemInfo struct {
	Node  string `json:"node"`
	Nodes []struct {
		ID  string `json:"id"`
		PID int    `json:"pid"`
	} `json:"nodes"`
}

func (n *node) system() systemInfo {
	var s systemInfo
	n.call("GET", "/api/v1/system", nil, 200, &s)
	return s
}

// task creates a shell task and returns its id; a marker, if not empty,
// goes into its processes' environment (see procsWith).
func (n *node) task(command string, retries int, marker string) string {
	n.t.Helper()
	body := map[string]any{"command": command, "type": "shell", "retries": retries}
	if marker != "" {
		body["env"] = map[string]string{markEnv: marker}
	}
	var t struct{ ID string }
	n.call("POST", "/api/v1/tasks", body, 201, &t)
	return t.ID
}

// execute submits a job of task through this node.
func (n *node) execute(taskID string) string {
	n.t.Helper()
	var a struct {
		JobID string `json:"job_id"`
	}
	n.call("POST", "/api/v1/tasks/"+taskID+"/$execute", nil, 202, &a)
	return a.JobID
}

func (n *node) job(id string) jobRec {
	n.t.Helper()
	var j jobRec
	n.call("GET", "/api/v1/jobs/"+id, nil, 200, &j)
	return j
}

// waitJob polls the job through this node until cond holds.
func (n *node) waitJob(id string, within time.Duration, cond func(jobRec) bool) jobRec {
	n.t.Helper()
	deadline := time.Now().Add(within)
	for {
		j := n.job(id)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("job %s stuck at %+v (node %v) after %s\n%s", id, j, j.node(), within, n.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually polls cond every 20 ms until it holds or within passes.
func eventually(within time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// tails joins the log tails of nodes, for failure messages.
func tails(nodes ...*node) string {
	var b strings.Builder
	for _, n := range nodes {
		b.WriteString(n.tail())
		b.WriteString("\n")
	}
	return b.String()
}

// submit is execute for other goroutines than the test's: it returns an
// error instead of failing the test.
func (n *node) submit(taskID string) (string, error) {
	res, err := client.Post(n.url+"/api/v1/tasks/"+taskID+"/$execute", "application/json", nil)
	if err != nil {
		return "", fmt.Errorf("node %s: execute: %w", n.name, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var a struct {
		JobID string `json:"job_id"`
	}
	if res.StatusCode != 202 || json.Unmarshal(b, &a) != nil || a.JobID == "" {
		return "", fmt.Errorf("node %s: execute: %d %s", n.name, res.StatusCode, b)
	}
	return a.JobID, nil
}
