package faulttest

// Keys and validation: the auth scheme's case, a key list with no key in
// it, /health without a key, NUL bytes and "=" where no process can take
// them.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestAuthSchemeCaseInsensitive is the row "Authorization: bearer k
// (lowercase scheme)": it answered 401. Schemes are case-insensitive (RFC
// 9110 §11.1), so every spelling of Bearer with the right key gets in;
// anything without the exact key stays out.
func TestAuthSchemeCaseInsensitive(t *testing.T) {
	const key = "f4ult-Key.42"
	s := start(t, config{db: sqliteIn(t.TempDir()), key: key})
	in := [][2]string{
		{"Authorization", "Bearer " + key},
		{"Authorization", "bearer " + key},
		{"Authorization", "BEARER " + key},
		{"Authorization", "bEaReR " + key},
		{"X-API-Key", key},
		{"x-api-key", key},
	}
	out := [][2]string{
		{"Authorization", ""},
		{"Authorization", "Bearer"},
		{"Authorization", "Bearer wrong"},
		{"Authorization", "Bearer " + strings.ToUpper(key)},
		{"Authorization", "Bearer " + strings.ToLower(key)},
		{"Authorization", "Bearer " + key[:len(key)-1]},
		{"Authorization", "Bearer " + key + "x"},
		{"Authorization", "Bearer x" + key},
		{"Authorization", "Basic " + key},
		{"Authorization", "Token " + key},
		{"Authorization", "Bearer" + key},
		{"Authorization", key},
		{"Authorization", "Bearer " + key + " " + key},
		{"Authorization", "Bearer " + key + "," + key},
		{"X-API-Key", "wrong"},
		{"X-API-Key", strings.ToUpper(key)},
		{"X-API-Key", key + "x"},
		{"X-Api-Key-Other", key},
		{"Api-Key", key},
	}
	paths := []struct{ method, path string }{
		{"GET", "/api/v1/tasks"}, {"GET", "/api/v1/jobs"}, {"POST", "/api/v1/tasks"}, {"GET", "/metrics"}, {"GET", "/api/v1/system"},
	}
	tried := 0
	for _, p := range paths {
		for _, h := range in {
			r := s.do(p.method, p.path, shellBody("true", 0), "X-API-Key", "", h[0], h[1])
			tried++
			if r.status == 401 {
				t.Errorf("%s %s with %s: %s: %s, want it let in", p.method, p.path, h[0], h[1], r)
			}
		}
		for _, h := range out {
			r := s.do(p.method, p.path, shellBody("true", 0), "X-API-Key", "", h[0], h[1])
			tried++
			if r.status != 401 || r.problemType() != "urn:servicekit:error:unauthorized" || r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s with %s: %q: %s, want 401 unauthorized with WWW-Authenticate", p.method, p.path, h[0], h[1], r)
			}
		}
	}
	figures(t, "%d requests on %d protected routes: %d spellings of a valid key let in, %d wrong or malformed keys refused", tried, len(paths), len(in), len(out))
}

// TestBlankAPIKeysRefused is the row SERVICEKIT_API_KEYS=" , ": the server
// started silently with no auth. Keys were given and none is usable, so it
// must refuse to start, saying why, and never serve.
func TestBlankAPIKeysRefused(t *testing.T) {
	emptyFile := filepath.Join(t.TempDir(), "keys")
	os.WriteFile(emptyFile, []byte("# no key here\n\n   \n"), 0o600)
	cases := []struct {
		name string
		cfg  config
	}{
		{"comma_space", config{env: []string{"SERVICEKIT_API_KEYS= , "}}},
		{"comma", config{env: []string{"SERVICEKIT_API_KEYS=,"}}},
		{"spaces", config{env: []string{"SERVICEKIT_API_KEYS=   "}}},
		{"commas_and_tabs", config{env: []string{"SERVICEKIT_API_KEYS= ,\t, ,"}}},
		{"file_without_keys", config{args: []string{"--api-key-file", emptyFile}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.cfg.db = sqliteIn(t.TempDir())
			s := launch(t, c.cfg)
			served := false
			eventually(30*time.Second, func() bool {
				select {
				case <-s.exited:
					return true
				default:
				}
				if res, err := quick.Get(s.url + "/api/v1/tasks"); err == nil {
					res.Body.Close()
					served = res.StatusCode == 200
				}
				return served
			})
			select {
			case <-s.exited:
			default:
				t.Fatalf("the server did not exit (serving without a key: %v):\n%s", served, s.tail())
			}
			if s.cmd.ProcessState.ExitCode() == 0 || !strings.Contains(strings.ToLower(s.logs.String()), "key") {
				t.Errorf("exit %d, output:\n%s\nwant a non-zero exit and a message about the keys", s.cmd.ProcessState.ExitCode(), s.logs)
			}
		})
	}
	figures(t, "%d key configurations without a usable key: each refused at start", len(cases))
}

