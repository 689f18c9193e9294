package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/servicekit/servicekit/httpapi"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/task"
)

// TestListJobsByCursor pages GET /api/v1/jobs by ?after= from the next of a
// numbered page to the end, and checks that the walk gives the unpaged list
// exactly, that next is null on the last page of either kind, that filters
// hold across cursor pages, and that a bad cursor is a 400 saying what to fix.
func TestListJobsByCursor(t *testing.T) {
	ctx := context.Background()
	r := task.NewRegistry()
	r.MustRegister("ok", func() map[string]any { return map[string]any{"ok": true} })
	r.MustRegister("fail", func() error { return errors.New("broken on purpose") })
	svc := newService(t, r)
	okTask, err := svc.Tasks.Create(ctx, task.Input{Command: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	failTask, err := svc.Tasks.Create(ctx, task.Input{Command: "fail"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 {
		id := okTask.ID
		if i%3 == 0 {
			id = failTask.ID
		}
		if _, err := svc.Tasks.Run(ctx, id, task.ExecuteInput{}); err != nil {
			t.Fatal(err)
		}
	}
	var all []job.Record
	decode(t, get(t, svc, "/api/v1/jobs"), &all)
	if len(all) != 8 {
		t.Fatalf("GET /api/v1/jobs listed %d jobs, want 8", len(all))
	}

	var first httpapi.JobPage
	decode(t, get(t, svc, "/api/v1/jobs?size=3"), &first)
	if first.Total != 8 || len(first.Items) != 3 || first.Next == nil || *first.Next != first.Items[2].ID {
		t.Fatalf("page 1 of 3: total %d, %d items, next %v", first.Total, len(first.Items), first.Next)
	}
	walked := jobIDs(first.Items)
	for next := first.Next; next != nil; {
		var pg httpapi.JobsAfter
		decode(t, get(t, svc, "/api/v1/jobs?size=3&after="+*next), &pg)
		if pg.Size != 3 || len(pg.Items) == 0 || len(pg.Items) > 3 {
			t.Fatalf("after %s: size %d, %d items", *next, pg.Size, len(pg.Items))
		}
		walked = append(walked, jobIDs(pg.Items)...)
		if pg.Next != nil && *pg.Next != pg.Items[len(pg.Items)-1].ID {
			t.Fatalf("after %s: next %s is not the last item", *next, *pg.Next)
		}
		next = pg.Next
	}
	if want := jobIDs(all); !slices.Equal(walked, want) {
		t.Fatalf("cursor walk %v, want the unpaged list %v", walked, want)
	}

	var last httpapi.JobPage
	decode(t, get(t, svc, "/api/v1/jobs?page=3&size=3"), &last)
	if len(last.Items) != 2 || last.Next != nil {
		t.Errorf("last numbered page: %d items, next %v; want 2 and null", len(last.Items), last.Next)
	}
	var exact httpapi.JobsAfter // a cursor page that ends exactly at the last job
	decode(t, get(t, svc, "/api/v1/jobs?size=2&after="+all[5].ID), &exact)
	if len(exact.Items) != 2 || exact.Next != nil {
		t.Errorf("after the 6th of 8 jobs, size 2: %d items, next %v; want 2 and null", len(exact.Items), exact.Next)
	}
	var top httpapi.JobsAfter // a cursor above every id: from the newest, default size
	decode(t, get(t, svc, "/api/v1/jobs?after=7ZZZZZZZZZZZZZZZZZZZZZZZZZ"), &top)
	if !slices.Equal(jobIDs(top.Items), jobIDs(all)) || top.Size != 50 || top.Next != nil {
		t.Errorf("after the highest id: %v size %d next %v, want every job, 50, null", jobIDs(top.Items), top.Size, top.Next)
	}

	var failed []string
	for _, j := range all {
		if j.Status == job.Failed {
			failed = append(failed, j.ID)
		}
	}
	var f1, f2 httpapi.JobsAfter
	decode(t, get(t, svc, "/api/v1/jobs?status=failed&size=1&after="+all[0].ID), &f1)
	if f1.Next == nil {
		t.Fatalf("failed jobs after the newest, size 1: next is null, and %d failed", len(failed))
	}
	decode(t, get(t, svc, "/api/v1/jobs?status=failed&size=5&after="+*f1.Next), &f2)
	got := append(jobIDs(f1.Items), jobIDs(f2.Items)...)
	want := slices.DeleteFunc(slices.Clone(failed), func(id string) bool { return id >= all[0].ID })
	if !slices.Equal(got, want) {
		t.Errorf("failed jobs by cursor %v, want %v", got, want)
	}

	for _, c := range []struct{ path, inDetail string }{
		{"/api/v1/jobs?after=nope", "after"},
		{"/api/v1/jobs?after=" + all[0].ID + "&page=2", "use one"},
		{"/api/v1/jobs?after=" + all[0].ID + "&size=0", "size"},
		{"/api/v1/jobs?after=" + all[0].ID + "&trigger=cron", "trigger"},
	} {
		rec := get(t, svc, c.path)
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusUnprocessableEntity {
			t.Errorf("GET %s = %d, want 400 or 422: %s", c.path, rec.Code, rec.Body)
			continue
		}
		if !strings.Contains(rec.Body.String(), c.inDetail) {
			t.Errorf("GET %s: %s does not say %q", c.path, rec.Body, c.inDetail)
		}
	}
}

func decode(t *testing.T, rec *httptest.ResponseRecorder, v any) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("HTTP %d: %s", rec.Code, rec.Body)
	}
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatal(err)
	}
}

func jobIDs[T interface{ job.Record | *job.Record }](rs []T) []string {
	out := make([]string, len(rs))
	for i := range rs {
		switch r := any(rs[i]).(type) {
		case job.Record:
			out[i] = r.ID
		case *job.Record:
			out[i] = r.ID
		}
	}
	return out
}
