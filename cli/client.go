package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// defaultServerURL is where `servicekit serve` listens by default, so the
// client works against a local server with no flags at all.
const defaultServerURL = "http://127.0.0.1:8000"

// requestTimeout bounds every API call except the event streams, so a hung
// server cannot hang a script forever. The slowest ordinary call, canceling
// a running shell job, waits at most a few seconds for SIGKILL.
const requestTimeout = time.Minute

// addClientCommands adds the API client commands (task, job, artifact).
func addClientCommands(root *cobra.Command) {
	root.AddCommand(newTaskCommand(), newJobCommand(), newArtifactCommand())
}

// clientFlags are the connection and output flags every API command takes.
// Each command group registers its own set as persistent flags, so that
// `servicekit task list --server …` works without the flags leaking into
// `serve`, whose --addr means something else.
type clientFlags struct {
	server string
	apiKey string
	output string
}

func (f *clientFlags) register(group *cobra.Command) {
	p := group.PersistentFlags()
	p.StringVar(&f.server, "server", envOr("SERVICEKIT_URL", defaultServerURL), "URL of the servicekit server (SERVICEKIT_URL)")
	// No default from the environment here: cobra would print the key in --help.
	p.StringVar(&f.apiKey, "api-key", "", "API key sent as X-API-Key (SERVICEKIT_API_KEY)")
	p.StringVarP(&f.output, "output", "o", "table", "output format: table or json (the API's JSON, for scripts)")
}

// client checks the flags and returns a client writing to cmd's outputs.
func (f *clientFlags) client(cmd *cobra.Command) (*apiClient, error) {
	if f.output != "table" && f.output != "json" {
		return nil, usagef("--output %q: want table or json", f.output)
	}
	base, err := serverURL(f.server)
	if err != nil {
		return nil, err
	}
	key := f.apiKey
	if key == "" {
		key = os.Getenv("SERVICEKIT_API_KEY")
	}
	return &apiClient{base: base, key: key, json: f.output == "json",
		out: cmd.OutOrStdout(), errOut: cmd.ErrOrStderr(), http: &http.Client{}}, nil
}

// serverURL normalizes --server. A bare host:port is taken as http, since
// that is how `serve --addr` is written and users copy it over.
func serverURL(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usagef("--server %q: want a URL like %s", s, defaultServerURL)
	}
	return trimURL(u.String()), nil
}

// apiClient talks to one servicekit server on behalf of one command.
type apiClient struct {
	base   string
	key    string
	json   bool // -o json: print the API's JSON instead of tables
	out    io.Writer
	errOut io.Writer
	http   *http.Client
}

// send makes one request. body, when not nil, is sent as JSON. Transport
// failures come back as errors that say which server was tried.
func (c *apiClient) send(ctx context.Context, method, path string, query url.Values, body any, header http.Header) (*http.Response, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json, application/problem+json")
	}
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.transportError(err)
	}
	return resp, nil
}

// call makes a request and returns the body of a 2xx answer; any other
// answer becomes a *ProblemError.
func (c *apiClient) call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := c.send(ctx, method, path, query, body, nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, c.transportError(err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, problemFrom(resp, data)
	}
	return data, nil
}

// get calls GET path and decodes the answer into v. It returns the raw body
// too, because -o json prints exactly what the API said.
func (c *apiClient) get(ctx context.Context, path string, query url.Values, v any) ([]byte, error) {
	data, err := c.call(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return nil, err
	}
	return data, decode(data, v)
}

// decode reads JSON keeping numbers as written, so big integers in params
// and results are shown with all their digits.
func decode(data []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return fmt.Errorf("unexpected answer from the server: %w", err)
	}
	return nil
}

// printJSON pretty-prints an API body for -o json.
func (c *apiClient) printJSON(data []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, data, "", "  "); err != nil {
		return fmt.Errorf("unexpected answer from the server: %w", err)
	}
	buf.WriteByte('\n')
	_, err := c.out.Write(buf.Bytes())
	return err
}

// table starts an aligned table on the command's output; callers Flush it.
func (c *apiClient) table() *tabwriter.Writer {
	return tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
}

// ProblemError is an error answer of the API: an RFC 9457 problem, or one
// made up from the status when the answer was not a problem (a proxy's
// HTML page, say), so that every failed call prints the same way.
type ProblemError struct {
	Type     string        `json:"type"`
	Title    string        `json:"title"`
	Status   int           `json:"status"`
	Detail   string        `json:"detail"`
	Instance string        `json:"instance"`
	Errors   []ProblemItem `json:"errors"`
}

// ProblemItem names one invalid input of a validation problem.
type ProblemItem struct {
	Location string `json:"location"`
	Message  string `json:"message"`
}

