package servicekit_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestBearerSchemeIgnoresCase: RFC 9110 §11.1 makes the auth scheme
// case-insensitive, so "bearer k" is the same credential as "Bearer k";
// refusing it locked out clients that send the scheme in lower case.
func TestBearerSchemeIgnoresCase(t *testing.T) {
	e := newAuthEnv(t, "", "k-secret")
	for _, h := range []string{"Bearer k-secret", "bearer k-secret", "BEARER k-secret", "bEaReR k-secret", "Bearer   k-secret  "} {
		e.want(e.do("GET", "/api/v1/tasks", nil, "Authorization", h), 200, "")
	}
	for _, h := range []string{"Bearerk-secret", "Basic k-secret", "k-secret", "bearer", "bearer k-secreT", "Bearer k-secret extra"} {
		e.want(e.do("GET", "/api/v1/tasks", nil, "Authorization", h), 401, "unauthorized")
	}
}

// TestHealthHidesDetailsWithoutKey: /health stays open for probes, but its
// messages (queue depth, database errors) are for those with a key.
func TestHealthHidesDetailsWithoutKey(t *testing.T) {
	e := newAuthEnv(t, "", "k-secret")
	checks := func(hdr ...string) map[string]map[string]any {
		t.Helper()
		r := e.do("GET", "/health", nil, hdr...)
		if r.status != 200 {
			t.Fatalf("/health %d %s", r.status, r.body)
		}
		var h struct {
			Status string                    `json:"status"`
			Checks map[string]map[string]any `json:"checks"`
		}
		if err := json.Unmarshal(r.body, &h); err != nil || h.Status != "healthy" {
			t.Fatalf("/health body %s (%v)", r.body, err)
		}
		return h.Checks
	}
	for _, hdr := range [][]string{nil, {"X-API-Key", "wrong"}, {"Authorization", "Bearer wrong"}} {
		c := checks(hdr...)
		if len(c) < 2 || c["database"]["state"] != "healthy" || c["scheduler"]["state"] != "healthy" {
			t.Fatalf("without a valid key (%q): want every check's name and state, got %v", hdr, c)
		}
		for name, v := range c {
			if len(v) != 1 {
				t.Fatalf("without a valid key (%q): check %s shows %v, want only its state", hdr, name, v)
			}
		}
	}
	for _, hdr := range [][]string{{"X-API-Key", "k-secret"}, {"Authorization", "bearer k-secret"}} {
		msg, _ := checks(hdr...)["scheduler"]["message"].(string)
		if !strings.Contains(msg, "pending") {
			t.Fatalf("with a key (%q): scheduler message %q, want the queue depth", hdr, msg)
		}
	}
	// No keys configured: nothing to hide, everything as before.
	open := newEnv(t)
	var h map[string]map[string]map[string]any
	json.Unmarshal(open.do("GET", "/health", nil).body, &h)
	if msg, _ := h["checks"]["scheduler"]["message"].(string); !strings.Contains(msg, "pending") {
		t.Fatalf("open server: scheduler message %q, want the queue depth", msg)
	}
}

