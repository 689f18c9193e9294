package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/servicekit/servicekit/bench"
)

type storedConfig struct {
	Bin, Dir    string
	PG, PGName  string
	Sizes       []int64
	Tasks       int
	Samples     int
	Budget      time.Duration
	Claims      int
	Window      time.Duration
	ServerFlags string
}

func runStored(ctx context.Context, args []string) error {
	var c storedConfig
	fs := flag.NewFlagSet("stored", flag.ExitOnError)
	fs.StringVar(&c.Bin, "bin", "", "server binary (go build -o … ./examples/task_execution)")
	fs.StringVar(&c.Dir, "dir", "", "working directory: the SQLite database and the server logs (emptied first)")
	fs.StringVar(&c.PG, "pg", "", "PostgreSQL URL of a database to connect to while (re)creating -pg-db; measures PostgreSQL instead of SQLite")
	fs.StringVar(&c.PGName, "pg-db", "skgrowth", "with -pg: the database to drop, create and fill")
	sizes := fs.String("sizes", "1000,100000,1000000", "stored job counts, filled in stages (cumulative)")
	fs.IntVar(&c.Tasks, "tasks", 1000, "tasks (half function hello, half shell); half the jobs go to the first one")
	fs.IntVar(&c.Samples, "samples", 200, "requests per figure at most")
	fs.DurationVar(&c.Budget, "budget", 5*time.Second, "time per figure at most (at least 3 requests are made)")
	fs.IntVar(&c.Claims, "claims", 50, "no-op jobs run one at a time for the claim figures")
	fs.DurationVar(&c.Window, "window", 5*24*time.Hour, "the filled jobs' submit times spread over this long before now (under --job-retention)")
	fs.StringVar(&c.ServerFlags, "server-flags", "", "extra flags for the server, space-separated")
	fs.Parse(args)
	var err error
	if c.Sizes, err = parseSizes(*sizes); err != nil {
		return err
	}
	if c.Bin == "" || c.Dir == "" {
		return fmt.Errorf("stored needs -bin and -dir")
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		return err
	}

	dbURL, size, err := c.database(ctx)
	if err != nil {
		return err
	}
	extra := strings.Fields(c.ServerFlags)
	srv, err := startServer(ctx, c.Bin, dbURL, filepath.Join(c.Dir, "server-tasks.log"), extra...)
	if err != nil {
		return err
	}
	tasks, err := createTasks(ctx, srv, c.Tasks)
	srv.stop()
	if err != nil {
		return err
	}
	p := &plan{Tasks: tasks, Total: int(c.Sizes[len(c.Sizes)-1]), End: time.Now().Add(-time.Minute), Window: c.Window}
	var results []*stage
	var ids []string
	done := 0
	for _, n := range c.Sizes {
		st := &stage{N: n}
		begin := time.Now()
		f, err := fill(ctx, dbURL, p, done, int(n))
		if err != nil {
			return err
		}
		st.Fill = time.Since(begin)
		done = int(n)
		ids = append(ids, f.SampleIDs...)
		fmt.Fprintf(os.Stderr, "filled %d jobs in %s\n", n, st.Fill.Round(time.Millisecond))
		srv, err := startServer(ctx, c.Bin, dbURL, filepath.Join(c.Dir, "server-"+count(n)+".log"), extra...)
		if err != nil {
			return err
		}
		st.Start = srv.started
		err = c.measure(ctx, srv, st, tasks, ids, size)
		srv.stop()
		if err != nil {
			return err
		}
		results = append(results, st)
	}
	dialect := "SQLite"
	if c.PG != "" {
		dialect = "PostgreSQL"
	}
	printStored(os.Stdout, dialect, c, results)
	return nil
}

