// Command skload puts a running servicekit server under closed-loop load
// and reports what it sustained, next to the physical limits of the
// machine measured by the same process:
//
//	go run ./cmd/skload -server http://127.0.0.1:8000 -clients 16 -duration 10s -kind noop|shell \
//		[-measure-limits -limit-workers 4] [-rss PID]
//
// Each client executes the task, follows the job's $stream until its
// terminal status event, and starts the next one at once; the latency of a
// job is from sending $execute to reading that event.
//
// -kind noop needs a registered function that does nothing: noop, or else
// hello (the stock binary registers neither; build one that does, or use
// -kind shell, which runs `true`). -measure-limits measures, before and
// after the load, the parallel fork/exec rate of /bin/sh -c true with the
// server's job concurrency (-limit-workers) and the bare SQLite commit rate
// (servicekit's own pragmas) in a temporary directory: on a shared machine
// only a ratio to limits measured at the same time means anything. -rss
// prints the server's VmRSS before (idle) and after the load.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/servicekit/servicekit/bench"
)

// config is skload's command line.
type config struct {
	Server        string
	APIKey        string
	Clients       int
	Duration      time.Duration
	JobTimeout    time.Duration
	Kind          string // noop or shell
	Function      string // overrides the noop/hello choice
	MeasureLimits bool
	LimitWorkers  int
	LimitDuration time.Duration
	LimitDir      string
	RSSPID        int
}

