// Package httpapi is servicekit's REST API: huma operations on the standard
// library mux, wrapped so that every error — including the mux's own 404
// and 405 — is an RFC 9457 problem, and every response has an X-Request-ID.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
	"github.com/servicekit/servicekit/task"
)

// Info describes the service (GET /api/v1/info).
type Info struct {
	DisplayName string `json:"display_name"`
	Version     string `json:"version"`
	Summary     string `json:"summary"`
	Description string `json:"description"`
}

// Deps are what the API serves. Tasks may be nil (no task endpoints).
type Deps struct {
	Info      Info
	DB        *store.DB
	Jobs      *job.Scheduler
	Tasks     *task.Manager
	Artifacts *artifact.Manager
	Logger    *slog.Logger
	// Auth holds the API keys; none means no authentication.
	Auth Auth
	// Metrics, if set, are served at /metrics and count every request.
	Metrics *Metrics
	// HealthChecks are the program's own checks for GET /health.
	HealthChecks []HealthCheck
	// Started is when the service started, for uptime.
	Started time.Time
}

// Server is the HTTP handler.
type Server struct {
	d       Deps
	mux     *http.ServeMux
	api     huma.API
	handler http.Handler
}

// New builds the API.
func New(d Deps) *Server {
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	if d.Started.IsZero() {
		d.Started = time.Now()
	}
	s := &Server{d: d, mux: http.NewServeMux()}
	cfg := huma.DefaultConfig(d.Info.DisplayName, d.Info.Version)
	cfg.CreateHooks = nil // no $schema fields or Link headers in responses
	cfg.OpenAPIPath = "/openapi"
	cfg.Info.Description = d.Info.Description
	cfg.DocsPath = "" // huma's /docs loads its renderer from a CDN; registerDocs (docs.go) serves one from the binary
	cfg.Formats = map[string]huma.Format{"application/json": jsonFormat, "json": jsonFormat}
	cfg.Transformers = append(cfg.Transformers, s.finishProblem)
	s.api = humago.New(s.mux, cfg)
	s.registerService()
	if d.Tasks != nil {
		s.registerTasks()
	}
	if d.Jobs != nil {
		s.registerJobs()
	}
	if d.Artifacts != nil {
		s.registerArtifacts()
	}
	if d.Metrics != nil {
		s.mux.Handle("GET /metrics", d.Metrics.handler())
	}
	s.registerConsole()
	s.handler = s.requestID(canonicalIDs(s.observe(s.authenticate(assumeJSON(s.idempotent(s.routeFallback(s.mux)))))))
	return s
}

// API exposes the huma API so a program can add its own operations.
func (s *Server) API() huma.API { return s.api }

// Mux exposes the underlying mux for plain handlers (the web console).
func (s *Server) Mux() *http.ServeMux { return s.mux }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

type ctxKey int

const requestIDKey ctxKey = iota

// RequestID returns the request id of a request context.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// requestID gives every request an id: the caller's X-Request-ID when it is
// sane (printable ASCII, at most 128 bytes), else a new ULID.
func (s *Server) requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !saneRequestID(id) {
			id = ids.New()
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, id)))
	})
}

// assumeJSON treats a request body sent without a content type, or as
// curl -d's default application/x-www-form-urlencoded, as JSON: this API
// takes nothing else, and `curl -d '{…}'` should just work.
func assumeJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ct := r.Header.Get("Content-Type"); ct == "" || strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
			if r.ContentLength != 0 && r.Method != http.MethodGet {
				r.Header.Set("Content-Type", "application/json")
			}
		}
		next.ServeHTTP(w, r)
	})
}

func saneRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < 0x21 || c > 0x7e {
			return false
		}
	}
	return true
}

var methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodHead}

// routeFallback answers requests the mux has no route for with a problem
// (404, or 405 with Allow when the path exists for other methods), instead
// of the mux's plain-text replies.
func (s *Server) routeFallback(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := s.mux.Handler(r); pattern != "" {
			// GET /api/v1/tasks/functions would reach get-task as an id
			// that is no ULID; the $ route it forgot is the better answer.
			if hint := s.dollarHint(r.Method, r.URL.Path, false); hint != "" {
				writeProblem(w, r, problemf(404, "no route for %s %s%s", r.Method, r.URL.Path, hint))
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		var allow []string
		for _, m := range methods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, p := s.mux.Handler(probe); p != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			p := problemf(405, "method %s is not allowed on %s; allowed: %s", r.Method, r.URL.Path, strings.Join(allow, ", "))
			p.header = http.Header{"Allow": {strings.Join(allow, ", ")}}
			writeProblem(w, r, p)
			return
		}
		writeProblem(w, r, problemf(404, "no route for %s %s%s", r.Method, r.URL.Path, s.routeHint(r.Method, r.URL.Path)))
	})
}

