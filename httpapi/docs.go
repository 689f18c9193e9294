package httpapi

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	swaggerui "github.com/swaggest/swgui/v5/static"
)

// The API docs page is Swagger UI, served from the binary: huma's own /docs
// page loads its renderer from a CDN, so it is blank on a machine without
// internet access or behind a proxy — exactly where a self-hosted job
// server often runs. The renderer's files come from the Go module
// github.com/swaggest/swgui (Swagger UI 5, gzipped, pinned by go.sum), so
// `go build` needs no network and nothing large is committed here.
//
// The page is ours (html/template), not the module's: it lists every
// operation server-side, so it says what the API has even before (or
// without) JavaScript, links to the OpenAPI document, and runs no inline
// script, so its Content-Security-Policy can forbid every other origin.
const (
	// DocsPath is the docs page.
	DocsPath = "/docs"
	// DocsAssetPrefix is where the renderer's files are served. It sits
	// under the console's /ui/, which is open without an API key like
	// /docs itself, so the page also loads on a server with keys.
	DocsAssetPrefix = "/ui/docs/"
)

// docsCSP allows the page's own files and same-origin calls only; Swagger
// UI sets inline styles (hence 'unsafe-inline' for style-src) but needs no
// inline script, eval or third-party origin. "Try it out" calls the API on
// this origin (connect-src 'self').
const docsCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// docsInitJS starts Swagger UI on the document named by the page. Its
// requestInterceptor sends the API key the console keeps in this browser
// (same origin, same localStorage entry), so "Try it out" works on a
// server with keys once the console has been given one.
const docsInitJS = `// Starts Swagger UI on the page's OpenAPI document (servicekit /docs).
window.addEventListener('load', function () {
  var root = document.getElementById('swagger-ui');
  window.ui = SwaggerUIBundle({
    url: root.dataset.url,
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    defaultModelsExpandDepth: -1,
    requestInterceptor: function (req) {
      var key = '';
      try { key = localStorage.getItem('servicekit.apiKey') || ''; } catch (e) {}
      if (key && !req.loadSpec && !req.headers['X-API-Key']) req.headers['X-API-Key'] = key;
      return req;
    },
    onComplete: function () { document.documentElement.dataset.docs = 'ready'; }
  });
});
`

const docsCSS = `body { margin: 0; font-family: system-ui, sans-serif; background: #fafafa; }
.docs-top { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; align-items: baseline; padding: .6rem 1.25rem;
  background: #1c2330; color: #dfe5ee; font-size: 14px; }
.docs-top a { color: #9cc0ff; }
.docs-top strong { font-size: 15px; }
.docs-ops { max-width: 1460px; margin: 0 auto; padding: 0 20px; font-size: 14px; }
.docs-ops ul { list-style: none; padding: 0; }
.docs-ops li { padding: .2rem 0; }
.docs-ops code { font-weight: 600; display: inline-block; min-width: 4.5em; }
`