// Error is the problem on one line, `title: detail`, followed by the
// invalid inputs of a validation problem in parentheses, so that a script's
// log keeps the whole answer on the line that names the command. An input
// the detail already describes is not repeated (the API's detail is often
// its first error): only its location is added when the detail lacks it,
// so `schedule "…": minute field: 61 is out of range 0-59` is said once.
func (e *ProblemError) Error() string {
	var b strings.Builder
	b.WriteString(e.Title)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	var items []string
	for _, it := range e.Errors {
		full := it.Message
		if it.Location != "" {
			full = it.Location + ": " + it.Message
		}
		switch {
		case e.Detail != "" && strings.Contains(e.Detail, full):
		case e.Detail != "" && it.Location != "" && it.Message != "" && strings.Contains(e.Detail, it.Message):
			items = append(items, it.Location)
		default:
			items = append(items, full)
		}
	}
	if len(items) > 0 {
		b.WriteString(" (" + strings.Join(items, "; ") + ")")
	}
	if e.Status == http.StatusUnauthorized {
		b.WriteString(" — give the server's API key with --api-key or SERVICEKIT_API_KEY")
	}
	return strings.Join(strings.Fields(b.String()), " ")
}

// problemFrom turns a non-2xx answer into a *ProblemError.
func problemFrom(resp *http.Response, data []byte) *ProblemError {
	var p ProblemError
	if json.Unmarshal(data, &p) != nil || p.Title == "" {
		text := strings.TrimSpace(string(data))
		if len(text) > 200 {
			text = text[:200] + "…"
		}
		p = ProblemError{Detail: text}
	}
	if p.Status == 0 {
		p.Status = resp.StatusCode
	}
	if p.Title == "" {
		p.Title = http.StatusText(resp.StatusCode)
	}
	return &p
}

// ConnectError says the server could not be reached at all, which nearly
// always means it is not running or --server points elsewhere.
type ConnectError struct {
	Server string
	Err    error
}

func (e *ConnectError) Error() string {
	why := "connection failed"
	var dns *net.DNSError
	switch {
	case errors.Is(e.Err, syscall.ECONNREFUSED):
		why = "connection refused"
	case errors.As(e.Err, &dns):
		why = "unknown host " + dns.Name
	case errors.Is(e.Err, context.DeadlineExceeded):
		why = "timed out"
	}
	return fmt.Sprintf("cannot reach the servicekit server at %s (%s); is it running? "+
		"Start it with `servicekit serve`, or point the client at it with --server URL or SERVICEKIT_URL", e.Server, why)
}

func (e *ConnectError) Unwrap() error { return e.Err }

// lostError is a connection that broke after the server was reached (a
// reset mid-answer, a stream that kept closing early): like a server that
// cannot be reached, nothing about the request itself was wrong.
type lostError struct{ err error }

func (e *lostError) Error() string { return e.err.Error() }
func (e *lostError) Unwrap() error { return e.err }

// transportError classifies a failed round trip: a failed dial is a
// ConnectError; anything else (a reset mid-answer) is a lostError that keeps
// its own text. An interrupted request is left as it is, for classify.
func (c *apiClient) transportError(err error) error {
	var op *net.OpError
	var dns *net.DNSError
	switch {
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &dns) || (errors.As(err, &op) && op.Op == "dial"):
		return &ConnectError{Server: c.base, Err: err}
	}
	return &lostError{fmt.Errorf("talking to %s: %w", c.base, err)}
}

// parseParams reads --param k=v values. v is JSON when it parses as JSON
// (numbers, true, null, objects, arrays, quoted strings), else the plain
// string, so `name=Alice` and `count=3` both do what one means.
func parseParams(kvs []string) (map[string]any, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	params := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--param %q: want key=value", kv)
		}
		var val any
		d := json.NewDecoder(strings.NewReader(v))
		d.UseNumber()
		if d.Decode(&val) != nil || d.More() {
			val = v
		}
		params[k] = val
	}
	return params, nil
}

// parseEnv reads --env K=V values; values are always strings.
func parseEnv(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	env := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("--env %q: want NAME=value", kv)
		}
		env[k] = v
	}
	return env, nil
}

// compactJSON renders a value on one line for a table cell.
func compactJSON(v any) string {
	if v == nil {
		return ""
	}
	if raw, ok := v.(json.RawMessage); ok {
		var buf bytes.Buffer
		if len(raw) == 0 || json.Compact(&buf, raw) != nil || buf.String() == "null" {
			return ""
		}
		return buf.String()
	}
	// No HTML escaping: a table is read by people, and `a > b` in a
	// param should not show up as `a \u003e b`.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if enc.Encode(v) != nil {
		return ""
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	if s == "null" {
		return ""
	}
	return s
}

// cell fits free text (a command line) into one table cell: newlines and
// tabs would break the alignment, and a long script would push every other
// column off the screen.
func cell(s string, limit int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > limit {
		s = string(r[:limit-1]) + "…"
	}
	return s
}

// when formats a time for a table in the reader's local zone; -o json keeps
// the API's UTC RFC 3339.
func when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

// pathID prepares an id for a URL path. Crockford base32 is
// case-insensitive, so a ULID typed or pasted in lower case is upper-cased,
// the form the server stores; anything else is only escaped, so a mistyped
// id with a slash in it gets the API's "invalid ULID" answer (naming what
// was typed) instead of hitting another route.
func pathID(id string) string { return url.PathEscape(normalizeID(id)) }

// normalizeID upper-cases id when it has a ULID's shape: 26 letters and
// digits. Query values (--task) go through it too.
func normalizeID(id string) string {
	if len(id) != 26 {
		return id
	}
	for _, r := range id {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return id
		}
	}
	return strings.ToUpper(id)
}
