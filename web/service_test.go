package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestServiceServesConsole checks the console as mounted by the real
// service (httpapi's registerConsole): the page and its files are served,
// while unknown routes and wrong methods stay problem+json — the reason
// the mount patterns are "GET /{$}" and "GET /ui/" rather than "GET /".
func TestServiceServesConsole(t *testing.T) {
	svc, _ := startService(t, nil)
	for _, c := range []struct {
		method, path string
		status       int
		contentType  string
	}{
		{http.MethodGet, "/", 200, "text/html"},
		{http.MethodHead, "/", 200, "text/html"},
		{http.MethodGet, "/ui/app.js", 200, "text/javascript"},
		{http.MethodGet, "/ui/nope", 404, "application/problem+json"},
		{http.MethodGet, "/nope", 404, "application/problem+json"},
		{http.MethodGet, "/api/v1/nope", 404, "application/problem+json"},
		{http.MethodPost, "/", 405, "application/problem+json"},
		{http.MethodPost, "/ui/app.js", 405, "application/problem+json"},
	} {
		rec := httptest.NewRecorder()
		svc.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
		if rec.Code != c.status || !strings.HasPrefix(rec.Header().Get("Content-Type"), c.contentType) {
			t.Errorf("%s %s = %d %q, want %d %s", c.method, c.path, rec.Code, rec.Header().Get("Content-Type"), c.status, c.contentType)
		}
	}
}
