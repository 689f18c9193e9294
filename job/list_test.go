package job_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
)

// TestListFiltersAndCursorPages runs jobs of three tasks, some failing and
// some fired by a schedule, then checks every filter (alone and combined)
// three ways against the same jobs filtered here: List with its total,
// Count, and a walk by cursor (Filter.After) a few at a time, which must
// give the same jobs in the same order, newest first, and must not shift
// when a job is submitted halfway through.
func TestListFiltersAndCursorPages(t *testing.T) {
	dbtest.EachDB(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		s := newScheduler(t, db, func(ctx context.Context, run *job.Run) job.Outcome {
			if run.Job.Params["fail"] == true {
				return job.Outcome{Err: errors.New("failing on purpose")}
			}
			return job.Outcome{}
		}, job.Options{})
		tasks := []string{"01TASK00000000000000000001", "01TASK00000000000000000002", "01TASK00000000000000000003"}
		slot := time.Now().Truncate(time.Minute)
		var all []*job.Record
		for i := range 23 {
			n := job.NewJob{TaskID: tasks[i%3], Params: map[string]any{"fail": i%4 == 1}}
			if i%5 == 2 {
				at := slot.Add(time.Duration(i) * time.Minute)
				n.ScheduledFor = &at
			}
			all = append(all, wait(t, s, submit(t, s, n).ID))
		}
		slices.Reverse(all) // newest first, as List answers
		var scheduled, failed int
		for _, r := range all {
			if r.Trigger == job.TriggerSchedule {
				scheduled++
			}
			if r.Status == job.Failed {
				failed++
			}
		}
		if scheduled == 0 || failed == 0 {
			t.Fatalf("%d jobs fired by a schedule and %d failed: the filters would test nothing", scheduled, failed)
		}

		filters := []job.Filter{
			{},
			{Status: job.Failed},
			{Status: job.Completed},
			{Status: job.Pending},
			{TaskID: tasks[1]},
			{TaskID: tasks[1], Status: job.Failed},
			{Trigger: job.TriggerSchedule},
			{Trigger: job.TriggerAPI},
			{Trigger: job.TriggerSchedule, TaskID: tasks[2]},
			{TaskID: "01TASK0000000000000000000N"},
		}
		for _, f := range filters {
			var want []string
			for _, r := range all {
				if (f.Status == "" || r.Status == f.Status) && (f.TaskID == "" || r.TaskID == f.TaskID) &&
					(f.Trigger == "" || r.Trigger == f.Trigger) {
					want = append(want, r.ID)
				}
			}
			got, total, err := s.List(ctx, f, 1000, 0)
			if err != nil {
				t.Fatalf("%+v: %v", f, err)
			}
			if ids := idsOf(got); !slices.Equal(ids, want) || total != len(want) {
				t.Errorf("List(%+v) = %v total %d, want %v total %d", f, ids, total, want, len(want))
			}
			if n, err := s.Count(ctx, f); err != nil || n != len(want) {
				t.Errorf("Count(%+v) = %d, %v; want %d", f, n, err, len(want))
			}
			if offset := min(2, len(want)); len(want) > 0 {
				got, _, _ := s.List(ctx, f, 3, offset)
				if ids := idsOf(got); !slices.Equal(ids, want[offset:min(offset+3, len(want))]) {
					t.Errorf("List(%+v, 3, %d) = %v, want %v", f, offset, ids, want[offset:min(offset+3, len(want))])
				}
			}
			if walked := walk(t, s, f, 4); !slices.Equal(walked, want) {
				t.Errorf("cursor walk of %+v = %v, want %v", f, walked, want)
			}
		}

		// A job submitted after the first page does not shift the next ones.
		first, err := s.ListPage(ctx, job.Filter{}, 5, 0)
		if err != nil {
			t.Fatal(err)
		}
		wait(t, s, submit(t, s, job.NewJob{TaskID: tasks[0]}).ID)
		next, err := s.ListPage(ctx, job.Filter{After: first[4].ID}, 5, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ids, want := idsOf(next), idsOf(all[5:10]); !slices.Equal(ids, want) {
			t.Errorf("page after %s = %v after a new submit, want %v", first[4].ID, ids, want)
		}

		if _, _, err := s.List(ctx, job.Filter{Trigger: "cron'; --"}, 10, 0); err == nil {
			t.Error("List with an unknown trigger did not fail")
		}
	})
}

// walk lists every job matching f by cursor, size at a time.
func walk(t *testing.T, s *job.Scheduler, f job.Filter, size int) []string {
	t.Helper()
	var out []string
	for {
		page, err := s.ListPage(context.Background(), f, size, 0)
		if err != nil {
			t.Fatalf("ListPage(%+v): %v", f, err)
		}
		out = append(out, idsOf(page)...)
		if len(page) < size {
			return out
		}
		f.After = page[len(page)-1].ID
	}
}

func idsOf(rs []*job.Record) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}
