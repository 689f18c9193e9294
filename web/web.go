// Package web is servicekit's browser console: plain HTML, CSS and
// JavaScript modules embedded in the binary, so the server that runs the
// jobs also serves the UI to watch them — no build step, no npm, and no CDN,
// because the server may run on a machine without internet access.
//
// The console is a client of the public JSON API under /api/v1 and nothing
// else: it has no server-side state, renders no templates, and so needs no
// access to the managers. That is also why this package must not import
// httpapi (httpapi mounts this handler, not the other way round).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var embedded embed.FS

// IndexPath is where the console page is served; AssetPrefix is the path
// prefix of its static files. httpapi mounts the handler on exactly these.
const (
	IndexPath   = "/"
	AssetPrefix = "/ui/"
)

// asset is one embedded file, read once at start-up so that its ETag (a
// content hash) is computed once and every request is served from memory.
type asset struct {
	name        string
	body        []byte
	etag        string
	contentType string
}

// contentSecurityPolicy allows only the console's own files and same-origin
// API calls. The console never needs inline script or a third-party origin,
// so forbidding them costs nothing and blunts any injection bug.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the console page at exactly "/" and its assets under
// "/ui/". Any other path, and any asset that does not exist, is a 404
// problem+json like the rest of the API, so a typo is never answered with
// the page (which would hide broken links behind a 200).
func Handler() http.Handler {
	assets, err := load()
	if err != nil {
		// The files are compiled in: failing to read them is a build defect.
		panic("web: reading embedded console files: " + err.Error())
	}
	return &handler{assets: assets}
}

type handler struct {
	assets map[string]*asset // keyed by the name under static/
}

func load() (map[string]*asset, error) {
	root, err := fs.Sub(embedded, "static")
	if err != nil {
		return nil, err
	}
	assets := map[string]*asset{}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = http.DetectContentType(body)
		}
		// Browsers refuse ES modules served with a non-JavaScript type, and
		// some systems' mime tables map .js to something odd; pin it.
		if strings.HasSuffix(name, ".js") {
			ct = "text/javascript; charset=utf-8"
		}
		assets[name] = &asset{name: name, body: body, contentType: ct,
			etag: `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	return assets, err
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeProblem(w, r, http.StatusMethodNotAllowed, "the console is read-only: use GET")
		return
	}
	var a *asset
	switch p := r.URL.Path; {
	case p == IndexPath:
		a = h.assets["index.html"]
	case strings.HasPrefix(p, AssetPrefix):
		name := strings.TrimPrefix(p, AssetPrefix)
		// index.html is only served at "/", so the page has one address.
		if name != "index.html" {
			a = h.assets[name]
		}
	}
	if a == nil {
		writeProblem(w, r, http.StatusNotFound, "no console file at "+r.URL.Path)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("Referrer-Policy", "no-referrer")
	// no-cache means "revalidate", not "don't store": the browser keeps the
	// files and gets a cheap 304 via the ETag, yet an upgraded server's new
	// console is picked up on the next load instead of mixing old and new
	// modules.
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", a.etag)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}

// writeProblem answers with an RFC 9457 problem shaped like the API's own
// (httpapi cannot be imported here: it imports this package).
func writeProblem(w http.ResponseWriter, r *http.Request, status int, detail string) {
	slug := map[int]string{http.StatusNotFound: "not-found", http.StatusMethodNotAllowed: "method-not-allowed"}[status]
	body, _ := json.Marshal(map[string]any{
		"type": "urn:servicekit:error:" + slug, "title": http.StatusText(status), "status": status,
		"detail": detail, "instance": r.URL.Path,
	})
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}