// TestUnrunnableCommandAndEnvRefused: a NUL byte cannot be passed to exec,
// and an environment entry is NAME=value ended by NUL, so such input used
// to be stored (201) and only fail when a job started. Now create, update
// and $execute answer 422 naming the field, and no job is made.
func TestUnrunnableCommandAndEnvRefused(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		field := func(r resp) string {
			t.Helper()
			e.want(r, 422, "validation-failed")
			var p struct {
				Errors []struct{ Location, Message string }
			}
			json.Unmarshal(r.body, &p)
			if len(p.Errors) == 0 {
				t.Fatalf("422 without errors: %s", r.body)
			}
			return p.Errors[0].Location
		}
		for _, c := range []struct {
			body map[string]any
			want string
		}{
			{map[string]any{"command": "echo a\x00b"}, "body.command"},
			{map[string]any{"command": "\x00"}, "body.command"},
			{map[string]any{"command": "greet_user\x00"}, "body.command"},
			{map[string]any{"command": "env", "env": map[string]string{"A=B": "x"}}, "body.env.A=B"},
			{map[string]any{"command": "env", "env": map[string]string{"A\x00B": "x"}}, "body.env.A\x00B"},
			{map[string]any{"command": "env", "env": map[string]string{"": "x"}}, "body.env."},
			{map[string]any{"command": "env", "env": map[string]string{"OK": "1", "V": "a\x00b"}}, "body.env.V"},
		} {
			if got := field(e.do("POST", "/api/v1/tasks", c.body)); got != c.want {
				t.Errorf("create %q: location %q, want %q", c.body, got, c.want)
			}
		}
		tk := e.createTask(map[string]any{"command": "env", "env": map[string]string{"GOOD": "1"}})
		id := tk["id"].(string)
		if got := field(e.do("PATCH", "/api/v1/tasks/"+id, map[string]any{"env": map[string]string{"X=Y": "1"}})); got != "body.env.X=Y" {
			t.Errorf("patch env: location %q", got)
		}
		if got := field(e.do("PATCH", "/api/v1/tasks/"+id, map[string]any{"command": "env\x00"})); got != "body.command" {
			t.Errorf("patch command: location %q", got)
		}
		if got := field(e.do("PUT", "/api/v1/tasks/"+id, map[string]any{"command": "env", "env": map[string]string{"X": "\x00"}})); got != "body.env.X" {
			t.Errorf("put env: location %q", got)
		}
		for _, bad := range []map[string]string{{"A=B": "1"}, {"A\x00": "1"}, {"A": "1\x00"}} {
			r := e.do("POST", "/api/v1/tasks/"+id+"/$execute", map[string]any{"env": bad})
			if got := field(r); !strings.HasPrefix(got, "body.env.") {
				t.Errorf("$execute env %q: location %q", bad, got)
			}
		}
		jobs := e.do("GET", "/api/v1/jobs", nil)
		if n := len(jobs.list()); n != 0 {
			t.Fatalf("%d jobs made from refused input: %s", n, jobs.body)
		}
		// What may run still does, with the env it was given.
		ok := e.execute(id, map[string]any{"env": map[string]string{"EXTRA": "a=b=c"}})
		if j := e.waitJob(ok); j["status"] != "completed" {
			t.Fatalf("valid task: %v", j)
		}
		logs := e.do("GET", "/api/v1/jobs/"+ok+"/$logs", nil)
		if !strings.Contains(string(logs.body), "GOOD=1") || !strings.Contains(string(logs.body), "EXTRA=a=b=c") {
			t.Fatalf("env not passed: %s", logs.body)
		}
	})
}

// TestStreamClientsShareReadsAndMissNothing: many clients replaying and
// following one long job at once, from the start and from ids in the
// middle of a chunk, each get every event exactly once and in order —
// whether their chunk came from their own read, one shared with others, or
// the cache a read filled ahead.
func TestStreamClientsShareReadsAndMissNothing(t *testing.T) {
	e := newEnv(t)
	const lines = 20_000
	tk := e.createTask(map[string]any{"command": "seq 1 20000"})
	id := e.execute(tk["id"].(string), nil)
	type result struct {
		from   int
		events []sse
	}
	results := make(chan result)
	starts := []int{0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 777, 1500, 9_999, 12_345, 19_999, 20_001}
	for _, from := range starts {
		go func() {
			var hdr []string
			if from > 0 {
				hdr = []string{"Last-Event-ID", strconv.Itoa(from)}
			}
			ev, _ := e.stream(id, hdr...)
			results <- result{from, ev}
		}()
	}
	for range starts {
		r := <-results
		// Events: 1 pending, 2 running, 3… the lines (line n is id n+2),
		// then the terminal status.
		if want := lines + 3 - r.from; len(r.events) != want {
			t.Fatalf("from %d: %d events, want %d", r.from, len(r.events), want)
		}
		for i, ev := range r.events {
			n := r.from + 1 + i
			if ev.id != strconv.Itoa(n) {
				t.Fatalf("from %d: event %d has id %s, want %d", r.from, i, ev.id, n)
			}
			if n >= 3 && n <= lines+2 && ev.data != fmt.Sprintf(`{"stream":"stdout","line":"%d"}`, n-2) {
				t.Fatalf("from %d: event %d is %q", r.from, n, ev.data)
			}
		}
		if last := r.events[len(r.events)-1]; last.event != "status" || !strings.Contains(last.data, `"status":"completed"`) {
			t.Fatalf("from %d: ends with %+v", r.from, last)
		}
	}
}