// TestHealthWithoutKey is the row "/health without a key": it showed the
// queue depth. Without a valid key it must show only the status and the
// checks' names and states; with one, the details.
func TestHealthWithoutKey(t *testing.T) {
	const key = "h3alth-key"
	s := start(t, config{db: sqliteIn(t.TempDir()), key: key})
	type health struct {
		Status string
		Checks map[string]map[string]any
	}
	get := func(header ...string) (reply, health) {
		r := s.do("GET", "/health", nil, header...)
		var h health
		if err := json.Unmarshal(r.body, &h); err != nil || r.status != 200 || h.Status == "" {
			t.Fatalf("/health: %s", r)
		}
		return r, h
	}
	for _, anon := range [][]string{{"X-API-Key", ""}, {"X-API-Key", "wrong"}, {"X-API-Key", "", "Authorization", "Bearer wrong"}} {
		r, h := get(anon...)
		if len(h.Checks) == 0 {
			t.Errorf("/health without a valid key (%v) names no checks: %s", anon, r)
		}
		for name, c := range h.Checks {
			for k := range c {
				if k != "state" {
					t.Errorf("/health without a valid key (%v): check %s shows %q: %s", anon, name, k, r)
				}
			}
		}
		if strings.Contains(string(r.body), "pending") {
			t.Errorf("/health without a valid key (%v) shows the queue: %s", anon, r)
		}
	}
	r, _ := get()
	if !strings.Contains(string(r.body), "pending") {
		t.Errorf("/health with the key shows no details: %s", r)
	}
	figures(t, "3 requests without a valid key saw only states; with the key: %s", r.body)
}

// TestNULRejectedAtCreate is the row "a NUL byte in a command, NUL or =
// in an env name": the task was created (201) and failed only at run.
// Create, update and $execute must answer 422, and store nothing.
func TestNULRejectedAtCreate(t *testing.T) {
	s := start(t, config{db: sqliteIn(t.TempDir())})
	good := s.shellTask("echo ok", 0)
	commands := []string{"echo a\x00b", "\x00", "true\x00; rm -rf /tmp/x"}
	envs := []map[string]string{
		{"A\x00B": "1"}, {"A=B": "1"}, {"=": "1"}, {"": "1"}, {"\x00": "1"}, {"OK": "v\x00"}, {"PATH=/tmp:": "x"},
	}
	tried := 0
	expect422 := func(what string, r reply) {
		t.Helper()
		tried++
		if r.status != 422 || r.problemType() != "urn:servicekit:error:validation-failed" {
			t.Errorf("%s: %s, want 422 validation-failed", what, r)
		}
	}
	for _, c := range commands {
		expect422("create with command "+strconvQuote(c), s.do("POST", "/api/v1/tasks", shellBody(c, 0)))
		expect422("update with command "+strconvQuote(c), s.do("PATCH", "/api/v1/tasks/"+good, map[string]any{"command": c}))
		expect422("put with command "+strconvQuote(c), s.do("PUT", "/api/v1/tasks/"+good, map[string]any{"command": c}))
	}
	for _, e := range envs {
		body := shellBody("echo ok", 0)
		body["env"] = e
		expect422("create with env "+mapQuote(e), s.do("POST", "/api/v1/tasks", body))
		expect422("update with env "+mapQuote(e), s.do("PATCH", "/api/v1/tasks/"+good, map[string]any{"env": e}))
		expect422("$execute with env "+mapQuote(e), s.do("POST", "/api/v1/tasks/"+good+"/$execute", map[string]any{"env": e}))
	}
	var tasks []map[string]any
	s.call("GET", "/api/v1/tasks", nil, 200, &tasks)
	if len(tasks) != 1 || tasks[0]["command"] != "echo ok" {
		t.Errorf("after the refused writes the tasks are %v, want only the one good task unchanged", tasks)
	}
	if n := len(s.allJobs()); n != 0 {
		t.Errorf("%d jobs were created by refused $execute calls", n)
	}
	figures(t, "%d bad commands and env entries on create, update and $execute: all 422, nothing stored", tried)
}

func strconvQuote(s string) string { b, _ := json.Marshal(s); return string(b) }

func mapQuote(m map[string]string) string { b, _ := json.Marshal(m); return string(b) }
