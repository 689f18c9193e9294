package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand"
	"strings"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
)

// fillTask is a task the filler gives jobs to, with the TaskOut JSON that
// a job stores as its snapshot.
type fillTask struct {
	ID, Type, Command string
	Snapshot          json.RawMessage
}

// plan is where filled jobs go in time and to which tasks. Jobs are spread
// evenly over Window ending at End, job i of Total at End-(Total-i)*step, so
// filling in stages (0..1k, then 1k..100k, …) writes ids in ascending
// order, the way a server appends them. Half the jobs belong to Tasks[0]
// (one busy task), the other half spread evenly over all tasks.
type plan struct {
	Tasks  []fillTask
	Total  int
	End    time.Time
	Window time.Duration
}

// submitted is job i's submit time, whole milliseconds like every stored time.
func (p *plan) submitted(i int) time.Time {
	step := p.Window / time.Duration(p.Total)
	return p.End.Add(-time.Duration(p.Total-i) * step).Truncate(time.Millisecond).UTC()
}

// Status mix of filled jobs: of every 100, 90 completed, 9 failed, 1 canceled.
func fillStatus(i int) job.Status {
	switch r := i % 100; {
	case r < 90:
		return job.Completed
	case r < 99:
		return job.Failed
	}
	return job.Canceled
}

// filled is what a fill leaves for the measurements to use.
type filled struct {
	SampleIDs []string // every k-th job id, for GET /api/v1/jobs/{id}
}

