package httpapi

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/servicekit/servicekit/job"
)

type JobPath struct {
	ID string `path:"id" doc:"job ULID"`
}

type jobOut struct {
	Body *job.Record
}

var jobsTag = []string{"Jobs"}

func (s *Server) registerJobs() {
	j := s.d.Jobs
	huma.Register(s.api, huma.Operation{
		OperationID: "list-jobs", Method: http.MethodGet, Path: "/api/v1/jobs", Tags: jobsTag,
		Summary: "List jobs, newest first",
		Description: "Without page/size at most the newest 100. With page/size a page object whose next is the " +
			"cursor of the jobs after it; with after=<job id> (and size) the jobs after that one, as a " +
			"{items,size,next} object: as fast however deep, and without a total, which costs a count of every match.",
	}, func(ctx context.Context, in *struct {
		Status  string `query:"status" doc:"pending, running, completed, failed or canceled"`
		TaskID  string `query:"task_id" doc:"only jobs of this task"`
		Trigger string `query:"trigger" doc:"only jobs made by api ($execute) or schedule"`
		After   string `query:"after" doc:"a job id, the next of the previous page: list the jobs after it (older), size at a time (default 50); not with page"`
		PageQuery
	}) (*listOut, error) {
		st, err := jobStatus(in.Status)
		if err != nil {
			return nil, err
		}
		if in.TaskID != "" {
			if err := checkID("task_id", in.TaskID); err != nil {
				return nil, err
			}
		}
		if in.Trigger != "" && in.Trigger != job.TriggerAPI && in.Trigger != job.TriggerSchedule {
			return nil, problemf(400, "query trigger=%q: want api or schedule", in.Trigger)
		}
		f := job.Filter{Status: st, TaskID: in.TaskID, Trigger: in.Trigger}
		if in.After != "" {
			return s.listJobsAfter(ctx, f, in.After, in.PageQuery)
		}
		paged, limit, offset := in.paged(100)
		if !paged { // no total asked for: no count
			items, err := j.ListPage(ctx, f, limit, offset)
			if err != nil {
				return nil, s.toProblem(ctx, err)
			}
			return &listOut{Body: items}, nil
		}
		items, total, err := j.List(ctx, f, limit, offset)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		pg := JobPage{Page: newPage(items, total, limit, offset)}
		if n := len(items); n > 0 && offset+n < total {
			pg.Next = &items[n-1].ID
		}
		return &listOut{Body: pg}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-job", Method: http.MethodGet, Path: "/api/v1/jobs/{id}", Tags: jobsTag, Summary: "Get a job",
	}, func(ctx context.Context, in *JobPath) (*jobOut, error) {
		if err := checkID("job id", in.ID); err != nil {
			return nil, err
		}
		r, err := j.Get(ctx, in.ID)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &jobOut{Body: r}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "cancel-job", Method: http.MethodPost, Path: "/api/v1/jobs/{id}/$cancel", Tags: jobsTag,
		Summary:     "Cancel a job",
		Description: "A pending job becomes canceled; a running one is stopped (a shell's process group gets SIGTERM, then SIGKILL after 5 s) and the answer waits for it to end. 409 if already finished.",
	}, func(ctx context.Context, in *JobPath) (*jobOut, error) {
		if err := checkID("job id", in.ID); err != nil {
			return nil, err
		}
		r, err := j.Cancel(ctx, in.ID)
		if errors.Is(err, job.ErrAlreadyFinished) {
			return nil, problemf(409, "job %s already finished with status %s", in.ID, r.Status)
		}
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &jobOut{Body: r}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "delete-job", Method: http.MethodDelete, Path: "/api/v1/jobs/{id}", Tags: jobsTag,
		Summary: "Delete a job", Description: "Cancels it first if it is not finished. Its artifact stays.",
		DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *JobPath) (*struct{}, error) {
		if err := checkID("job id", in.ID); err != nil {
			return nil, err
		}
		return nil, s.toProblem(ctx, j.Delete(ctx, in.ID))
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "job-logs", Method: http.MethodGet, Path: "/api/v1/jobs/{id}/$logs", Tags: jobsTag,
		Summary:   "Captured output so far, both streams in the order received",
		Responses: map[string]*huma.Response{"200": {Description: "the log", Content: map[string]*huma.MediaType{"text/plain": {}}}},
	}, func(ctx context.Context, in *struct {
		JobPath
		Stream string `query:"stream" doc:"stdout or stderr; both when omitted"`
	}) (*huma.StreamResponse, error) {
		if err := checkID("job id", in.ID); err != nil {
			return nil, err
		}
		if in.Stream != "" && in.Stream != "stdout" && in.Stream != "stderr" {
			return nil, problemf(400, "query stream=%q: want stdout or stderr", in.Stream)
		}
		if _, err := j.Get(ctx, in.ID); err != nil {
			return nil, s.toProblem(ctx, err)
		}
		lines, err := j.Logs(ctx, in.ID, in.Stream)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			hc.SetHeader("Content-Type", "text/plain; charset=utf-8")
			w := hc.BodyWriter()
			for _, l := range lines {
				io.WriteString(w, l.Line)
				io.WriteString(w, "\n")
			}
		}}, nil
	})

	st := newStreamer(s)
	huma.Register(s.api, huma.Operation{
		OperationID: "stream-job", Method: http.MethodGet, Path: "/api/v1/jobs/{id}/$stream", Tags: jobsTag,
		Summary: "Server-sent events of a job: status changes and output lines",
		Description: "Without Last-Event-ID the events so far come first, then live ones; with it only later ones. " +
			"event: status carries the whole job, event: log {stream,line}. Closes after a terminal status. " +
			"A client that does not read what it was sent within the write timeout is dropped and resumes with Last-Event-ID; " +
			"over the server's cap on open streams (--max-streams) the answer is 429 with Retry-After.",
		Responses: map[string]*huma.Response{
			"200": {Description: "event stream", Content: map[string]*huma.MediaType{"text/event-stream": {}}},
			"429": {Description: "too many event streams are open on this server; retry after Retry-After seconds"},
		},
	}, func(ctx context.Context, in *struct {
		JobPath
		LastEventID string `header:"Last-Event-ID" doc:"resume after this event id"`
	}) (*huma.StreamResponse, error) {
		if err := checkID("job id", in.ID); err != nil {
			return nil, err
		}
		after, err := parseLastEventID(in.LastEventID)
		if err != nil {
			return nil, err
		}
		// Subscribed before the first read, so no change after it is
		// missed; that read (shared and bounded like every stream read)
		// also tells whether the job exists, so a new stream costs one
		// query, not a Get and then a read.
		changed, stop := j.Subscribe(in.ID)
		first, err := st.load(ctx, in.ID, after)
		if err == nil && first.gone {
			err = job.ErrNotFound
		}
		if err != nil {
			stop()
			return nil, s.toProblem(ctx, err)
		}
		return &huma.StreamResponse{Body: func(hc huma.Context) {
			defer stop()
			r, w := humago.Unwrap(hc)
			st.serve(w, r, in.ID, after, first, changed)
		}}, nil
	})
}

