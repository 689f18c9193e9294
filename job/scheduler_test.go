package job_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
)

func newScheduler(t *testing.T, db *store.DB, exec job.ExecutorFunc, opt job.Options) *job.Scheduler {
	t.Helper()
	if opt.RetryBackoff == 0 {
		opt.RetryBackoff = 10 * time.Millisecond
	}
	s := job.New(db, artifact.NewManager(db), exec, opt)
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(context.Background(), 5*time.Second) })
	return s
}

func wait(t *testing.T, s *job.Scheduler, id string) *job.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, err := s.Wait(ctx, id)
	if err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	return r
}

func submit(t *testing.T, s *job.Scheduler, n job.NewJob) *job.Record {
	t.Helper()
	if n.Type == "" {
		n.Type = "function"
	}
	if n.Command == "" {
		n.Command = "fn"
	}
	if n.TaskID == "" {
		n.TaskID = "01TASK0000000000000000000T"
	}
	r, err := s.Submit(context.Background(), n)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCompletesWithResultArtifactAndEvents(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			fmt.Fprintln(run.Stdout, "hello")
			fmt.Fprintln(run.Stderr, "warn")
			run.Progress(1, 2, "half")
			return job.Outcome{Result: json.RawMessage(`{"x":1}`)}
		}, job.Options{})
		r := wait(t, s, submit(t, s, job.NewJob{Params: map[string]any{"a": 1.0}}).ID)
		if r.Status != job.Completed || string(r.Result) != `{"x":1}` || r.ArtifactID == nil || r.Attempt != 1 {
			t.Fatalf("record %+v", r)
		}
		if r.StartedAt == nil || r.FinishedAt == nil || r.Node == nil || *r.Node != s.Node() {
			t.Fatalf("times/node %+v", r)
		}
		a, err := artifact.NewManager(db).Get(context.Background(), *r.ArtifactID)
		if err != nil {
			t.Fatal(err)
		}
		var data map[string]any
		json.Unmarshal(a.Data, &data)
		if data["job_id"] != r.ID || data["stdout"] != "hello\n" || data["stderr"] != "warn\n" {
			t.Fatalf("artifact %s", a.Data)
		}
		evs, err := s.EventsAfter(context.Background(), r.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for i, e := range evs {
			if e.ID != int64(i+1) {
				t.Fatalf("event ids not 1..n: %+v", evs)
			}
			kinds = append(kinds, e.Kind+":"+string(e.Status))
		}
		got := strings.Join(kinds, ",")
		if !strings.HasPrefix(got, "status:pending,status:running,") || !strings.HasSuffix(got, "status:completed") ||
			!strings.Contains(got, "log:,log:") {
			t.Fatalf("events %s", got)
		}
		// The last status event is the job as stored, field for field.
		want, _ := json.Marshal(r)
		if last := evs[len(evs)-1]; string(last.Data) != string(want) {
			t.Fatalf("last event\n%s\nthe job\n%s", last.Data, want)
		}
		after, _ := s.EventsAfter(context.Background(), r.ID, 3)
		if len(after) != len(evs)-3 || after[0].ID != 4 {
			t.Fatalf("after 3: %+v", after)
		}
		logs, _ := s.Logs(context.Background(), r.ID, "stderr")
		if len(logs) != 1 || logs[0].Line != "warn" {
			t.Fatalf("logs %+v", logs)
		}
	})
}

func TestConcurrencyLimit(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		var cur, peak atomic.Int32
		release := make(chan struct{})
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			n := cur.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			<-release
			cur.Add(-1)
			return job.Outcome{}
		}, job.Options{MaxConcurrency: 3})
		var recs []*job.Record
		for range 8 {
			recs = append(recs, submit(t, s, job.NewJob{}))
		}
		deadline := time.Now().Add(10 * time.Second)
		for cur.Load() < 3 {
			if time.Now().After(deadline) {
				t.Fatalf("only %d jobs started", cur.Load())
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(100 * time.Millisecond) // a fourth would start now if the limit leaked
		close(release)
		for _, r := range recs {
			if got := wait(t, s, r.ID); got.Status != job.Completed {
				t.Fatalf("status %s", got.Status)
			}
		}
		if peak.Load() != 3 {
			t.Fatalf("peak concurrency %d, want 3", peak.Load())
		}
	})
}