var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} — API docs</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="{{.Assets}}swagger-ui.css">
<link rel="stylesheet" href="{{.Assets}}docs.css">
<script src="{{.Assets}}swagger-ui-bundle.js" defer></script>
<script src="{{.Assets}}init.js" defer></script>
</head>
<body>
<header class="docs-top">
<strong>{{.Title}}{{with .Version}} {{.}}{{end}} — API</strong>
<span>OpenAPI document: <a id="openapi-json" href="openapi.json">openapi.json</a> · <a href="openapi.yaml">openapi.yaml</a></span>
<a href="./">web console</a>
</header>
<div id="swagger-ui" data-url="openapi.json">
<section class="docs-ops" id="docs-operations">
<p>{{len .Ops}} operations (the interactive view needs JavaScript):</p>
<ul>{{range .Ops}}
<li data-operation="{{.ID}}"><code>{{.Method}}</code> {{.Path}}{{with .Summary}} — {{.}}{{end}}</li>{{end}}
</ul>
</section>
</div>
</body>
</html>
`))

type docsOp struct{ ID, Method, Path, Summary string }

// registerDocs serves the docs page and the renderer's files.
func (s *Server) registerDocs() {
	assets := docsAssets()
	s.mux.HandleFunc("GET "+DocsPath, func(w http.ResponseWriter, r *http.Request) {
		oapi := s.api.OpenAPI()
		data := struct {
			Title, Version, Assets string
			Ops                    []docsOp
		}{Title: oapi.Info.Title, Version: oapi.Info.Version, Assets: strings.TrimPrefix(DocsAssetPrefix, "/"), Ops: docsOperations(oapi)}
		var b bytes.Buffer
		if err := docsPage.Execute(&b, data); err != nil {
			s.d.Logger.Error("rendering /docs", "request_id", RequestID(r.Context()), "error", err)
			writeProblem(w, r, newProblem(500, "internal error rendering the docs page; the server log has the details under request id "+RequestID(r.Context())))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", docsCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "docs.html", time.Time{}, bytes.NewReader(b.Bytes()))
	})
	s.mux.Handle("GET "+DocsAssetPrefix, assets)
}

// docsOperations lists the document's operations by path, in a fixed
// method order, for the page's server-side list.
func docsOperations(oapi *huma.OpenAPI) []docsOp {
	var out []docsOp
	paths := make([]string, 0, len(oapi.Paths))
	for p := range oapi.Paths {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		it := oapi.Paths[p]
		for _, mo := range []struct {
			m  string
			op *huma.Operation
		}{{"GET", it.Get}, {"POST", it.Post}, {"PUT", it.Put}, {"PATCH", it.Patch}, {"DELETE", it.Delete}, {"HEAD", it.Head}} {
			if mo.op != nil && !mo.op.Hidden {
				out = append(out, docsOp{ID: mo.op.OperationID, Method: mo.m, Path: p, Summary: mo.op.Summary})
			}
		}
	}
	return out
}

// docsAsset is one renderer file, kept both gzipped (as the module ships
// it, sent to the browsers that accept gzip, i.e. all of them) and plain
// (for a client that does not).
type docsAsset struct {
	gz, plain   []byte
	etag        string
	contentType string
}

type docsFiles map[string]*docsAsset

// docsAssets reads the module's files, and adds the page's own script and
// style, once at start-up.
func docsAssets() docsFiles {
	files := docsFiles{}
	add := func(name string, plain, gz []byte) {
		sum := sha256.Sum256(plain)
		ct := mime.TypeByExtension(path.Ext(name))
		switch path.Ext(name) {
		case ".js":
			ct = "text/javascript; charset=utf-8"
		case ".css":
			ct = "text/css; charset=utf-8"
		}
		files[name] = &docsAsset{gz: gz, plain: plain, contentType: ct, etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
	}
	err := fs.WalkDir(swaggerui.FS, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(swaggerui.FS, name)
		if err != nil {
			return err
		}
		if base, ok := strings.CutSuffix(name, ".gz"); ok {
			zr, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return err
			}
			plain, err := io.ReadAll(zr)
			if err != nil {
				return err
			}
			add(base, plain, b)
			return nil
		}
		add(name, b, nil)
		return nil
	})
	if err != nil {
		// The files are compiled in: failing to read them is a build defect.
		panic("httpapi: reading the embedded Swagger UI files: " + err.Error())
	}
	add("init.js", []byte(docsInitJS), nil)
	add("docs.css", []byte(docsCSS), nil)
	return files
}

func (f docsFiles) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, DocsAssetPrefix)
	a := f[name]
	if a == nil {
		writeProblem(w, r, problemf(404, "no docs file at %s", r.URL.Path))
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	h.Add("Vary", "Accept-Encoding")
	body := a.plain
	etag := a.etag
	if a.gz != nil && acceptsGzip(r) {
		body = a.gz
		// A different representation needs its own validator.
		etag = strings.TrimSuffix(a.etag, `"`) + `-gz"`
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether Accept-Encoding allows gzip (a q=0 refuses it).
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") || strings.TrimSpace(coding) == "*" {
			q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
			return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
		}
	}
	return false
}
