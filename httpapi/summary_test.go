package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit/httpapi"
	"github.com/servicekit/servicekit/task"
)

// TestJobSummary runs real jobs (three that complete, two that fail), moves
// two finish times back — one into the window, one out of it — and checks
// the counts by status and the per-minute series.
func TestJobSummary(t *testing.T) {
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
	var completed, failed []string
	for range 3 {
		j, err := svc.Tasks.Run(ctx, okTask.ID, task.ExecuteInput{})
		if err != nil || j.Status != "completed" {
			t.Fatalf("ok job: %v %+v", err, j)
		}
		completed = append(completed, j.ID)
	}
	for range 2 {
		j, err := svc.Tasks.Run(ctx, failTask.ID, task.ExecuteInput{})
		if err != nil || j.Status != "failed" {
			t.Fatalf("fail job: %v %+v", err, j)
		}
		failed = append(failed, j.ID)
	}
	now := time.Now()
	thirtyAgo := now.Add(-30 * time.Minute).UnixMilli()
	setFinished := func(id string, ms int64) {
		t.Helper()
		if _, err := svc.DB.W.ExecContext(ctx, svc.DB.Rebind(`UPDATE jobs SET finished_at = ? WHERE id = ?`), ms, id); err != nil {
			t.Fatal(err)
		}
	}
	setFinished(completed[0], thirtyAgo)
	setFinished(failed[0], now.Add(-2*time.Hour).UnixMilli())

	rec := get(t, svc, "/api/v1/jobs/$summary")
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /api/v1/jobs/$summary = %d: %s", rec.Code, rec.Body)
	}
	var s httpapi.JobSummary
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil {
		t.Fatal(err)
	}
	if want := (httpapi.StatusCounts{Completed: 3, Failed: 2}); s.Counts != want || s.Total != 5 {
		t.Errorf("counts %+v total %d, want %+v total 5", s.Counts, s.Total, want)
	}
	if len(s.Minutes) != 60 || s.To.Sub(s.From) != time.Hour || s.From.Second() != 0 {
		t.Fatalf("window %s – %s with %d minutes, want one hour of 60 whole minutes", s.From, s.To, len(s.Minutes))
	}
	if !s.To.After(now) || s.To.Sub(now) > time.Minute+5*time.Second {
		t.Errorf("window ends %s; now is %s: the last minute should be the current one", s.To, now)
	}
	// The job finished 30 minutes ago is in its minute; the two others that
	// completed and the one failure are in the last minute (or, if the
	// minute turned during the test, the one before).
	i := int((thirtyAgo - s.From.UnixMilli()) / 60000)
	if s.Minutes[i].Completed != 1 {
		t.Errorf("minute %d (%s): %+v, want the job finished 30 minutes ago", i, s.Minutes[i].Start, s.Minutes[i])
	}
	var sumC, sumF int
	for k, m := range s.Minutes {
		if !m.Start.Equal(s.From.Add(time.Duration(k) * time.Minute)) {
			t.Fatalf("minute %d starts %s", k, m.Start)
		}
		sumC += m.Completed
		sumF += m.Failed
	}
	if sumC != 3 || sumF != 1 || s.Completed != 3 || s.Failed != 1 || s.Canceled != 0 {
		t.Errorf("in the window: %d completed, %d failed (totals %d/%d/%d), want 3 and 1 (the other failure is 2 h old)",
			sumC, sumF, s.Completed, s.Failed, s.Canceled)
	}
	last := s.Minutes[59].Completed + s.Minutes[58].Completed
	if last != 2 {
		t.Errorf("the last two minutes hold %d completions, want 2: %+v %+v", last, s.Minutes[58], s.Minutes[59])
	}
}

// TestJobSummaryRoute checks that $summary and /jobs/{id} do not shadow
// each other, and that the summary is in the OpenAPI document.
func TestJobSummaryRoute(t *testing.T) {
	svc := newService(t, task.NewRegistry())
	rec := get(t, svc, "/api/v1/jobs/$summary")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"counts"`) {
		t.Errorf("GET $summary on an empty database = %d %s", rec.Code, rec.Body)
	}
	// A job id that does not exist is still the get-job route's 404, and
	// a malformed one its 400: $summary did not take over /jobs/{id}.
	if rec := get(t, svc, "/api/v1/jobs/01ARZ3NDEKTSV4RRFFQ69G5FAV"); rec.Code != http.StatusNotFound {
		t.Errorf("GET a missing job = %d %s, want 404", rec.Code, rec.Body)
	}
	if rec := get(t, svc, "/api/v1/jobs/$summaryx"); rec.Code != http.StatusBadRequest {
		t.Errorf("GET /api/v1/jobs/$summaryx = %d %s, want 400 (not a ULID)", rec.Code, rec.Body)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string `json:"operationId"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(get(t, svc, "/openapi.json").Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Paths["/api/v1/jobs/$summary"]["get"].OperationID != "job-summary" {
		t.Errorf("the OpenAPI document lacks GET /api/v1/jobs/$summary: %v", doc.Paths["/api/v1/jobs/$summary"])
	}
	if doc.Paths["/api/v1/jobs/{id}"]["get"].OperationID != "get-job" {
		t.Error("the OpenAPI document lost GET /api/v1/jobs/{id}")
	}
}
