package cli

import (
	"context"
	"net/url"

	"github.com/dustin/go-humanize"
	"golang.org/x/sync/errgroup"

	"github.com/servicekit/servicekit/httpapi"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/task"
)

// lastJob is what `task list` shows of a task's jobs: how many there are
// and the newest one.
type lastJob struct {
	count int
	job   *job.Record
}

// summary is the LAST JOB cell: the newest job's status and how long ago
// it was submitted, which is what one scans a task list for ("did last
// night's run fail?").
func (l lastJob) summary() string {
	if l.job == nil {
		return "never run"
	}
	return string(l.job.Status) + " " + humanize.Time(l.job.SubmittedAt)
}

// lastJobsParallel bounds the requests of one `task list` in flight at once,
// so a long list is quick without flooding the server.
const lastJobsParallel = 8

// lastJobs asks, for each task, for its newest job with a one-item page
// (GET /api/v1/jobs?task_id=…&page=1&size=1), whose total is the task's job
// count. One request per task is exact, where one list of recent jobs would
// miss the tasks that last ran long ago.
func (c *apiClient) lastJobs(ctx context.Context, tasks []task.Task) ([]lastJob, error) {
	out := make([]lastJob, len(tasks))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(lastJobsParallel)
	for i, t := range tasks {
		g.Go(func() error {
			var pg httpapi.Page[job.Record]
			q := url.Values{"task_id": {t.ID}, "page": {"1"}, "size": {"1"}}
			if _, err := c.get(ctx, "/api/v1/jobs", q, &pg); err != nil {
				return err
			}
			out[i].count = pg.Total
			if len(pg.Items) > 0 {
				out[i].job = &pg.Items[0]
			}
			return nil
		})
	}
	return out, g.Wait()
}
