package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/httpapi"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/shell"
	"github.com/servicekit/servicekit/store"
)

// ServeConfig is the configuration of `servicekit serve`, from flags and
// SERVICEKIT_* environment variables (a flag given on the command line wins).
type ServeConfig struct {
	Addr            string
	Database        string
	MaxConcurrency  int
	OutputLimit     int
	ShutdownTimeout time.Duration
	JobRetention    time.Duration
	LogLevel        string
	MaxPending      int
	APIKeys         []string // from SERVICEKIT_API_KEYS
	APIKeyFile      string
	APIKeyHeader    string
	Insecure        bool
	Shell           string
	ShellAllow      string
	LogOutput       io.Writer // where the server logs; os.Stderr when nil
}

func envOr(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && v != "" {
		return v
	}
	return def
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(envOr(name, "")); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(envOr(name, "")); err == nil {
		return v
	}
	return def
}

// newServeCommand is `servicekit serve`. info names the service; the
// functions it runs are those registered in task.Default before Execute.
func newServeCommand(info servicekit.Info) *cobra.Command {
	var c ServeConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the servicekit server (API, job engine and web console)",
		Long: `Run the servicekit server. With no flags it serves on 127.0.0.1:8000 with an embedded
SQLite database at ./servicekit.db, created and migrated automatically. The address is
claimed before the database is touched, so a port in use fails at once and creates nothing.
SIGINT or SIGTERM shut it down gracefully (exit 0); it exits 1 when it cannot start or
fails, 2 for a bad flag.`,
		Args: cobra.NoArgs,
		RunE: reported(func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return Serve(ctx, info, c, nil)
		}),
	}
	f := cmd.Flags()
	f.StringVar(&c.Addr, "addr", envOr("SERVICEKIT_ADDR", "127.0.0.1:8000"), "listen address (SERVICEKIT_ADDR)")
	f.StringVar(&c.Database, "database", envOr("SERVICEKIT_DATABASE_URL", store.DefaultURL), "database URL: sqlite:///rel.db, sqlite:////abs.db, sqlite://:memory:, postgres://… (SERVICEKIT_DATABASE_URL)")
	f.IntVar(&c.MaxConcurrency, "max-concurrency", envInt("SERVICEKIT_MAX_CONCURRENCY", max(4, 2*runtime.NumCPU())), "jobs running at once on this node (SERVICEKIT_MAX_CONCURRENCY)")
	f.IntVar(&c.OutputLimit, "output-limit", envInt("SERVICEKIT_OUTPUT_LIMIT", 1<<20), "bytes of output kept per stream per job; the tail is kept (SERVICEKIT_OUTPUT_LIMIT)")
	f.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", envDuration("SERVICEKIT_SHUTDOWN_TIMEOUT", 30*time.Second), "how long running jobs may finish on SIGTERM/SIGINT")
	f.DurationVar(&c.JobRetention, "job-retention", envDuration("SERVICEKIT_JOB_RETENTION", 7*24*time.Hour), "how long finished jobs are kept")
	f.StringVar(&c.LogLevel, "log-level", envOr("SERVICEKIT_LOG_LEVEL", "info"), "debug, info, warn or error")
	f.IntVar(&c.MaxPending, "max-pending", envInt("SERVICEKIT_MAX_PENDING", 100_000), "pending jobs accepted before $execute answers 429 (SERVICEKIT_MAX_PENDING)")
	f.StringVar(&c.APIKeyFile, "api-key-file", envOr("SERVICEKIT_API_KEY_FILE", ""), "file with one API key a line, # comments (SERVICEKIT_API_KEY_FILE); keys also come from SERVICEKIT_API_KEYS, comma-separated")
	f.StringVar(&c.APIKeyHeader, "api-key-header", envOr("SERVICEKIT_API_KEY_HEADER", "X-API-Key"), "header carrying the API key (Authorization: Bearer is always accepted)")
	f.StringVar(&c.Shell, "shell", envOr("SERVICEKIT_SHELL", "any"), "shell policy: any, allowlist or off (SERVICEKIT_SHELL)")
	f.StringVar(&c.ShellAllow, "shell-allow", envOr("SERVICEKIT_SHELL_ALLOW", ""), "with --shell allowlist: executables allowed, by name or absolute path, comma-separated (SERVICEKIT_SHELL_ALLOW)")
	f.BoolVar(&c.Insecure, "insecure", false, "allow a non-loopback address with shell policy any and no API keys")
	c.APIKeys = httpapi.ParseKeys(os.Getenv("SERVICEKIT_API_KEYS"))
	return cmd
}

