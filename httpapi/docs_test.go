package httpapi_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/httpapi"
	"github.com/servicekit/servicekit/task"
)

// newService builds a real service (SQLite in a temp dir) with registry r
// and, if keys are given, API keys.
func newService(t *testing.T, r *task.Registry, keys ...string) *servicekit.Service {
	t.Helper()
	b := servicekit.New(servicekit.Info{DisplayName: "docs-test", Version: "1.2.3"}).
		WithDatabase("sqlite:///" + filepath.Join(t.TempDir(), "t.db")).
		WithRegistry(r).WithTasks().
		WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if len(keys) > 0 {
		b = b.WithAPIKeys(keys...)
	}
	svc, err := b.Build(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

func get(t *testing.T, h http.Handler, path string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// TestDocsPage checks that /docs is served from the binary: it names every
// operation of the OpenAPI document itself (so it is useful with no
// network and no JavaScript), links to /openapi.json, loads only files of
// this server, and forbids other origins by its CSP.
func TestDocsPage(t *testing.T) {
	svc := newService(t, task.NewRegistry())
	rec := get(t, svc, "/docs")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET /docs = %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	page := rec.Body.String()
	if !strings.Contains(page, `href="openapi.json"`) {
		t.Error("the docs page has no link to openapi.json")
	}
	if strings.Contains(page, "://") {
		t.Errorf("the docs page refers to another origin:\n%s", page)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("CSP = %q", csp)
	}

	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(get(t, svc, "/openapi.json").Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	n := 0
	for p, ops := range doc.Paths {
		for m, op := range ops {
			n++
			want := `<li data-operation="` + op.OperationID + `"><code>` + strings.ToUpper(m) + `</code> ` + p
			if !strings.Contains(page, want) {
				t.Errorf("the docs page does not list %s %s (%s)", strings.ToUpper(m), p, op.OperationID)
			}
		}
	}
	if n < 20 {
		t.Errorf("the OpenAPI document has only %d operations", n)
	}

	// Every file the page loads is served by this server.
	for _, asset := range []string{"swagger-ui.css", "docs.css", "swagger-ui-bundle.js", "init.js"} {
		if !strings.Contains(page, `"`+strings.TrimPrefix(httpapi.DocsAssetPrefix, "/")+asset+`"`) {
			t.Errorf("the page does not load %s", asset)
		}
		if r := get(t, svc, httpapi.DocsAssetPrefix+asset); r.Code != http.StatusOK {
			t.Errorf("GET %s%s = %d", httpapi.DocsAssetPrefix, asset, r.Code)
		}
	}
}

// TestDocsAssets checks the renderer's files: gzipped for a client that
// accepts it, plain for one that does not, the same content either way,
// with types browsers accept for scripts and styles, and a 404 problem for
// a file that does not exist.
func TestDocsAssets(t *testing.T) {
	svc := newService(t, task.NewRegistry())
	const bundle = httpapi.DocsAssetPrefix + "swagger-ui-bundle.js"

	plain := get(t, svc, bundle)
	if plain.Code != http.StatusOK || plain.Header().Get("Content-Encoding") != "" {
		t.Fatalf("GET %s without Accept-Encoding = %d, Content-Encoding %q", bundle, plain.Code, plain.Header().Get("Content-Encoding"))
	}
	if ct := plain.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/javascript") {
		t.Errorf("Content-Type = %q", ct)
	}
	if !bytes.Contains(plain.Body.Bytes(), []byte("SwaggerUIBundle")) || plain.Body.Len() < 500_000 {
		t.Errorf("the bundle is %d bytes and does not define SwaggerUIBundle", plain.Body.Len())
	}

	gz := get(t, svc, bundle, "Accept-Encoding", "gzip, deflate, br")
	if gz.Header().Get("Content-Encoding") != "gzip" || gz.Body.Len() >= plain.Body.Len() {
		t.Fatalf("with Accept-Encoding gzip: Content-Encoding %q, %d bytes", gz.Header().Get("Content-Encoding"), gz.Body.Len())
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain.Body.Bytes()) {
		t.Errorf("the gzipped bundle does not unzip to the plain one (err %v)", err)
	}
	if gz.Header().Get("ETag") == plain.Header().Get("ETag") {
		t.Error("the gzipped and plain bundles share an ETag")
	}
	if r := get(t, svc, bundle, "Accept-Encoding", "gzip;q=0"); r.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 got gzip")
	}
	if r := get(t, svc, bundle, "If-None-Match", plain.Header().Get("ETag")); r.Code != http.StatusNotModified {
		t.Errorf("revalidating = %d, want 304", r.Code)
	}

	if ct := get(t, svc, httpapi.DocsAssetPrefix+"swagger-ui.css").Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/css") {
		t.Errorf("swagger-ui.css Content-Type = %q", ct)
	}
	r := get(t, svc, httpapi.DocsAssetPrefix+"nope.js")
	if r.Code != http.StatusNotFound || r.Header().Get("Content-Type") != "application/problem+json" ||
		!strings.Contains(r.Body.String(), httpapi.DocsAssetPrefix+"nope.js") {
		t.Errorf("missing asset: %d %q %s", r.Code, r.Header().Get("Content-Type"), r.Body)
	}
	// The console's own files are still the console's.
	if r := get(t, svc, "/ui/app.js"); r.Code != http.StatusOK {
		t.Errorf("GET /ui/app.js = %d", r.Code)
	}
}

// TestDocsWithoutKey checks that on a server with API keys the docs page and
// every file it loads are served without one, as SPEC §3 says of /docs,
// while the API itself still wants the key.
func TestDocsWithoutKey(t *testing.T) {
	svc := newService(t, task.NewRegistry(), "secret")
	for _, p := range []string{"/docs", "/openapi.json", httpapi.DocsAssetPrefix + "swagger-ui-bundle.js", httpapi.DocsAssetPrefix + "init.js"} {
		if r := get(t, svc, p); r.Code != http.StatusOK {
			t.Errorf("GET %s without a key = %d, want 200", p, r.Code)
		}
	}
	if r := get(t, svc, "/api/v1/jobs/$summary"); r.Code != http.StatusUnauthorized {
		t.Errorf("GET /api/v1/jobs/$summary without a key = %d, want 401", r.Code)
	}
}