func main() {
	var c config
	flag.StringVar(&c.Server, "server", envOr("SERVICEKIT_URL", "http://127.0.0.1:8000"), "server URL (SERVICEKIT_URL)")
	flag.StringVar(&c.APIKey, "api-key", os.Getenv("SERVICEKIT_API_KEY"), "API key, sent as X-API-Key (SERVICEKIT_API_KEY)")
	flag.IntVar(&c.Clients, "clients", 16, "concurrent closed-loop clients")
	flag.DurationVar(&c.Duration, "duration", 10*time.Second, "how long clients keep starting jobs")
	flag.DurationVar(&c.JobTimeout, "job-timeout", 60*time.Second, "give up on one job after this long (counted as an error)")
	flag.StringVar(&c.Kind, "kind", "noop", "noop (a do-nothing function: noop or hello) or shell (`true`)")
	flag.StringVar(&c.Function, "function", "", "with -kind noop, the function to run instead of noop/hello")
	flag.BoolVar(&c.MeasureLimits, "measure-limits", false, "also measure bare fork/exec and SQLite commit rates before and after the load")
	flag.IntVar(&c.LimitWorkers, "limit-workers", 4, "fork/exec workers for -measure-limits: the server's --max-concurrency")
	flag.DurationVar(&c.LimitDuration, "limit-duration", 2*time.Second, "how long each limit is measured, before and after the load")
	flag.StringVar(&c.LimitDir, "limit-dir", "", "directory for the bare SQLite database (default the system temp dir; use the server's database's file system)")
	flag.IntVar(&c.RSSPID, "rss", 0, "PID of the server: print its VmRSS before and after the load (Linux)")
	flag.Parse()
	if flag.NArg() > 0 {
		fail(fmt.Errorf("unexpected arguments %q", flag.Args()))
	}

	// Ctrl-C stops new jobs; those in flight finish and the report prints.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	rep, err := run(ctx, c, bench.NewHTTPClient(max(64, c.Clients)))
	if err != nil {
		fail(err)
	}
	rep.print(os.Stdout)
	if rep.Load.Errors > 0 {
		os.Exit(1)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "skload:", err)
	os.Exit(2)
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// limits are the bare rates measured around the load.
type limits struct {
	Workers                   int
	ForkBefore, ForkAfter     float64 // /bin/sh -c true per second
	CommitBefore, CommitAfter float64 // one-INSERT transactions per second
	CommitTime                time.Duration
}

func (l *limits) fork() float64   { return (l.ForkBefore + l.ForkAfter) / 2 }
func (l *limits) commit() float64 { return (l.CommitBefore + l.CommitAfter) / 2 }

// report is everything one skload run found.
type report struct {
	Config    config
	TaskID    string
	Command   string
	Load      *bench.LoadResult
	Limits    *limits
	MemBefore *bench.Mem
	MemAfter  *bench.Mem
}

// run is skload without its command line: it prepares the task, measures
// the limits and the server's memory around the load, and runs the load.
func run(ctx context.Context, c config, hc *http.Client) (*report, error) {
	if c.Clients < 1 {
		return nil, errors.New("-clients must be at least 1")
	}
	cl := &bench.Client{Base: strings.TrimRight(c.Server, "/"), HTTP: hc, APIKey: c.APIKey}
	rep := &report{Config: c}
	var err error
	if c.RSSPID > 0 { // before the first request: the idle figure
		if rep.MemBefore, err = readMem(c.RSSPID); err != nil {
			return nil, err
		}
	}
	if rep.TaskID, rep.Command, err = prepareTask(ctx, cl, c); err != nil {
		return nil, err
	}
	if c.MeasureLimits {
		rep.Limits = &limits{Workers: c.LimitWorkers}
		if rep.Limits.ForkBefore, rep.Limits.CommitBefore, _, err = measureLimits(ctx, c); err != nil {
			return nil, err
		}
	}
	// One job first, so the load does not time the function's first
	// binding or the connection setup.
	if _, err := cl.RunJob(ctx, rep.TaskID); err != nil {
		return nil, fmt.Errorf("warm-up job: %w", err)
	}
	rep.Load = bench.Load(ctx, bench.LoadConfig{Clients: c.Clients, Duration: c.Duration,
		Job: func(context.Context) (time.Duration, error) {
			// Not the load's context: an interrupt stops new jobs but lets
			// those in flight finish, so they are not miscounted as errors.
			jctx, cancel := context.WithTimeout(context.Background(), c.JobTimeout)
			defer cancel()
			return cl.RunJob(jctx, rep.TaskID)
		}})
	if c.RSSPID > 0 {
		if rep.MemAfter, err = readMem(c.RSSPID); err != nil {
			return nil, err
		}
	}
	if c.MeasureLimits {
		if rep.Limits.ForkAfter, rep.Limits.CommitAfter, rep.Limits.CommitTime, err = measureLimits(context.Background(), c); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

func readMem(pid int) (*bench.Mem, error) {
	m, err := bench.ReadMem(pid)
	if err != nil {
		return nil, fmt.Errorf("-rss %d: %w", pid, err)
	}
	return &m, nil
}

// prepareTask finds or creates the task the load runs.
func prepareTask(ctx context.Context, cl *bench.Client, c config) (id, command string, err error) {
	switch c.Kind {
	case "shell":
		id, err = cl.EnsureTask(ctx, "shell", "true")
		return id, "true", err
	case "noop":
		name, err := pickFunction(ctx, cl, c.Function)
		if err != nil {
			return "", "", err
		}
		id, err = cl.EnsureTask(ctx, "function", name)
		return id, name, err
	}
	return "", "", fmt.Errorf("-kind %q: want noop or shell", c.Kind)
}

// pickFunction chooses the function of -kind noop: the one asked for, or
// noop, or hello; it must take no required params, since the load sends
// $execute without a body.
func pickFunction(ctx context.Context, cl *bench.Client, want string) (string, error) {
	fs, err := cl.Functions(ctx)
	if err != nil {
		return "", fmt.Errorf("list the server's functions: %w", err)
	}
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	candidates := []string{"noop", "hello"}
	if want != "" {
		candidates = []string{want}
	}
	for _, name := range candidates {
		i := slices.Index(names, name)
		if i < 0 {
			continue
		}
		if req := fs[i].ParamsSchema.Required; len(req) > 0 {
			return "", fmt.Errorf("function %q needs params %v; -kind noop runs it without any", name, req)
		}
		return name, nil
	}
	if want != "" {
		return "", fmt.Errorf("the server has no function %q (it has %v)", want, names)
	}
	return "", fmt.Errorf("-kind noop needs a do-nothing function named noop or hello registered in the server, "+
		"and it has %v; the stock servicekit binary registers none: "+
		"run a binary that registers one (task.MustRegister(\"noop\", func() {}) before cli.Main), "+
		"name another with -function, or use -kind shell", names)
}

// measureLimits measures the bare fork/exec and commit rates, one after
// the other so that neither slows the other down.
func measureLimits(ctx context.Context, c config) (fork, commit float64, commitTime time.Duration, err error) {
	if fork, err = bench.ForkExecRate(ctx, c.LimitWorkers, c.LimitDuration); err != nil {
		return 0, 0, 0, err
	}
	if commit, commitTime, err = bench.SQLiteCommitRate(ctx, c.LimitDir, c.LimitDuration); err != nil {
		return 0, 0, 0, fmt.Errorf("bare SQLite commit: %w", err)
	}
	return fork, commit, commitTime, nil
}

// print writes the report for a human, with each result beside its target.
func (r *report) print(w io.Writer) {
	c, l := r.Config, r.Load
	fmt.Fprintf(w, "server     %s  task %s (%s %q)\n", c.Server, r.TaskID, c.Kind, r.Command)
	fmt.Fprintf(w, "load       %d closed-loop clients for %s\n", c.Clients, c.Duration)
	fmt.Fprintf(w, "jobs done  %d in %s\n", l.Jobs, l.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "jobs/s     %.0f\n", l.Rate())
	fmt.Fprintf(w, "latency    p50 %s  p90 %s  p99 %s  max %s  ($execute → terminal status event)\n",
		bench.FormatDuration(l.Percentile(50)), bench.FormatDuration(l.Percentile(90)), bench.FormatDuration(l.Percentile(99)), bench.FormatDuration(l.Percentile(100)))
	fmt.Fprintf(w, "errors     %d\n", l.Errors)
	for _, s := range l.ErrorSamples {
		fmt.Fprintf(w, "           %s\n", s)
	}
	if c.Kind == "noop" {
		fmt.Fprintf(w, "target     ≥ 3000 jobs/s with 16 clients: %s\n", verdict(l.Rate() >= 3000, c.Clients == 16))
		fmt.Fprintf(w, "target     p50 ≤ 2 ms on an idle server (1 client): %s\n", verdict(l.Percentile(50) <= 2*time.Millisecond, c.Clients == 1))
	}
	if lim := r.Limits; lim != nil {
		fmt.Fprintf(w, "limit      bare fork/exec  %.0f/s with %d workers (before %.0f, after %.0f)\n",
			lim.fork(), lim.Workers, lim.ForkBefore, lim.ForkAfter)
		fmt.Fprintf(w, "limit      bare commit     %.0f/s, %s each (before %.0f, after %.0f)\n",
			lim.commit(), bench.FormatDuration(lim.CommitTime), lim.CommitBefore, lim.CommitAfter)
		if c.Kind == "shell" {
			pct := 100 * l.Rate() / lim.fork()
			fmt.Fprintf(w, "ratio      shell jobs/s = %.0f%% of bare fork/exec (target ≥ 70%%: %s)\n", pct, verdict(pct >= 70, true))
		} else {
			fmt.Fprintf(w, "ratio      jobs/s = %.0f%% of bare commits/s; p50 = %.1f bare commits\n",
				100*l.Rate()/lim.commit(), float64(l.Percentile(50))/float64(lim.CommitTime))
		}
	}
	if r.MemBefore != nil {
		fmt.Fprintf(w, "rss        before %s (target < 40 MB: %s)  after %s  peak %s  (pid %d)\n",
			bench.MiB(r.MemBefore.RSS), verdict(r.MemBefore.RSS < 40e6, true), bench.MiB(r.MemAfter.RSS), bench.MiB(r.MemAfter.Peak), c.RSSPID)
	}
}

// verdict says whether a target was met, or that this run's shape does
// not test it (e.g. a throughput target run with another client count).
func verdict(ok, applies bool) string {
	switch {
	case !applies:
		return "n/a for this run"
	case ok:
		return "met"
	}
	return "MISSED"
}
