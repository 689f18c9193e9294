package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// NewHTTPClient returns a client whose transport keeps up to conns idle
// connections to one host. The default of 2 would make most of 16
// concurrent clients open a fresh TCP connection per request, and the
// benchmark would then measure connection setup and TIME_WAIT churn
// instead of the server.
func NewHTTPClient(conns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 2 * conns
	t.MaxIdleConnsPerHost = conns
	return &http.Client{Transport: t}
}

// Client drives a servicekit server over its REST API, the way a user
// would: execute a task, then follow the job's $stream until it ends.
type Client struct {
	// Base is the server URL without a trailing slash, e.g. http://127.0.0.1:8000.
	Base string
	// HTTP is the client used for every request; see NewHTTPClient.
	HTTP *http.Client
	// APIKey, when set, is sent as X-API-Key.
	APIKey string
}

// APIError is a non-2xx answer; Body holds the problem document.
type APIError struct {
	Method, Path string
	Status       int
	Body         string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s %s: HTTP %d: %s", e.Method, e.Path, e.Status, strings.TrimSpace(e.Body))
}

// do sends a request and decodes a 2xx JSON answer into out (if not nil).
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.auth(req)
	res, err := c.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode/100 != 2 {
		return &APIError{Method: method, Path: path, Status: res.StatusCode, Body: string(data)}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(data, out)
}

func (c *Client) auth(req *http.Request) {
	if c.APIKey != "" {
		req.Header.Set("X-API-Key", c.APIKey)
	}
}

// Task is the part of TaskOut the load generator needs.
type Task struct {
	ID      string `json:"id"`
	Command string `json:"command"`
	Type    string `json:"type"`
	Enabled bool   `json:"enabled"`
}

// Function is the part of a $functions entry the load generator needs.
type Function struct {
	Name         string `json:"name"`
	ParamsSchema struct {
		Required []string `json:"required"`
	} `json:"params_schema"`
}

// Functions lists the server's registered functions.
func (c *Client) Functions(ctx context.Context) ([]Function, error) {
	var fs []Function
	err := c.do(ctx, http.MethodGet, "/api/v1/tasks/$functions", nil, &fs)
	return fs, err
}

// EnsureTask returns an enabled task of the given type and command,
// creating it if the server has none, so that repeated load runs against
// one server do not pile up identical tasks.
func (c *Client) EnsureTask(ctx context.Context, typ, command string) (string, error) {
	var tasks []Task
	if err := c.do(ctx, http.MethodGet, "/api/v1/tasks?enabled=true&type="+typ, nil, &tasks); err != nil {
		return "", err
	}
	for _, t := range tasks {
		if t.Command == command && t.Type == typ && t.Enabled {
			return t.ID, nil
		}
	}
	var t Task
	err := c.do(ctx, http.MethodPost, "/api/v1/tasks", map[string]any{"command": command, "type": typ}, &t)
	return t.ID, err
}

// Execute starts a job of the task and returns the job id. The server
// has stored the job when this returns.
func (c *Client) Execute(ctx context.Context, taskID string) (string, error) {
	var out struct {
		JobID string `json:"job_id"`
	}
	if err := c.do(ctx, http.MethodPost, "/api/v1/tasks/"+taskID+"/$execute", nil, &out); err != nil {
		return "", err
	}
	if out.JobID == "" {
		return "", errors.New("$execute answered without a job_id")
	}
	return out.JobID, nil
}

// Follow reads the job's $stream until the status event of a terminal
// status (or "deleted") and returns that status. The stream replays the
// events held so far, so following after Execute misses nothing.
func (c *Client) Follow(ctx context.Context, jobID string) (string, error) {
	path := "/api/v1/jobs/" + jobID + "/$stream"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base+path, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/event-stream")
	c.auth(req)
	res, err := c.HTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer func() {
		// The server ends the stream right after the terminal event;
		// reading to EOF lets the transport reuse the connection.
		io.Copy(io.Discard, io.LimitReader(res.Body, 1<<16))
		res.Body.Close()
	}()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<16))
		return "", &APIError{Method: http.MethodGet, Path: path, Status: res.StatusCode, Body: string(b)}
	}
	return readTerminalStatus(res.Body)
}

// readTerminalStatus parses server-sent events until a status event whose
// status is terminal.
func readTerminalStatus(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 16<<10), 4<<20) // a log line may be long
	var event string
	var data []byte
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0: // end of one event
			if event == "status" {
				var st struct {
					Status string `json:"status"`
				}
				if err := json.Unmarshal(data, &st); err != nil {
					return "", fmt.Errorf("status event: %w", err)
				}
				switch st.Status {
				case "completed", "failed", "canceled", "deleted":
					return st.Status, nil
				}
			}
			event, data = "", data[:0]
		case bytes.HasPrefix(line, []byte("event:")):
			event = string(bytes.TrimSpace(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimPrefix(line[len("data:"):], []byte(" "))...)
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", errors.New("event stream ended before a terminal status")
}

// RunJob executes the task and follows the job to its end. It returns the
// time from sending $execute to reading the terminal status event, and an
// error unless the job completed.
func (c *Client) RunJob(ctx context.Context, taskID string) (time.Duration, error) {
	start := time.Now()
	id, err := c.Execute(ctx, taskID)
	if err != nil {
		return 0, err
	}
	st, err := c.Follow(ctx, id)
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("job %s: %w", id, err)
	}
	if st != "completed" {
		return d, fmt.Errorf("job %s ended %s", id, st)
	}
	return d, nil
}
