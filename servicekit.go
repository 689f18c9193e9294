// Package servicekit runs tasks — registered Go functions and shell
// commands — as durable jobs behind a REST API.
//
// The server binary is this package used by cmd/servicekit; a program embeds
// the same thing with the builder:
//
//	svc, err := servicekit.New(servicekit.Info{DisplayName: "Task Service"}).
//		WithHealth().
//		WithDatabase("sqlite:///./data.db").
//		WithJobs(5).
//		WithTasks().
//		Build(ctx)
//	// svc is an http.Handler; svc.Tasks, svc.Jobs and svc.Artifacts are the Go API.
//	defer svc.Close()
//
// Build opens and migrates the database and starts job processing, so the
// service works as soon as it is built. ListenAndServe serves HTTP with a
// graceful shutdown; Run waits for its context and then shuts down, for a
// program that mounts the handler in its own server.
package servicekit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/httpapi"
	"github.com/servicekit/servicekit/internal/connlimit"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
	"github.com/servicekit/servicekit/task"
)

// Version is the servicekit release.
const Version = "0.1.0"

// Info describes the service (GET /api/v1/info).
type Info = httpapi.Info

// Builder assembles a Service. Its methods return the builder for chaining;
// the first error is reported by Build.
type Builder struct {
	info        Info
	dbURL       string
	jobOpt      job.Options
	tasks       bool
	registry    *task.Registry
	policy      task.ShellPolicy
	provided    map[reflect.Type]reflect.Value
	logger      *slog.Logger
	shutdownFor time.Duration
	auth        httpapi.Auth
	health      []HealthCheck
	err         error
}

// WithAPIKeys requires one of keys on every request but /health, /openapi.json,
// /docs and the console's static files (X-API-Key or Authorization: Bearer).
func (b *Builder) WithAPIKeys(keys ...string) *Builder {
	b.auth.Keys = append(b.auth.Keys, keys...)
	return b
}

// WithAPIKeyHeader changes the header that carries a key (default X-API-Key).
func (b *Builder) WithAPIKeyHeader(name string) *Builder { b.auth.Header = name; return b }

// New starts a builder.
func New(info Info) *Builder {
	if info.DisplayName == "" {
		info.DisplayName = "servicekit"
	}
	if info.Version == "" {
		info.Version = Version
	}
	return &Builder{info: info, dbURL: store.DefaultURL, provided: map[reflect.Type]reflect.Value{},
		shutdownFor: 30 * time.Second}
}

// HealthCheck is a check of the program's own for GET /health.
type HealthCheck = httpapi.HealthCheck

// WithHealth adds checks that GET /health runs beside the built-in database
// and scheduler checks: a failing one makes the service unhealthy (503), or
// degraded (200) if it Degrades. GET /health is served with or without it.
func (b *Builder) WithHealth(checks ...HealthCheck) *Builder {
	for _, c := range checks {
		switch {
		case c.Name == "" || c.Check == nil:
			b.err = errors.Join(b.err, errors.New("servicekit: WithHealth: a check needs a Name and a Check func"))
		case c.Name == "database" || c.Name == "scheduler" || slices.ContainsFunc(b.health, func(h HealthCheck) bool { return h.Name == c.Name }):
			b.err = errors.Join(b.err, fmt.Errorf("servicekit: WithHealth: check name %q is already taken", c.Name))
		default:
			b.health = append(b.health, c)
		}
	}
	return b
}

// WithDatabase sets the database URL (default sqlite:///./servicekit.db).
func (b *Builder) WithDatabase(url string) *Builder { b.dbURL = url; return b }

// WithJobs sets how many jobs run at once on this node (default 2 × CPU cores, at least 4).
func (b *Builder) WithJobs(maxConcurrency int) *Builder {
	b.jobOpt.MaxConcurrency = maxConcurrency
	return b
}

// WithJobOptions sets the job engine's options (output limit, retention, leases…).
func (b *Builder) WithJobOptions(o job.Options) *Builder {
	mc := b.jobOpt.MaxConcurrency
	b.jobOpt = o
	if o.MaxConcurrency == 0 {
		b.jobOpt.MaxConcurrency = mc
	}
	return b
}

// WithTasks serves the task API and runs function and shell jobs.
func (b *Builder) WithTasks() *Builder { b.tasks = true; return b }

// WithRegistry uses r instead of the process-wide task.Default registry.
func (b *Builder) WithRegistry(r *task.Registry) *Builder { b.registry = r; return b }

// WithShellPolicy vets shell commands on create, update, execute and start.
func (b *Builder) WithShellPolicy(p task.ShellPolicy) *Builder { b.policy = p; return b }

// WithLogger sets the logger (default slog.Default()).
func (b *Builder) WithLogger(l *slog.Logger) *Builder { b.logger = l; return b }