// database prepares an empty database and returns its URL and a function
// measuring its size on disk.
func (c *storedConfig) database(ctx context.Context) (string, func(context.Context) (string, error), error) {
	if c.PG == "" {
		path := filepath.Join(c.Dir, "db")
		u, err := sqliteURL(path)
		return u, func(context.Context) (string, error) {
			db, wal := fileSize(path), fileSize(path+"-wal")
			return fmt.Sprintf("%s + WAL %s", mib(db), mib(wal)), nil
		}, err
	}
	admin, err := sql.Open("pgx", c.PG)
	if err != nil {
		return "", nil, err
	}
	defer admin.Close()
	name := `"` + strings.ReplaceAll(c.PGName, `"`, `""`) + `"`
	if _, err := admin.ExecContext(ctx, "DROP DATABASE IF EXISTS "+name); err != nil {
		return "", nil, err
	}
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(c.PG)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + c.PGName
	dbURL := u.String()
	return dbURL, func(ctx context.Context) (string, error) {
		db, err := sql.Open("pgx", dbURL)
		if err != nil {
			return "", err
		}
		defer db.Close()
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT pg_database_size(current_database())").Scan(&n); err != nil {
			return "", err
		}
		return mib(n), nil
	}, nil
}

// createTasks makes n tasks over the API, alternately the function hello
// and the shell command `echo line`, and returns them with their snapshots.
func createTasks(ctx context.Context, s *server, n int) ([]fillTask, error) {
	for i := range n {
		typ, cmd := "function", "hello"
		if i%2 == 1 {
			typ, cmd = "shell", "echo line"
		}
		if _, err := s.createTask(ctx, typ, cmd); err != nil {
			return nil, err
		}
	}
	var out []fillTask
	for page := 1; len(out) < n; page++ {
		var pg struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := s.call(ctx, http.MethodGet, "/api/v1/tasks?page="+strconv.Itoa(page)+"&size=1000", nil, &pg); err != nil {
			return nil, err
		}
		if len(pg.Items) == 0 {
			return nil, fmt.Errorf("made %d tasks, the server lists %d", n, len(out))
		}
		for _, raw := range pg.Items {
			var t struct{ ID, Type, Command string }
			if err := json.Unmarshal(raw, &t); err != nil {
				return nil, err
			}
			out = append(out, fillTask{ID: t.ID, Type: t.Type, Command: t.Command, Snapshot: raw})
		}
	}
	return out, nil
}

// stage is what one stored-job count measured.
type stage struct {
	N          int64
	Fill       time.Duration
	Start      time.Duration
	Figures    []figure
	Claim      claimFigures
	Size       string
	RSS, Peak  int64
	DeepOffset int64
}

type figure struct {
	Name    string
	Samples samples
	Note    string // instead of samples: why there are none
}

type claimFigures struct {
	Accepted, Done samples // idle: $execute → 202; $execute → terminal status event read
	// A burst of queued jobs: Burst $execute calls in a row (more than the
	// server's 8 slots, so most wait and are taken by the claim query),
	// and the rate they ran at, from the first submit to the last finish
	// as the records tell.
	Burst int
	Rate  float64
}

