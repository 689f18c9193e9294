package job_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
)

// The engine with an executor of its own: submit a job, wait for it, read
// its result and its output, without HTTP.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "job-example")
	defer os.RemoveAll(dir)
	db, _ := store.Open(ctx, "sqlite:///"+filepath.Join(dir, "jobs.db"))
	defer db.Close()
	db.Migrate(ctx)

	s := job.New(db, artifact.NewManager(db), job.ExecutorFunc(func(ctx context.Context, run *job.Run) job.Outcome {
		fmt.Fprintln(run.Stdout, "working on", run.Job.Command)
		return job.Outcome{Result: json.RawMessage(`{"ok":true}`)}
	}), job.Options{MaxConcurrency: 2})
	if err := s.Start(ctx); err != nil {
		panic(err)
	}
	defer s.Shutdown(ctx, time.Second)

	r, _ := s.Submit(ctx, job.NewJob{TaskID: "01JEXAMPLETASK000000000000", Type: "function", Command: "work"})
	done, _ := s.Wait(ctx, r.ID)
	logs, _ := s.Logs(ctx, r.ID, "")
	fmt.Println(done.Status, string(done.Result), logs[0].Line)
	// Output: completed {"ok":true} working on work
}