// WithShutdownTimeout sets how long running jobs may finish on shutdown (default 30 s).
func (b *Builder) WithShutdownTimeout(d time.Duration) *Builder { b.shutdownFor = d; return b }

// Provide makes v available to task functions that take a parameter of v's
// dynamic type. For an interface type use ProvideAs.
func (b *Builder) Provide(v any) *Builder {
	if v == nil {
		b.err = errors.Join(b.err, errors.New("servicekit: Provide(nil)"))
		return b
	}
	b.provided[reflect.TypeOf(v)] = reflect.ValueOf(v)
	return b
}

// ProvideAs makes v available to task functions under the type T, which may be an interface.
func ProvideAs[T any](b *Builder, v T) *Builder {
	b.provided[reflect.TypeFor[T]()] = reflect.ValueOf(&v).Elem()
	return b
}

// Service is a built servicekit: an http.Handler plus the Go managers.
type Service struct {
	*httpapi.Server
	DB        *store.DB
	Jobs      *job.Scheduler
	Tasks     *task.Manager // nil without WithTasks
	Artifacts *artifact.Manager

	log         *slog.Logger
	shutdownFor time.Duration
	closeOnce   sync.Once
	stopPurge   context.CancelFunc
	stopCron    func() // stops the schedule loop and waits for it
}

// Build opens and migrates the database and starts job processing.
func (b *Builder) Build(ctx context.Context) (*Service, error) {
	if b.err != nil {
		return nil, b.err
	}
	log := b.logger
	if log == nil {
		log = slog.Default()
	}
	db, err := store.Open(ctx, b.dbURL)
	if err != nil {
		return nil, err
	}
	if err := db.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	opt := b.jobOpt
	if opt.MaxConcurrency == 0 {
		opt.MaxConcurrency = max(4, 2*runtime.NumCPU())
	}
	opt.Logger = log
	metrics := httpapi.NewMetrics()
	jobMetrics := job.NewMetrics(metrics.Registry())
	if opt.Observer == nil {
		opt.Observer = jobMetrics
	}
	if opt.Version == "" {
		opt.Version = b.info.Version
	}
	arts := artifact.NewManager(db)
	jobs := job.New(db, arts, nil, opt)
	jobMetrics.Watch(jobs, log)
	svc := &Service{DB: db, Jobs: jobs, Artifacts: arts, log: log, shutdownFor: b.shutdownFor}
	if b.tasks {
		svc.Tasks = task.NewManager(db, jobs, arts, task.Options{Registry: b.registry, Policy: b.policy, Provided: b.provided, Logger: log, ScheduleObserver: jobMetrics})
		if err := svc.Tasks.Check(); err != nil {
			db.Close()
			return nil, err
		}
	} else {
		jobs.SetExecutor(job.ExecutorFunc(func(ctx context.Context, run *job.Run) job.Outcome {
			return job.Outcome{Err: fmt.Errorf("this server runs no tasks (built without WithTasks)")}
		}))
	}
	if err := jobs.Start(ctx); err != nil {
		db.Close()
		return nil, err
	}
	defer svc.startPurge()
	if svc.Tasks != nil {
		defer svc.startSchedules()
	}
	svc.Server = httpapi.New(httpapi.Deps{Info: b.info, DB: db, Jobs: jobs, Tasks: svc.Tasks, Artifacts: arts, Logger: log, Metrics: metrics, Auth: b.auth, HealthChecks: b.health})
	return svc, nil
}

// startPurge deletes expired idempotency keys hourly until shutdown.
func (s *Service) startPurge() {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopPurge = cancel
	go func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			if n, err := s.PurgeIdempotencyKeys(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("purge idempotency keys", "error", err)
			} else if n > 0 {
				s.log.Info("purged expired idempotency keys", "count", n)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
}

// startSchedules runs the task schedules (every node does; a slot fires once).
func (s *Service) startSchedules() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Tasks.RunSchedules(ctx)
	}()
	s.stopCron = func() { cancel(); <-done }
}

// Run blocks until ctx is done, then shuts down gracefully.
func (s *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	return s.Shutdown(context.Background())
}

// Shutdown stops taking jobs, lets running jobs finish for up to the
// shutdown timeout, cancels the rest (failed, or pending again with retries
// left) and closes the database.
func (s *Service) Shutdown(ctx context.Context) error {
	var err error
	s.closeOnce.Do(func() {
		if s.stopPurge != nil {
			s.stopPurge()
		}
		if s.stopCron != nil {
			s.stopCron() // no fire after this: the jobs it would store are refused
		}
		s.Jobs.Shutdown(ctx, s.shutdownFor)
		err = s.DB.Close()
	})
	return err
}

// Close shuts down without waiting for running jobs.
func (s *Service) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return s.Shutdown(ctx)
}

