package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/servicekit/servicekit/store"
)

// StatusCounts is how many jobs are in each status, across all tasks.
type StatusCounts struct {
	Pending   int `json:"pending"`
	Running   int `json:"running"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Canceled  int `json:"canceled"`
}

// SummaryMinute is one minute of the summary's window: the jobs that
// finished in [start, start+1m), by outcome.
type SummaryMinute struct {
	Start     time.Time `json:"start"`
	Completed int       `json:"completed"`
	Failed    int       `json:"failed"`
	Canceled  int       `json:"canceled"`
}

// JobSummary is the body of GET /api/v1/jobs/$summary.
type JobSummary struct {
	Counts StatusCounts `json:"counts" doc:"jobs in each status now (all the jobs the database keeps)"`
	Total  int          `json:"total"`
	From   time.Time    `json:"from" doc:"start of the window: the first minute's start"`
	To     time.Time    `json:"to" doc:"end of the window: the end of the current minute"`
	// Minutes is oldest first; the last one is the current, unfinished minute.
	Minutes   []SummaryMinute `json:"minutes" doc:"one entry per minute of the window, oldest first; the last is the current minute"`
	Completed int             `json:"completed" doc:"jobs completed in the window"`
	Failed    int             `json:"failed" doc:"jobs failed in the window"`
	Canceled  int             `json:"canceled" doc:"jobs canceled in the window"`
}

// summaryWindow is how far back the per-minute series reaches.
const summaryWindow = 60

// The two queries read only status and finished_at (unix milliseconds), so
// they hold on SQLite and PostgreSQL alike; integer division buckets a
// finish time into its minute of the window on both. The count by status
// is an index-only scan of jobs_status; the per-minute series is a range
// of the jobs_finished index (the last hour's finished jobs only). It does
// not filter on status in SQL, which would lead SQLite's planner to walk
// jobs_status over every finished job instead; the loop below counts only
// the terminal statuses.
const (
	summaryCountsSQL  = `SELECT status, COUNT(*) FROM jobs GROUP BY status`
	summaryMinutesSQL = `SELECT (finished_at - ?) / 60000, status, COUNT(*) FROM jobs
 WHERE finished_at >= ? AND finished_at < ? GROUP BY 1, 2`
)

// registerSummary serves GET /api/v1/jobs/$summary: what the console's
// overview shows — counts by status, and completions and failures per
// minute over the last hour — in two queries, instead of a client paging
// through every job to count them. The literal "$summary" segment is more
// specific than /api/v1/jobs/{id}, so the mux routes it here whichever was
// registered first.
func (s *Server) registerSummary() {
	db := s.d.DB
	countsQ := db.Rebind(summaryCountsSQL)
	minutesQ := db.Rebind(summaryMinutesSQL)
	huma.Register(s.api, huma.Operation{
		OperationID: "job-summary", Method: http.MethodGet, Path: "/api/v1/jobs/$summary", Tags: []string{"Jobs"},
		Summary:     "Job counts by status, and outcomes per minute over the last hour",
		Description: "For dashboards: the console's overview draws its chart from this.",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body JobSummary }, error) {
		sum, err := jobSummary(ctx, db, countsQ, minutesQ, time.Now())
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &struct{ Body JobSummary }{Body: sum}, nil
	})
}

func jobSummary(ctx context.Context, db *store.DB, countsQ, minutesQ string, now time.Time) (JobSummary, error) {
	to := now.UTC().Truncate(time.Minute).Add(time.Minute)
	from := to.Add(-summaryWindow * time.Minute)
	out := JobSummary{From: from, To: to, Minutes: make([]SummaryMinute, summaryWindow)}
	for i := range out.Minutes {
		out.Minutes[i].Start = from.Add(time.Duration(i) * time.Minute)
	}

	rows, err := db.Query(ctx, countsQ)
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return out, err
		}
		out.Total += n
		switch st {
		case "pending":
			out.Counts.Pending = n
		case "running":
			out.Counts.Running = n
		case "completed":
			out.Counts.Completed = n
		case "failed":
			out.Counts.Failed = n
		case "canceled":
			out.Counts.Canceled = n
		}
	}
	if err := rows.Err(); err != nil {
		return out, err
	}
	rows.Close()

	rows, err = db.Query(ctx, minutesQ, from.UnixMilli(), from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return out, err
	}
	defer rows.Close()
	for rows.Next() {
		var i int64
		var st string
		var n int
		if err := rows.Scan(&i, &st, &n); err != nil {
			return out, err
		}
		if i < 0 || i >= summaryWindow {
			continue // cannot happen given the WHERE clause; never index out of range
		}
		m := &out.Minutes[i]
		switch st {
		case "completed":
			m.Completed += n
			out.Completed += n
		case "failed":
			m.Failed += n
			out.Failed += n
		case "canceled":
			m.Canceled += n
			out.Canceled += n
		}
	}
	return out, rows.Err()
}
