package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/servicekit/servicekit/web"
)

func serve(t *testing.T, method, path string, hdr http.Header) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	web.Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, res *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestIndex(t *testing.T) {
	res := serve(t, http.MethodGet, "/", nil)
	b := body(t, res)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET / = %d, want 200", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type = %q, want text/html", ct)
	}
	for _, want := range []string{`id="app"`, `src="ui/app.js"`, `type="module"`} {
		if !strings.Contains(b, want) {
			t.Errorf("index lacks %s", want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}

func TestAssets(t *testing.T) {
	for path, ct := range map[string]string{
		"/ui/app.js":    "text/javascript",
		"/ui/api.js":    "text/javascript",
		"/ui/style.css": "text/css",
	} {
		res := serve(t, http.MethodGet, path, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, res.StatusCode)
			continue
		}
		if got := res.Header.Get("Content-Type"); !strings.HasPrefix(got, ct) {
			t.Errorf("GET %s Content-Type = %q, want %s", path, got, ct)
		}
		if res.Header.Get("ETag") == "" || res.Header.Get("Cache-Control") == "" {
			t.Errorf("GET %s: no ETag or Cache-Control: %v", path, res.Header)
		}
	}
}

// TestRevalidate checks that a browser holding the current file gets a 304:
// the console is served with no-cache, so revalidation must be cheap.
func TestRevalidate(t *testing.T) {
	etag := serve(t, http.MethodGet, "/ui/app.js", nil).Header.Get("ETag")
	res := serve(t, http.MethodGet, "/ui/app.js", http.Header{"If-None-Match": {etag}})
	if res.StatusCode != http.StatusNotModified {
		t.Fatalf("If-None-Match with the current ETag = %d, want 304", res.StatusCode)
	}
}

func TestNotFound(t *testing.T) {
	for _, path := range []string{"/ui/nope", "/ui/", "/ui/index.html", "/elsewhere", "/ui/../web.go"} {
		res := serve(t, http.MethodGet, path, nil)
		b := body(t, res)
		if res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", path, res.StatusCode)
			continue
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("GET %s Content-Type = %q, want application/problem+json", path, ct)
		}
		var p struct {
			Type   string `json:"type"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal([]byte(b), &p); err != nil || p.Type != "urn:servicekit:error:not-found" || p.Status != 404 {
			t.Errorf("GET %s body = %s", path, b)
		}
	}
	if res := serve(t, http.MethodPost, "/ui/app.js", nil); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/app.js = %d, want 405", res.StatusCode)
	}
}

// TestModuleImports follows every relative import in the served modules, so
// a renamed file cannot leave the console loading a 404 that no Go test
// would otherwise notice.
func TestModuleImports(t *testing.T) {
	importRe := regexp.MustCompile(`(?m)^\s*(?:import|export)\b[^'"]*?from\s+'(\./[^']+)'`)
	seen := map[string]bool{}
	queue := []string{"app.js"}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		res := serve(t, http.MethodGet, "/ui/"+name, nil)
		if res.StatusCode != http.StatusOK {
			t.Errorf("module %s: GET = %d", name, res.StatusCode)
			continue
		}
		for _, m := range importRe.FindAllStringSubmatch(body(t, res), -1) {
			queue = append(queue, strings.TrimPrefix(m[1], "./"))
		}
	}
	for _, want := range []string{"api.js", "dom.js", "tasks.js", "jobs.js", "artifacts.js", "overview.js", "schemaform.js", "schedule.js"} {
		if !seen[want] {
			t.Errorf("app.js does not reach %s", want)
		}
	}
}