func TestCancelPendingAndRunning(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		started := make(chan struct{}, 1)
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			started <- struct{}{}
			<-ctx.Done()
			return job.Outcome{Err: ctx.Err()}
		}, job.Options{MaxConcurrency: 1})
		running := submit(t, s, job.NewJob{})
		<-started
		pending := submit(t, s, job.NewJob{})
		r, err := s.Cancel(context.Background(), pending.ID)
		if err != nil || r.Status != job.Canceled || r.ArtifactID == nil {
			t.Fatalf("cancel pending: %+v %v", r, err)
		}
		r, err = s.Cancel(context.Background(), running.ID)
		if err != nil || r.Status != job.Canceled {
			t.Fatalf("cancel running: %+v %v", r, err)
		}
		if _, err := s.Cancel(context.Background(), running.ID); !errors.Is(err, job.ErrAlreadyFinished) {
			t.Fatalf("second cancel: %v", err)
		}
		if _, err := s.Cancel(context.Background(), "01ARZ3NDEKTSV4RRFFQ69G5FAV"); !errors.Is(err, job.ErrNotFound) {
			t.Fatalf("unknown: %v", err)
		}
	})
}

func TestTimeoutRetriesAndPanic(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		var calls sync.Map
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			n, _ := calls.LoadOrStore(run.Job.ID, new(atomic.Int32))
			c := n.(*atomic.Int32).Add(1)
			switch run.Job.Command {
			case "sleep":
				<-ctx.Done()
				return job.Outcome{Err: ctx.Err()}
			case "flaky":
				if c < 3 {
					return job.Outcome{Err: errors.New("boom")}
				}
				return job.Outcome{}
			case "panic":
				panic("kaboom")
			}
			return job.Outcome{}
		}, job.Options{})
		r := wait(t, s, submit(t, s, job.NewJob{Command: "sleep", Timeout: 50 * time.Millisecond}).ID)
		if r.Status != job.Failed || r.Error == nil || !strings.Contains(*r.Error, "timed out") {
			t.Fatalf("timeout: %+v", r)
		}
		r = wait(t, s, submit(t, s, job.NewJob{Command: "flaky", MaxAttempts: 3}).ID)
		if r.Status != job.Completed || r.Attempt != 3 {
			t.Fatalf("flaky: %s attempt %d", r.Status, r.Attempt)
		}
		r = wait(t, s, submit(t, s, job.NewJob{Command: "flaky", MaxAttempts: 2}).ID)
		if r.Status != job.Failed || r.Attempt != 2 || *r.Error != "boom" {
			t.Fatalf("flaky exhausted: %+v", r)
		}
		r = wait(t, s, submit(t, s, job.NewJob{Command: "panic"}).ID)
		if r.Status != job.Failed || !strings.Contains(*r.Error, "kaboom") || r.ErrorTraceback == nil {
			t.Fatalf("panic: %+v", r)
		}
	})
}

// TestOutputBounded writes far more than the limit and checks the stored
// tail and the stored log events stay within it.
func TestOutputBounded(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			line := strings.Repeat("x", 99) + "\n"
			for i := range 20000 {
				fmt.Fprintf(run.Stdout, "%05d%s", i, line)
			}
			return job.Outcome{}
		}, job.Options{OutputLimit: 64 << 10})
		r := wait(t, s, submit(t, s, job.NewJob{}).ID)
		a, _ := artifact.NewManager(db).Get(context.Background(), *r.ArtifactID)
		var data struct {
			Stdout    string `json:"stdout"`
			Truncated bool   `json:"stdout_truncated"`
		}
		json.Unmarshal(a.Data, &data)
		if len(data.Stdout) != 64<<10 || !data.Truncated || !strings.HasSuffix(data.Stdout, "19999"+strings.Repeat("x", 99)+"\n") {
			t.Fatalf("tail len %d truncated %v", len(data.Stdout), data.Truncated)
		}
		logs, _ := s.Logs(context.Background(), r.ID, "")
		if n := len(logs); n == 0 || n > 2*(64<<10)/100 || logs[n-1].Line[:5] != "19999" {
			t.Fatalf("stored %d log lines", n)
		}
	})
}