// Serve runs the server until ctx is done. ready, if not nil, gets the
// bound address once the server listens.
//
// It listens before it opens the database: a second `servicekit serve` on
// a port in use then fails at once with a message that says how to pick
// another address, and has not created ./servicekit.db on the way out.
func Serve(ctx context.Context, info servicekit.Info, c ServeConfig, ready func(net.Addr)) error {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return usagef("--log-level %q: want debug, info, warn or error", c.LogLevel)
	}
	logOut := c.LogOutput
	if logOut == nil {
		logOut = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	if c.MaxConcurrency < 1 {
		return usagef("--max-concurrency must be at least 1")
	}
	if c.OutputLimit < 1 {
		return usagef("--output-limit must be at least 1 byte")
	}
	keys := c.APIKeys
	if c.APIKeyFile != "" {
		fileKeys, err := httpapi.ReadKeyFile(c.APIKeyFile)
		if err != nil {
			return err
		}
		keys = append(keys, fileKeys...)
	}
	if c.Shell == "" {
		c.Shell = "any"
	}
	mode, err := shell.ParseMode(c.Shell)
	if err != nil {
		return usagef("--shell: %v", err)
	}
	policy, err := shell.NewPolicy(mode, shell.ParseAllowList(c.ShellAllow))
	if err != nil {
		return usagef("shell policy: %v", err)
	}
	if err := checkExposure(c.Addr, len(keys) > 0 || mode != shell.ModeAny, c.Insecure); err != nil {
		return err
	}
	ln, err := listen(c.Addr)
	if err != nil {
		return err
	}
	svc, err := servicekit.New(info).
		WithHealth().
		WithDatabase(c.Database).
		WithJobs(c.MaxConcurrency).
		WithJobOptions(job.Options{OutputLimit: c.OutputLimit, Retention: c.JobRetention, MaxPending: c.MaxPending}).
		WithAPIKeys(keys...).
		WithShellPolicy(policy).
		WithAPIKeyHeader(c.APIKeyHeader).
		WithShutdownTimeout(c.ShutdownTimeout).
		WithLogger(log).
		WithTasks().
		Build(ctx)
	if err != nil {
		ln.Close()
		return err
	}
	return serveOn(ctx, svc, ln, log, c.ShutdownTimeout, ready)
}

// listen claims addr, turning the two failures a user meets on the first
// day into messages that say what to do.
func listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	switch {
	case err == nil:
		return ln, nil
	case errors.Is(err, syscall.EADDRINUSE):
		return nil, fmt.Errorf("cannot listen on %s: the address is already in use (another servicekit serve?); "+
			"pick another with --addr HOST:PORT or SERVICEKIT_ADDR, e.g. --addr %s", addr, nextPort(addr))
	case errors.Is(err, syscall.EACCES):
		return nil, fmt.Errorf("cannot listen on %s: permission denied (ports below 1024 need privileges); "+
			"pick another with --addr HOST:PORT or SERVICEKIT_ADDR", addr)
	}
	return nil, fmt.Errorf("cannot listen on %s (--addr / SERVICEKIT_ADDR): %w", addr, err)
}

// nextPort is addr with the port after its own, the likeliest free one to
// suggest.
func nextPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || n <= 0 || n >= 65535 {
		return "127.0.0.1:8001"
	}
	return net.JoinHostPort(host, strconv.Itoa(n+1))
}

// serveOn serves svc on ln until ctx is done, then shuts down in the order
// that loses nothing: stop taking jobs and let running ones finish (while
// still answering reads and streams), end live requests, stop the HTTP
// server, close the service.
//
// It does what servicekit.Service.ListenAndServe does, on a listener opened
// before the service was built; ListenAndServe takes an address and listens
// only after Build, too late to keep a busy port from creating a database.
func serveOn(ctx context.Context, svc *servicekit.Service, ln net.Listener, log *slog.Logger, grace time.Duration, ready func(net.Addr)) error {
	// Requests get a base context that ends at shutdown, so live $stream
	// connections close instead of holding the shutdown up.
	base, endRequests := context.WithCancel(context.Background())
	defer endRequests()
	srv := &http.Server{Handler: svc, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext: func(net.Listener) context.Context { return base }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(ln.Addr())
	}
	log.Info("servicekit listening", "console", consoleURL(ln.Addr()), "addr", ln.Addr().String(),
		"database", svc.DB.String(), "node", svc.Jobs.Node())
	select {
	case err := <-errc:
		svc.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: no new jobs; waiting for running jobs", "timeout", grace)
	svc.Jobs.Shutdown(context.Background(), grace)
	endRequests()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return svc.Shutdown(context.Background())
}

// consoleURL is the address to open in a browser. A server on every
// interface (0.0.0.0, ::) is shown as localhost, which is where the person
// reading the log can reach it; a named host is kept.
func consoleURL(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "http://" + a.String() + "/"
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

func newMigrateCommand() *cobra.Command {
	var database string
	var status bool
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply pending database migrations (or show them with --status)",
		Args:  cobra.NoArgs,
		RunE: reported(func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			db, err := store.Open(ctx, database)
			if err != nil {
				return err
			}
			defer db.Close()
			if !status {
				if err := db.Migrate(ctx); err != nil {
					return err
				}
			}
			st, err := db.MigrationStatus(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, m := range st {
				applied := ""
				if !m.AppliedAt.IsZero() {
					applied = m.AppliedAt.UTC().Format(time.RFC3339)
				}
				fmt.Fprintf(out, "%-8s %-40s %s\n", m.State, m.Source.Path, applied)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&database, "database", envOr("SERVICEKIT_DATABASE_URL", store.DefaultURL), "database URL (SERVICEKIT_DATABASE_URL)")
	cmd.Flags().BoolVar(&status, "status", false, "only show which migrations are applied")
	return cmd
}

// checkExposure refuses to serve a shell-running API to the network with
// no keys and shell policy any: anyone who can reach the port could run any
// command as this user. safe is true when keys are set or the policy is not any.
func checkExposure(addr string, safe, insecure bool) error {
	if safe || insecure {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("--addr %q: %v", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return usagef(`refusing to listen on %s: it is not a loopback address, the shell policy is "any" and no API keys are set,
so anyone who can reach this port could run any shell command as this user. Fix it with one of:
  - set API keys: SERVICEKIT_API_KEYS=key1,key2 or --api-key-file FILE
  - restrict shell tasks: --shell allowlist --shell-allow echo,python3 (or --shell off)
  - listen on loopback only: --addr 127.0.0.1:8000
  - accept the risk (e.g. behind an authenticating proxy): --insecure`, addr)
}

// trimURL drops a trailing slash from a server URL.
func trimURL(s string) string { return strings.TrimRight(s, "/") }