func (c *storedConfig) measure(ctx context.Context, s *server, st *stage, tasks []fillTask, ids []string, size func(context.Context) (string, error)) error {
	hot, cold := tasks[0].ID, tasks[1].ID
	st.DeepOffset = st.N / 2
	const pageSize = 50
	deepPage := st.DeepOffset/pageSize + 1
	// The cursor of the keyset page at the same depth: the job just before it.
	var pg struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := s.call(ctx, http.MethodGet, fmt.Sprintf("/api/v1/jobs?page=%d&size=1", st.DeepOffset), nil, &pg); err != nil {
		return err
	}
	if len(pg.Items) != 1 {
		return fmt.Errorf("no job at offset %d", st.DeepOffset-1)
	}
	cursor := pg.Items[0].ID
	keyset := c.keysetSupported(ctx, s, cursor)
	rnd := rand.New(rand.NewSource(st.N))
	cases := []struct {
		name string
		path func() string
		skip string
	}{
		{"`GET /api/v1/jobs` (newest 100, no page)", fixed("/api/v1/jobs"), ""},
		{"`?page=1&size=50`", fixed("/api/v1/jobs?page=1&size=50"), ""},
		{"deep page: `?page=P&size=50`, offset N/2", fixed(fmt.Sprintf("/api/v1/jobs?page=%d&size=%d", deepPage, pageSize)), ""},
		{"deep keyset page: `?after=ID&size=50`, same depth", fixed("/api/v1/jobs?after=" + cursor + "&size=50"), keyset},
		{"`?status=failed&page=1&size=50` (9 % of jobs)", fixed("/api/v1/jobs?status=failed&page=1&size=50"), ""},
		{"`?status=canceled&page=1&size=50` (1 %)", fixed("/api/v1/jobs?status=canceled&page=1&size=50"), ""},
		{"`?task_id=T&page=1&size=50`, the busy task (½ of jobs)", fixed("/api/v1/jobs?task_id=" + hot + "&page=1&size=50"), ""},
		{fmt.Sprintf("`?task_id=T&page=1&size=50`, a task with 1/%d of jobs", 2*len(tasks)), fixed("/api/v1/jobs?task_id=" + cold + "&page=1&size=50"), ""},
		{"`?task_id=T&status=failed` (busy task, newest 100)", fixed("/api/v1/jobs?task_id=" + hot + "&status=failed"), ""},
		{"`GET /api/v1/jobs/{id}` (random stored job)", func() string { return "/api/v1/jobs/" + ids[rnd.Intn(len(ids))] }, ""},
		{fmt.Sprintf("`GET /api/v1/tasks/$orphaned` (%d tasks)", len(tasks)), fixed("/api/v1/tasks/$orphaned"), ""},
	}
	for _, k := range cases {
		f := figure{Name: k.name, Note: k.skip}
		if k.skip == "" {
			var err error
			if f.Samples, err = c.sample(ctx, s, k.path); err != nil {
				return fmt.Errorf("%s: %w", k.name, err)
			}
		}
		st.Figures = append(st.Figures, f)
		fmt.Fprintf(os.Stderr, "  %s: %s\n", k.name, f.cell())
	}
	if err := c.claims(ctx, s, tasks[0].ID, &st.Claim); err != nil {
		return err
	}
	var err error
	if st.Size, err = size(ctx); err != nil {
		return err
	}
	m, err := bench.ReadMem(s.pid())
	if err != nil {
		return err
	}
	st.RSS, st.Peak = m.RSS, m.Peak
	return nil
}

func fixed(p string) func() string { return func() string { return p } }

// keysetSupported tells whether the server pages jobs by cursor (?after=):
// one that does not ignores the parameter, and its first item is then the
// newest job rather than one older than the cursor.
func (c *storedConfig) keysetSupported(ctx context.Context, s *server, cursor string) string {
	var pg struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := s.call(ctx, http.MethodGet, "/api/v1/jobs?after="+cursor+"&size=1", nil, &pg); err != nil {
		return "not supported (" + err.Error() + ")"
	}
	if len(pg.Items) != 1 || pg.Items[0].ID >= cursor {
		return "not supported by this binary"
	}
	return ""
}