// JobPage is a page of GET /api/v1/jobs?page&size: the page object of
// every list, and Next, the after= of the page that follows it (null on
// the last), for a client that goes on by cursor.
type JobPage struct {
	Page[*job.Record]
	Next *string `json:"next" doc:"the after= of the jobs that follow this page; null on the last"`
}

// JobsAfter is a keyset page of GET /api/v1/jobs?after=: no total, which
// would cost a count of every match, and no page number, since a cursor
// page has none.
type JobsAfter struct {
	Items []*job.Record `json:"items"`
	Size  int           `json:"size"`
	Next  *string       `json:"next" doc:"the after= of the jobs that follow; null when there are none"`
}

// listJobsAfter answers ?after=: one more job than the page is read, so
// next is null exactly when nothing follows (never a last, empty page).
func (s *Server) listJobsAfter(ctx context.Context, f job.Filter, after string, q PageQuery) (*listOut, error) {
	if err := checkID("after", after); err != nil {
		return nil, err
	}
	if q.Page != 0 {
		return nil, problemf(400, "query after and page: use one (after pages by cursor, from the next of the previous page; page by number)")
	}
	size := q.Size
	if size == 0 {
		size = 50
	}
	f.After = after
	items, err := s.d.Jobs.ListPage(ctx, f, size+1, 0)
	if err != nil {
		return nil, s.toProblem(ctx, err)
	}
	out := JobsAfter{Items: items, Size: size}
	if len(items) > size {
		out.Items = items[:size]
		out.Next = &items[size-1].ID
	}
	return &listOut{Body: out}, nil
}

// parseLastEventID accepts an empty header or a non-negative event id.
func parseLastEventID(v string) (int64, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, problemf(400, "Last-Event-ID %q: want a non-negative event id", v)
	}
	return n, nil
}