// ListenAndServe serves HTTP on addr until ctx is done, then stops taking
// requests and jobs and shuts down gracefully. ready, if not nil, receives
// the bound address once listening (useful with port 0).
func (s *Service) ListenAndServe(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln, ready)
}

// Serve serves HTTP on ln until ctx is done, then shuts down in the order
// that loses nothing: stop taking jobs and let running ones finish for the
// shutdown timeout (while still answering reads and streams), end live
// requests, stop the HTTP server, close the service. A program that must
// claim its port before building the service (so a port in use creates no
// database) listens first and passes the listener here. It is ServeWith
// with the default limits.
func (s *Service) Serve(ctx context.Context, ln net.Listener, ready func(net.Addr)) error {
	return s.ServeWith(ctx, ln, ready, ServeOptions{})
}

// ServeOptions bound what one HTTP server holds open, so that no number of
// clients can take what jobs and the database need. Zero values are the
// defaults.
type ServeOptions struct {
	// MaxConnections caps open client connections. Over it, the oldest
	// connection that sent no request yet, or sits idle between requests,
	// is closed to make room; one serving a request never is. 0 means the
	// process's file descriptor limit minus a reserve for jobs and the
	// database (see connReserve); negative means no cap.
	MaxConnections int
	// MaxStreams caps $stream responses open at once (429 over it); 0
	// means httpapi.DefaultMaxStreams. It is held to 3/4 of the connection
	// cap, so that streams alone never take every connection.
	MaxStreams int
	// StreamWriteTimeout is how long a write to a $stream client may wait
	// for it to read before it is dropped; 0 means
	// httpapi.DefaultStreamWriteTimeout.
	StreamWriteTimeout time.Duration
}

// connReserve is how many file descriptors the default connection cap
// leaves to the rest of the process: each running job's pipes and process
// handles, the database's files and connections, logs and listeners —
// with room to spare, since a Go task function may open files too.
func connReserve(maxConcurrency int) int { return 256 + 16*maxConcurrency }

// ServeWith is Serve with limits.
func (s *Service) ServeWith(ctx context.Context, ln net.Listener, ready func(net.Addr), o ServeOptions) error {
	maxConns := o.MaxConnections
	auto, soft := connlimit.Default(connReserve(s.Jobs.Options().MaxConcurrency))
	switch {
	case maxConns == 0:
		maxConns = auto
	case maxConns > 0 && soft > 0 && maxConns > auto:
		s.log.Warn("--max-connections leaves less than the reserve of file descriptors for jobs and the database",
			"max_connections", maxConns, "fd_limit", soft, "suggested", auto)
	}
	var limited *connlimit.Listener
	if maxConns > 0 {
		limited = connlimit.New(ln, maxConns, s.log)
		ln = limited
	}
	streams := o.MaxStreams
	if streams <= 0 {
		streams = httpapi.DefaultMaxStreams
	}
	if maxConns > 0 && streams > maxConns*3/4 {
		s.log.Warn("--max-streams held to 3/4 of --max-connections, so that requests besides streams find a connection",
			"max_streams", streams, "max_connections", maxConns, "now", max(1, maxConns*3/4))
		streams = max(1, maxConns*3/4)
	}
	// Requests get a base context that ends at shutdown, so live $stream
	// connections close instead of holding the shutdown up. It also
	// carries the stream cap, which makes that cap one per server.
	base, endRequests := context.WithCancel(httpapi.WithStreamLimits(context.Background(),
		httpapi.StreamLimits{Max: streams, WriteTimeout: o.StreamWriteTimeout}))
	defer endRequests()
	// No ReadTimeout or WriteTimeout: they would cut $stream responses.
	// Header reads are bounded here, body reads by huma's per-operation
	// deadline, stream writes by StreamWriteTimeout, idle keep-alive
	// connections by IdleTimeout and, under pressure, by the connection cap.
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return base }}
	if limited != nil {
		srv.ConnState = limited.ConnState
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr())
	}
	attrs := []any{"console", ConsoleURL(ln.Addr()), "addr", ln.Addr().String(),
		"database", s.DB.String(), "node", s.Jobs.Node(), "max_connections", maxConns, "max_streams", streams}
	if soft > 0 {
		attrs = append(attrs, "fd_limit", soft)
	}
	s.log.Info("servicekit listening", attrs...)
	select {
	case err := <-errc:
		s.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	s.log.Info("shutting down: no new jobs; waiting for running jobs", "timeout", s.shutdownFor)
	s.Jobs.Shutdown(context.Background(), s.shutdownFor)
	endRequests()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return s.Shutdown(context.Background())
}

// ConsoleURL is the address of the web console to open in a browser. A
// server on every interface (0.0.0.0, ::) is shown as localhost, which is
// where the person reading the log can reach it; a named host is kept.
func ConsoleURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}