// sample times GETs of path() one at a time: two unmeasured first, then
// up to c.Samples or for c.Budget, whichever ends first, at least three.
func (c *storedConfig) sample(ctx context.Context, s *server, path func() string) (samples, error) {
	for range 2 {
		if _, _, err := s.timedGet(ctx, path()); err != nil {
			return nil, err
		}
	}
	var out samples
	end := time.Now().Add(c.Budget)
	for len(out) < c.Samples && (len(out) < 3 || time.Now().Before(end)) {
		d, _, err := s.timedGet(ctx, path())
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// claims runs c.Claims no-op jobs one after the other on the otherwise
// idle server, timing the 202 and the stream showing the job completed.
// A job submitted while a slot is free is stored already running, so this
// is not the claim query; the burst that follows is: c.Claims*10 jobs
// submitted at once queue behind the 8 slots and are claimed as slots free.
func (c *storedConfig) claims(ctx context.Context, s *server, taskID string, out *claimFigures) error {
	for i := range c.Claims + 2 {
		t0 := time.Now()
		id, err := s.execute(ctx, taskID)
		if err != nil {
			return err
		}
		accepted := time.Since(t0)
		_, done, err := followTimes(ctx, s, id, t0)
		if err != nil {
			return err
		}
		if i >= 2 { // the first two warm up the function's binding and the connections
			out.Accepted = append(out.Accepted, accepted)
			out.Done = append(out.Done, done)
		}
	}
	out.Burst = c.Claims * 10
	ids := make([]string, out.Burst)
	for i := range ids {
		var err error
		if ids[i], err = s.execute(ctx, taskID); err != nil {
			return err
		}
	}
	for {
		var pending, running struct {
			Total int `json:"total"`
		}
		if err := s.call(ctx, http.MethodGet, "/api/v1/jobs?status=pending&size=1", nil, &pending); err != nil {
			return err
		}
		if err := s.call(ctx, http.MethodGet, "/api/v1/jobs?status=running&size=1", nil, &running); err != nil {
			return err
		}
		if pending.Total+running.Total == 0 {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	var first, last time.Time
	for i, id := range ids {
		var rec jobTimes
		if err := s.call(ctx, http.MethodGet, "/api/v1/jobs/"+id, nil, &rec); err != nil {
			return err
		}
		if rec.Status != "completed" || rec.FinishedAt == nil {
			return fmt.Errorf("burst job %s ended %s", id, rec.Status)
		}
		if i == 0 {
			first = rec.SubmittedAt
		}
		if rec.FinishedAt.After(last) {
			last = *rec.FinishedAt
		}
	}
	out.Rate = float64(out.Burst) / last.Sub(first).Seconds()
	return nil
}

func (f figure) cell() string {
	if f.Note != "" {
		return f.Note
	}
	return pp(f.Samples)
}

// pp is "p50 / p99" of latencies.
func pp(s samples) string { return ms(s.p(50)) + " / " + ms(s.p(99)) }

func printStored(w io.Writer, dialect string, c storedConfig, rs []*stage) {
	fmt.Fprintf(w, "\n%s, p50 / p99 over up to %d sequential requests (at most %s per figure); %d tasks\n\n",
		dialect, c.Samples, c.Budget, c.Tasks)
	fmt.Fprint(w, "| figure |")
	for _, r := range rs {
		fmt.Fprintf(w, " %s jobs |", count(r.N))
	}
	fmt.Fprint(w, "\n| --- |")
	for range rs {
		fmt.Fprint(w, " --- |")
	}
	fmt.Fprintln(w)
	row := func(name string, cell func(*stage) string) {
		fmt.Fprintf(w, "| %s |", name)
		for _, r := range rs {
			fmt.Fprintf(w, " %s |", cell(r))
		}
		fmt.Fprintln(w)
	}
	for i := range rs[0].Figures {
		row(rs[0].Figures[i].Name, func(r *stage) string { return r.Figures[i].cell() })
	}
	row("idle `$execute` → 202", func(r *stage) string { return pp(r.Claim.Accepted) })
	row("idle `$execute` → `completed` read on `$stream`", func(r *stage) string { return pp(r.Claim.Done) })
	row(fmt.Sprintf("burst of %d queued no-op jobs (claim query): jobs/s", rs[0].Claim.Burst), func(r *stage) string {
		return fmt.Sprintf("%.0f", r.Claim.Rate)
	})
	row("database on disk", func(r *stage) string { return r.Size })
	row("server RSS after / peak", func(r *stage) string { return mib(r.RSS) + " / " + mib(r.Peak) })
	row("server start (migrations included)", func(r *stage) string { return ms(r.Start) })
	row("fill (direct SQL, this stage)", func(r *stage) string { return r.Fill.Round(100 * time.Millisecond).String() })
}
