package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
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
	Lease           time.Duration
	MaxResult       int
	PprofAddr       string
	LogOutput       io.Writer // where the server logs; os.Stderr when nil
	// MaxConnections caps open client connections; 0 picks the file
	// descriptor limit minus a reserve for jobs and the database.
	MaxConnections int
	// MaxStreams caps $stream responses open at once; 0 is the default.
	MaxStreams int
	// StreamWriteTimeout drops a $stream client that does not read for
	// this long; 0 is the default.
	StreamWriteTimeout time.Duration
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
			// A set variable is a request for keys, even an empty one (an
			// unfilled template): one that yields none refuses the start
			// rather than serving with no authentication.
			if list, ok := os.LookupEnv("SERVICEKIT_API_KEYS"); ok {
				keys, err := httpapi.ParseKeyList(list)
				if err != nil {
					return usagef("SERVICEKIT_API_KEYS: %v", err)
				}
				c.APIKeys = keys
			}
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
	f.DurationVar(&c.Lease, "lease", envDuration("SERVICEKIT_LEASE", 30*time.Second), "how long a running job's claim lasts without renewal: a dead node's jobs are rescued after about this long (SERVICEKIT_LEASE)")
	f.IntVar(&c.MaxResult, "max-result", envInt("SERVICEKIT_MAX_RESULT", 1<<20), "bytes a function's result may take (its JSON); over it the job fails and nothing of it is stored (SERVICEKIT_MAX_RESULT)")
	f.StringVar(&c.PprofAddr, "pprof-addr", envOr("SERVICEKIT_PPROF_ADDR", ""), "serve Go's net/http/pprof profiles on this address, e.g. 127.0.0.1:6060 (off by default; never expose it)")
	f.BoolVar(&c.Insecure, "insecure", false, "allow a non-loopback address with shell policy any and no API keys")
	f.IntVar(&c.MaxConnections, "max-connections", envInt("SERVICEKIT_MAX_CONNECTIONS", 0), "open client connections at most; over it the oldest idle ones are closed (0: the file descriptor limit minus a reserve for jobs and the database) (SERVICEKIT_MAX_CONNECTIONS)")
	f.IntVar(&c.MaxStreams, "max-streams", envInt("SERVICEKIT_MAX_STREAMS", httpapi.DefaultMaxStreams), "$stream responses open at once; over it 429 (SERVICEKIT_MAX_STREAMS)")
	f.DurationVar(&c.StreamWriteTimeout, "stream-write-timeout", envDuration("SERVICEKIT_STREAM_WRITE_TIMEOUT", httpapi.DefaultStreamWriteTimeout), "drop a $stream client that takes no data for this long; it resumes with Last-Event-ID (SERVICEKIT_STREAM_WRITE_TIMEOUT)")
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
	if c.Lease != 0 && c.Lease < 300*time.Millisecond {
		return fmt.Errorf("--lease %s is too short: at least 300ms (leases are renewed every lease/3)", c.Lease)
	}
	if c.OutputLimit < 1 {
		return usagef("--output-limit must be at least 1 byte")
	}
	if c.MaxConnections < 0 || c.MaxStreams < 0 || c.StreamWriteTimeout < 0 {
		return usagef("--max-connections, --max-streams and --stream-write-timeout must not be negative (0 is the default)")
	}
	keys := c.APIKeys
	if c.APIKeyFile != "" {
		fileKeys, err := httpapi.ReadKeyFile(c.APIKeyFile)
		if err != nil {
			// The flag asked for keys; without them the server must not start.
			return usagef("--api-key-file: %v", err)
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
	if c.PprofAddr != "" {
		// A separate listener with its own mux: profiles are never on the API
		// port, whatever the API keys.
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		ln, err := net.Listen("tcp", c.PprofAddr)
		if err != nil {
			return fmt.Errorf("--pprof-addr: %w", err)
		}
		go http.Serve(ln, mux)
		log.Info("pprof profiles served", "addr", ln.Addr().String())
	}
	ln, err := listen(c.Addr)
	if err != nil {
		return err
	}
	svc, err := servicekit.New(info).
		WithHealth().
		WithDatabase(c.Database).
		WithJobs(c.MaxConcurrency).
		WithJobOptions(job.Options{OutputLimit: c.OutputLimit, Retention: c.JobRetention, MaxPending: c.MaxPending, Lease: c.Lease,
			MaxResultBytes: c.MaxResult}).
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
	return svc.ServeWith(ctx, ln, ready, servicekit.ServeOptions{MaxConnections: c.MaxConnections,
		MaxStreams: c.MaxStreams, StreamWriteTimeout: c.StreamWriteTimeout})
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
