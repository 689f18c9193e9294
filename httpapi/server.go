// Package httpapi is servicekit's REST API: huma operations on the standard
// library mux, wrapped so that every error — including the mux's own 404
// and 405 — is an RFC 9457 problem, and every response has an X-Request-ID.
package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
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
	Summary     string `json:"summary,omitempty"`
	Description string `json:"description,omitempty"`
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
		d.Metrics.linkGauges(d.Jobs, d.Logger)
		s.mux.Handle("GET /metrics", d.Metrics.handler())
	}
	s.registerConsole()
	s.handler = s.requestID(s.observe(s.authenticate(assumeJSON(s.idempotent(s.routeFallback(s.mux))))))
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
		writeProblem(w, r, problemf(404, "no route for %s %s", r.Method, r.URL.Path))
	})
}

// checkID returns a 400 invalid-ulid problem unless id is a ULID.
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
	case errors.Is(err, job.ErrShuttingDown):
		p := newProblem(503, "the server is shutting down")
		p.header = http.Header{"Retry-After": {"5"}}
		return p
	case errors.Is(err, context.Canceled):
		return newProblem(503, "request canceled")
	}
	if isUnavailable(err) {
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
