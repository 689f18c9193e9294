package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/servicekit/servicekit/bench"
)

type outputConfig struct {
	Bin, Dir    string
	Sizes       []int64
	Runs        int
	ServerFlags string
}

func runOutput(ctx context.Context, args []string) error {
	var c outputConfig
	fs := flag.NewFlagSet("output", flag.ExitOnError)
	fs.StringVar(&c.Bin, "bin", "", "server binary")
	fs.StringVar(&c.Dir, "dir", "", "working directory (emptied first)")
	sizes := fs.String("sizes", "1MB,10MB,100MB,1GB", "bytes the job prints, one size after the other")
	fs.IntVar(&c.Runs, "runs", 3, "runs per size, each on a fresh server and database; medians are reported")
	fs.StringVar(&c.ServerFlags, "server-flags", "", "extra flags for the server, space-separated")
	fs.Parse(args)
	var err error
	if c.Sizes, err = parseSizes(*sizes); err != nil {
		return err
	}
	if c.Bin == "" || c.Dir == "" {
		return fmt.Errorf("output needs -bin and -dir")
	}
	if err := os.RemoveAll(c.Dir); err != nil {
		return err
	}
	var rows []outputRow
	for _, n := range c.Sizes {
		row := outputRow{Bytes: n}
		for i := range c.Runs {
			r, err := c.run(ctx, n, i)
			if err != nil {
				return err
			}
			row.Runs = append(row.Runs, r)
			fmt.Fprintf(os.Stderr, "%s: job %s (bare %s), peak RSS %s, database %s\n", count(n),
				r.Job.Round(time.Millisecond), r.Bare.Round(time.Millisecond), mib(r.Peak), mib(r.DB))
		}
		rows = append(rows, row)
	}
	c.print(os.Stdout, rows)
	return nil
}

type outputRow struct {
	Bytes int64
	Runs  []outputRun
}

type outputRun struct {
	Job     time.Duration // $execute → the poll that saw it completed
	Record  time.Duration // finished_at − submitted_at
	Bare    time.Duration // the same pipeline into /dev/null, in the same run
	CPU     time.Duration // the server's over the job
	RSS     int64         // before the job
	Peak    int64         // VmHWM after it
	DB      int64         // database file + WAL after it
	LogSize int64         // bytes GET $logs answers
}

// pipeline prints n bytes: lines of 100 a's.
func pipeline(n int64) string {
	return fmt.Sprintf(`head -c %d /dev/zero | tr '\0' 'a' | fold -w 100`, n)
}

func (c *outputConfig) run(ctx context.Context, n int64, i int) (outputRun, error) {
	var r outputRun
	dir := filepath.Join(c.Dir, count(n)+"-"+strconv.Itoa(i))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return r, err
	}
	dbPath := filepath.Join(dir, "db")
	dbURL, err := sqliteURL(dbPath)
	if err != nil {
		return r, err
	}
	// The limit: the pipeline alone, just before the job.
	begin := time.Now()
	bare := exec.CommandContext(ctx, "/bin/sh", "-c", pipeline(n)+" > /dev/null")
	if out, err := bare.CombinedOutput(); err != nil {
		return r, fmt.Errorf("bare pipeline: %v: %s", err, out)
	}
	r.Bare = time.Since(begin)

	srv, err := startServer(ctx, c.Bin, dbURL, filepath.Join(dir, "server.log"), strings.Fields(c.ServerFlags)...)
	if err != nil {
		return r, err
	}
	defer srv.stop()
	taskID, err := srv.createTask(ctx, "shell", pipeline(n))
	if err != nil {
		return r, err
	}
	m, err := bench.ReadMem(srv.pid())
	if err != nil {
		return r, err
	}
	r.RSS = m.RSS
	cpu0, err := cpuTime(srv.pid())
	if err != nil {
		return r, err
	}
	t0 := time.Now()
	jobID, err := srv.execute(ctx, taskID)
	if err != nil {
		return r, err
	}
	var rec jobTimes
	for {
		if err := srv.call(ctx, http.MethodGet, "/api/v1/jobs/"+jobID, nil, &rec); err != nil {
			return r, err
		}
		if rec.FinishedAt != nil {
			break
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	r.Job = time.Since(t0)
	if rec.Status != "completed" {
		return r, fmt.Errorf("the %s job ended %s; its server's log: %s", count(n), rec.Status, tail(filepath.Join(dir, "server.log")))
	}
	r.Record = rec.FinishedAt.Sub(rec.SubmittedAt)
	cpu1, err := cpuTime(srv.pid())
	if err != nil {
		return r, err
	}
	r.CPU = cpu1 - cpu0
	if m, err = bench.ReadMem(srv.pid()); err != nil {
		return r, err
	}
	r.Peak = m.Peak
	r.DB = fileSize(dbPath) + fileSize(dbPath+"-wal")
	res, err := srv.http.Get(srv.base + "/api/v1/jobs/" + jobID + "/$logs")
	if err != nil {
		return r, err
	}
	r.LogSize, err = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return r, err
}

func (c *outputConfig) print(w io.Writer, rows []outputRow) {
	fmt.Fprintf(w, "\nOne shell job `%s`, SQLite; median of %d runs, each on a fresh server\n\n",
		strings.Replace(pipeline(0), "-c 0", "-c N", 1), c.Runs)
	fmt.Fprintln(w, "| output | `$execute` → completed | same pipeline into /dev/null | ratio | server CPU | server RSS before → peak | database after | `$logs` answers |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, row := range rows {
		var job, bare, cpu, rss, peak, db, logs []float64
		for _, r := range row.Runs {
			job = append(job, r.Job.Seconds())
			bare = append(bare, r.Bare.Seconds())
			cpu = append(cpu, r.CPU.Seconds())
			rss = append(rss, float64(r.RSS))
			peak = append(peak, float64(r.Peak))
			db = append(db, float64(r.DB))
			logs = append(logs, float64(r.LogSize))
		}
		fmt.Fprintf(w, "| %sB | %s | %s | %.1f× | %s | %s → %s | %s | %s |\n", count(row.Bytes),
			secs(median(job)), secs(median(bare)), median(job)/median(bare), secs(median(cpu)),
			mib(int64(median(rss))), mib(int64(median(peak))), mib(int64(median(db))), mib(int64(median(logs))))
	}
}

func secs(s float64) string {
	if s < 1 {
		return ms(time.Duration(s * float64(time.Second)))
	}
	return strconv.FormatFloat(s, 'f', 2, 64) + " s"
}