// fill writes jobs from..to of p into the database at dbURL, which no
// server may be using: each a terminal job with the rows a real run leaves
// (the job row as Finish leaves it, its status events, a log event for a
// shell job, its root artifact). Rows go in multi-row INSERTs, batch jobs
// to a transaction.
func fill(ctx context.Context, dbURL string, p *plan, from, to int) (*filled, error) {
	db, err := store.Open(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	rnd := rand.New(rand.NewSource(int64(from)))
	entropy := ulid.Monotonic(rnd, 0)
	artEntropy := ulid.Monotonic(rand.New(rand.NewSource(int64(from)+1)), 0)
	out := &filled{}
	every := max(1, (to-from)/500)
	const perTx = 5000
	for start := from; start < to; start += perTx {
		end := min(start+perTx, to)
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			w := newRowWriter(db, tx)
			for i := start; i < end; i++ {
				t := p.Tasks[0]
				if i%2 == 1 {
					t = p.Tasks[rnd.Intn(len(p.Tasks))]
				}
				sub := p.submitted(i)
				id := ulid.MustNew(ulid.Timestamp(sub), entropy).String()
				if (i-from)%every == 0 {
					out.SampleIDs = append(out.SampleIDs, id)
				}
				if err := writeJob(ctx, w, t, id, sub, fillStatus(i), artEntropy); err != nil {
					return err
				}
			}
			return w.flush(ctx)
		})
		if err != nil {
			return nil, fmt.Errorf("fill jobs %d..%d: %w", start, end, err)
		}
	}
	if db.Dialect == store.Postgres {
		// What autovacuum does soon after this many inserts: the planner's
		// statistics, and the visibility map, without which a count cannot
		// be an index-only scan and reads the whole table. Done here, the
		// measurements do not depend on whether autovacuum got to it yet
		// (they differed 8× on the first page at 1M jobs). servicekit never
		// runs ANALYZE on SQLite, so its planner works without statistics,
		// and so does the fill.
		if _, err := db.W.ExecContext(ctx, "VACUUM ANALYZE jobs, job_events, artifacts"); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// writeJob queues one finished job's rows.
func writeJob(ctx context.Context, w *rowWriter, t fillTask, id string, sub time.Time, st job.Status, artEntropy *ulid.MonotonicEntropy) error {
	node := "fill"
	rec := job.Record{ID: id, TaskID: t.ID, Type: t.Type, Command: t.Command, Status: job.Pending,
		Params: map[string]any{}, MaxAttempts: 1, SubmittedAt: sub.UTC(), Trigger: job.TriggerAPI}
	var events []event
	add := func(kind string, count int, data []byte) {
		events = append(events, event{seq: int64(len(events) + 1), kind: kind, count: count, data: string(data)})
	}
	add("status", 1, mustJSON(rec)) // as Insert stores it
	dur := time.Millisecond
	if t.Type == "shell" {
		dur = 20 * time.Millisecond
	}
	started, finished := sub.UTC(), sub.Add(dur).UTC()
	art := map[string]any{"job_id": id, "params": map[string]any{}, "task": t.Snapshot, "error": nil}
	if st == job.Canceled { // canceled while pending: never claimed
		rec.FinishedAt = &finished
		msg := "canceled by request"
		rec.Error = &msg
		art["error"] = msg
	} else {
		rec.Status, rec.Attempt, rec.StartedAt, rec.Node = job.Running, 1, &started, &node
		add("status", 1, mustJSON(rec)) // the claim's event
		rec.FinishedAt = &finished
		switch t.Type {
		case "shell":
			code := 0
			if st == job.Failed {
				code = 1
				msg := "exit status 1"
				rec.Error = &msg
				art["error"] = msg
			}
			rec.ExitCode = &code
			add("log", 1, []byte(`[{"stream":"stdout","line":"line"}]`))
			art["exit_code"], art["stdout"], art["stderr"] = code, "line\n", ""
			art["stdout_truncated"], art["stderr_truncated"] = false, false
		default:
			if st == job.Failed {
				msg := "boom: the function returned an error"
				rec.Error = &msg
				art["error"] = msg
			} else {
				rec.Result = json.RawMessage(`{"message":"Hello!"}`)
				art["result"] = rec.Result
			}
		}
	}
	aid := ulid.MustNew(ulid.Timestamp(finished), artEntropy).String()
	rec.Status, rec.ArtifactID = st, &aid
	add("status", 1, mustJSON(rec)) // Finish's event
	for _, e := range events {
		if err := w.add(ctx, "job_events", e.row(id)...); err != nil {
			return err
		}
	}
	ms := finished.UnixMilli()
	if err := w.add(ctx, "artifacts", aid, nil, 0, string(mustJSON(art)), ms, ms); err != nil {
		return err
	}
	cancel := 0
	if st == job.Canceled {
		cancel = 1
	}
	var startedMS any
	if rec.StartedAt != nil {
		startedMS = rec.StartedAt.UnixMilli()
	}
	var result, exit any
	if rec.Result != nil {
		result = string(rec.Result)
	}
	if rec.ExitCode != nil {
		exit = *rec.ExitCode
	}
	var nodeCol any
	if rec.Node != nil {
		nodeCol = node
	}
	return w.add(ctx, "jobs", id, t.ID, t.Type, t.Command, string(t.Snapshot), "{}", nil, string(st), rec.Attempt,
		1, nil, sub.UnixMilli(), sub.UnixMilli(), startedMS, ms, exit, result, strPtr(rec.Error), nil, aid, nil,
		nodeCol, nil, cancel, int64(len(events)), job.TriggerAPI, nil, 0, 0)
}

type event struct {
	seq   int64
	kind  string
	count int
	data  string
}

func (e event) row(jobID string) []any {
	return []any{jobID, e.seq, e.kind, e.count, len(e.data), e.data}
}

func strPtr(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// fillColumns are the columns the filler writes, per table: for jobs, every
// column of the schema, as Insert, ClaimNext and Finish leave them.
var fillColumns = map[string][]string{
	"jobs": {"id", "task_id", "type", "command", "task_snapshot", "params", "env", "status", "attempt",
		"max_attempts", "timeout_ms", "submitted_at", "run_after", "started_at", "finished_at", "exit_code",
		"result", "error", "error_traceback", "artifact_id", "progress", "node", "lease_until",
		"cancel_requested", "event_seq", "triggered_by", "scheduled_for", "priority", "limited"},
	"job_events": {"job_id", "seq", "kind", "count", "bytes", "data"},
	"artifacts":  {"id", "parent_id", "level", "data", "created_at", "updated_at"},
}

// rowsPerInsert rows go into one INSERT: 100 jobs are 2,900 parameters,
// well under both databases' limits, and few enough statements that the
// fill is bound by the database's writes rather than by round trips.
const rowsPerInsert = 100

// rowWriter buffers rows per table and writes them rowsPerInsert at a time.
type rowWriter struct {
	db    *store.DB
	tx    *sql.Tx
	rows  map[string][]any
	stmts map[string]*sql.Stmt
}

func newRowWriter(db *store.DB, tx *sql.Tx) *rowWriter {
	return &rowWriter{db: db, tx: tx, rows: map[string][]any{}, stmts: map[string]*sql.Stmt{}}
}

func (w *rowWriter) add(ctx context.Context, table string, vals ...any) error {
	if len(vals) != len(fillColumns[table]) {
		return fmt.Errorf("%s: %d values for %d columns", table, len(vals), len(fillColumns[table]))
	}
	w.rows[table] = append(w.rows[table], vals...)
	if len(w.rows[table]) == rowsPerInsert*len(vals) {
		return w.write(ctx, table)
	}
	return nil
}

func (w *rowWriter) write(ctx context.Context, table string) error {
	vals := w.rows[table]
	cols := fillColumns[table]
	n := len(vals) / len(cols)
	if n == 0 {
		return nil
	}
	q := insertSQL(table, cols, n)
	var err error
	if n == rowsPerInsert { // the common, full batch: prepared once per transaction
		st := w.stmts[table]
		if st == nil {
			if st, err = w.tx.PrepareContext(ctx, w.db.Rebind(q)); err != nil {
				return err
			}
			w.stmts[table] = st
		}
		_, err = st.ExecContext(ctx, vals...)
	} else {
		_, err = w.tx.ExecContext(ctx, w.db.Rebind(q), vals...)
	}
	w.rows[table] = vals[:0]
	return err
}

func (w *rowWriter) flush(ctx context.Context) error {
	for _, t := range []string{"job_events", "artifacts", "jobs"} {
		if err := w.write(ctx, t); err != nil {
			return err
		}
	}
	for _, st := range w.stmts {
		st.Close()
	}
	return nil
}

func insertSQL(table string, cols []string, n int) string {
	one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
	return "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES " +
		strings.TrimSuffix(strings.Repeat(one+", ", n), ", ")
}
