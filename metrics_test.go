package servicekit_test

import (
	"bytes"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape parses /metrics with Prometheus' own text parser.
func (e *env) scrape() map[string]*dto.MetricFamily {
	e.t.Helper()
	r := e.do("GET", "/metrics", nil)
	if r.status != 200 {
		e.t.Fatalf("/metrics %d", r.status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(r.body))
	if err != nil {
		e.t.Fatal(err)
	}
	return fams
}

// value returns the counter/gauge value (or histogram count) of the series with these labels.
func value(fams map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for k, v := range labels {
			found := false
			for _, lp := range m.Label {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return 0
}

func TestMetricsFollowJobs(t *testing.T) {
	e := newEnv(t)
	before := e.scrape()
	if v := value(before, "servicekit_jobs_submitted_total", map[string]string{"type": "function"}); v > 0 {
		t.Fatalf("submitted before any job: %v", v)
	}
	if before["go_goroutines"] == nil || before["process_resident_memory_bytes"] == nil {
		t.Fatal("Go and process collectors missing")
	}
	greet := e.createTask(map[string]any{"command": "greet_user"})
	fail := e.createTask(map[string]any{"command": "fail_task"})
	e.waitJob(e.execute(greet["id"].(string), nil))
	e.waitJob(e.execute(greet["id"].(string), nil))
	e.waitJob(e.execute(fail["id"].(string), nil))
	after := e.scrape()
	checks := []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"servicekit_jobs_submitted_total", map[string]string{"type": "function"}, 3},
		{"servicekit_jobs_finished_total", map[string]string{"type": "function", "status": "completed"}, 2},
		{"servicekit_jobs_finished_total", map[string]string{"type": "function", "status": "failed"}, 1},
		{"servicekit_job_duration_seconds", map[string]string{"type": "function", "status": "completed"}, 2},
		{"servicekit_job_queue_wait_seconds", map[string]string{"type": "function"}, 3},
		{"servicekit_jobs_pending", nil, 0},
		{"servicekit_jobs_running", nil, 0},
		{"servicekit_http_requests_total", map[string]string{"route": "POST /api/v1/tasks/{id}/$execute", "method": "POST", "status": "202"}, 3},
		{"servicekit_http_requests_total", map[string]string{"route": "POST /api/v1/tasks", "method": "POST", "status": "201"}, 2},
		{"servicekit_http_request_duration_seconds", map[string]string{"route": "POST /api/v1/tasks/{id}/$execute", "status": "202"}, 3},
	}
	for _, c := range checks {
		if got := value(after, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	e.do("GET", "/api/v1/nowhere", nil)
	if got := value(e.scrape(), "servicekit_http_requests_total", map[string]string{"route": "unmatched", "status": "404"}); got != 1 {
		t.Errorf("unmatched 404s: %v", got)
	}
}

// TestScheduleMetrics: an every-second schedule on a job that outlives its
// slot fires, skips by overlap, and records the lag from slot to start.
func TestScheduleMetrics(t *testing.T) {
	e := newEnv(t)
	tk := e.createTask(map[string]any{"command": "sleep 2", "schedule": "@every 1s"})
	id := tk["id"].(string)
	deadline := time.Now().Add(15 * time.Second)
	for {
		fams := e.scrape()
		fired := value(fams, "servicekit_schedule_fires_total", nil)
		skipped := value(fams, "servicekit_schedule_skips_total", map[string]string{"reason": "overlap"})
		lag := value(fams, "servicekit_schedule_lag_seconds", nil)
		if fired >= 1 && skipped >= 1 && lag >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 15 s: fires %v, overlap skips %v, lag observations %v", fired, skipped, lag)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := e.do("PATCH", "/api/v1/tasks/"+id, map[string]any{"enabled": false}); r.status != 200 {
		t.Fatalf("disable: %d %s", r.status, r.body)
	}
}