// checkID returns a 400 invalid-ulid problem unless id is a ULID. Handlers
// get ids already in upper case from canonicalIDs.
func checkID(name, id string) error {
	if !ids.Valid(id) {
		return invalidULID(name, id)
	}
	return nil
}

// toProblem maps errors from the managers to problems; anything unknown is
// logged with the request id and answered as a 500 without internals.
func (s *Server) toProblem(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	var ve *task.ValidationError
	if errors.As(err, &ve) {
		fields := make([]FieldDetail, len(ve.Fields))
		for i, f := range ve.Fields {
			fields[i] = FieldDetail{Location: f.Location, Message: f.Message}
		}
		return validationFailed(ve.Msg, fields...)
	}
	var fe *task.ForbiddenError
	if errors.As(err, &fe) {
		return newProblem(403, "shell policy refuses the command: "+fe.Reason)
	}
	switch {
	case errors.Is(err, task.ErrNotFound), errors.Is(err, job.ErrNotFound), errors.Is(err, artifact.ErrNotFound):
		return newProblem(404, err.Error())
	case errors.Is(err, task.ErrDisabled), errors.Is(err, task.ErrNotRegistered):
		msg := err.Error()
		if _, after, ok := strings.Cut(msg, ": "); ok {
			msg = after
		}
		if errors.Is(err, task.ErrNotRegistered) {
			msg += "; register the function in the server's program (task.MustRegister) and restart it, " +
				"or change the task's command; GET /api/v1/tasks/$functions lists the registered ones"
		}
		return newProblem(409, msg)
	case errors.Is(err, job.ErrAlreadyFinished):
		return newProblem(409, err.Error())
	case errors.Is(err, artifact.ErrHasChildren):
		return newProblem(409, err.Error()+"; delete with ?cascade=true to remove the subtree")
	case errors.Is(err, artifact.ErrParentUnknown):
		return validationFailed(err.Error(), FieldDetail{Location: "body.parent_id", Message: err.Error()})
	case errors.Is(err, job.ErrQueueFull):
		p := newProblem(429, "the pending job queue is full; retry later")
		p.header = http.Header{"Retry-After": {"1"}}
		return p
	case errors.Is(err, job.ErrStillRunning):
		p := newProblem(503, err.Error()+"; repeat the DELETE to confirm")
		p.header = http.Header{"Retry-After": {"5"}}
		return p
	case errors.Is(err, job.ErrShuttingDown):
		p := newProblem(503, "the server is shutting down")
		p.header = http.Header{"Retry-After": {"5"}}
		return p
	case errors.Is(err, context.Canceled):
		return newProblem(503, "request canceled")
	}
	if store.Unavailable(err) || isUnavailable(err) {
		s.d.Logger.Error("database unavailable", "request_id", RequestID(ctx), "error", err)
		p := newProblem(503, "the database is unavailable; retry later")
		p.header = http.Header{"Retry-After": {"5"}}
		return p
	}
	s.d.Logger.Error("internal error", "request_id", RequestID(ctx), "error", err)
	return newProblem(500, "internal error; the server log has the details under request id "+RequestID(ctx))
}

// isUnavailable guesses whether err means the database cannot be reached
// (as opposed to a bug), so clients get a retryable 503.
func isUnavailable(err error) bool {
	msg := err.Error()
	for _, s := range []string{"connection refused", "database is locked", "SQLITE_BUSY", "unable to open database",
		"disk I/O error", "no such table", "sql: database is closed", "failed to connect", "connection reset", "broken pipe", "readonly database"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// canonicalIDs upper-cases the ULIDs in a request's path and in its *_id
// query values before anything routes or looks them up. Crockford base32 is
// case-insensitive, so 01arz3… names the same task as 01ARZ3…, but ids are
// stored in upper case; doing it here, once, covers every handler and
// scopes idempotency keys to the canonical path.
func canonicalIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/api/") {
			next.ServeHTTP(w, r)
			return
		}
		path, changed := upperULIDs(r.URL.Path)
		raw, rawChanged := upperULIDs(r.URL.RawPath)
		var q url.Values
		qChanged := false
		if strings.Contains(r.URL.RawQuery, "id=") {
			q = r.URL.Query()
		}
		for k, vs := range q {
			if !strings.HasSuffix(k, "id") {
				continue
			}
			for i, v := range vs {
				if up := strings.ToUpper(v); up != v && ids.Valid(v) {
					vs[i], qChanged = up, true
				}
			}
		}
		if changed || rawChanged || qChanged {
			r = r.Clone(r.Context())
			r.URL.Path, r.URL.RawPath = path, raw
			if qChanged {
				r.URL.RawQuery = q.Encode()
			}
		}
		next.ServeHTTP(w, r)
	})
}

// upperULIDs upper-cases each path segment that is a ULID in another case.
func upperULIDs(p string) (string, bool) {
	segs := strings.Split(p, "/")
	changed := false
	for i, seg := range segs {
		if up := strings.ToUpper(seg); up != seg && len(seg) == 26 && ids.Valid(seg) {
			segs[i], changed = up, true
		}
	}
	if !changed {
		return p, false
	}
	return strings.Join(segs, "/"), true
}

// routeHint completes a 404's detail with the route the request most
// likely meant. The usual miss is an action without its $: typed as
// …/execute, or lost to the shell, which expands an unquoted $execute to
// nothing and leaves …/{id}/ behind.
func (s *Server) routeHint(method, path string) string {
	if base, ok := strings.CutSuffix(path, "/"); ok && base != "" {
		var hints []string
		if slices.Contains(s.methodsOn(base), method) {
			hints = append(hints, "did you mean "+base+" (without the trailing slash)?")
		}
		if actions := s.actionsOf(method, base); len(actions) > 0 {
			hints = append(hints, fmt.Sprintf("an action (%s) may have been lost: a shell replaces an unquoted $%s with nothing, "+
				"so put the URL in single quotes: '%s/%s'", strings.Join(actions, ", "), actions[0][1:], base, actions[0]))
		}
		if len(hints) == 0 {
			return ""
		}
		return "; " + strings.Join(hints, " Or ")
	}
	return s.dollarHint(method, path, true)
}

// dollarHint suggests the path with its last segment made an action
// (execute → $execute) when that is a route: for any method when nothing
// else matched, else only for the request's method.
func (s *Server) dollarHint(method, path string, anyMethod bool) string {
	i := strings.LastIndex(path, "/")
	last := path[i+1:]
	if last == "" || last[0] == '$' || ids.Valid(last) {
		return ""
	}
	action, known := "/$"+last, false
	for tmpl := range s.api.OpenAPI().Paths { // a cheap filter: this runs for every routed request
		known = known || strings.HasSuffix(tmpl, action)
	}
	if !known {
		return ""
	}
	with := path[:i+1] + "$" + last
	ms := s.methodsOn(with)
	if len(ms) == 0 || (!anyMethod && !slices.Contains(ms, method)) {
		return ""
	}
	return fmt.Sprintf("; did you mean %s %s? Actions start with $ (in a shell, put the URL in single quotes)", strings.Join(ms, " or "), with)
}

// methodsOn lists the methods the API's operations serve on path. As in
// the mux, a literal segment wins over a {param}: /api/v1/tasks/$functions
// is not also /api/v1/tasks/{id}.
func (s *Server) methodsOn(path string) []string {
	var out []string
	best := -1
	for tmpl, item := range s.api.OpenAPI().Paths {
		if !matchTemplate(tmpl, path) {
			continue
		}
		lit := strings.Count(tmpl, "/") - strings.Count(tmpl, "{")
		if lit < best {
			continue
		}
		if lit > best {
			out, best = nil, lit
		}
		for _, m := range methods {
			if m != http.MethodHead && operation(item, m) != nil && !slices.Contains(out, m) {
				out = append(out, m)
			}
		}
	}
	return out
}

// actionsOf lists, sorted, the $actions under path that take method.
func (s *Server) actionsOf(method, path string) []string {
	var out []string
	for tmpl, item := range s.api.OpenAPI().Paths {
		i := strings.LastIndex(tmpl, "/")
		if strings.HasPrefix(tmpl[i+1:], "$") && matchTemplate(tmpl[:i], path) && operation(item, method) != nil {
			out = append(out, tmpl[i+1:])
		}
	}
	slices.Sort(out)
	return out
}

func operation(item *huma.PathItem, method string) *huma.Operation {
	switch method {
	case http.MethodGet, http.MethodHead:
		return item.Get
	case http.MethodPost:
		return item.Post
	case http.MethodPut:
		return item.Put
	case http.MethodPatch:
		return item.Patch
	case http.MethodDelete:
		return item.Delete
	}
	return nil
}

// matchTemplate matches a path against an OpenAPI path template, where a
// {name} segment stands for any one non-empty segment.
func matchTemplate(tmpl, path string) bool {
	ts, ps := strings.Split(tmpl, "/"), strings.Split(path, "/")
	if len(ts) != len(ps) {
		return false
	}
	for i, t := range ts {
		if t != ps[i] && !(strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") && ps[i] != "") {
			return false
		}
	}
	return true
}
