package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/internal/dbtest"
	"github.com/servicekit/servicekit/task"
)

// TestFilledJobsReadLikeRealOnes fills a database in two stages, the way
// stored does, and reads it back through the real service over HTTP: the
// list (newest first, the status mix, the busy task), each kind of job's
// event stream replayed, its logs and its artifact, and $orphaned; then runs
// a new job on top. A filled row the service reads differently from one it
// wrote would make the stored figures measure something else.
func TestFilledJobsReadLikeRealOnes(t *testing.T) {
	dbtest.Each(t, func(t *testing.T, url string) {
		ctx := context.Background()
		r := task.NewRegistry()
		r.MustRegister("hello", func() map[string]any { return map[string]any{"message": "Hello!"} })
		build := func() (*servicekit.Service, *server) {
			svc, err := servicekit.New(servicekit.Info{DisplayName: "fill-test", Version: "0"}).WithDatabase(url).
				WithRegistry(r).WithTasks().WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))).Build(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(svc)
			t.Cleanup(func() { ts.Close(); svc.Close() })
			return svc, &server{base: ts.URL, http: ts.Client()}
		}
		svc, s := build()
		tasks, err := createTasks(ctx, s, 6)
		if err != nil {
			t.Fatal(err)
		}
		svc.Close() // the filler writes while no server uses the database
		p := &plan{Tasks: tasks, Total: 300, End: time.Now().Add(-time.Minute), Window: time.Hour}
		for _, st := range [][2]int{{0, 100}, {100, 300}} {
			f, err := fill(ctx, url, p, st[0], st[1])
			if err != nil {
				t.Fatal(err)
			}
			if len(f.SampleIDs) == 0 {
				t.Fatal("fill sampled no job ids")
			}
		}
		_, s = build()

		var pg struct {
			Items []struct {
				ID, Type, Status string
				TaskID           string `json:"task_id"`
			} `json:"items"`
			Total int `json:"total"`
		}
		if err := s.call(ctx, http.MethodGet, "/api/v1/jobs?page=1&size=1000", nil, &pg); err != nil {
			t.Fatal(err)
		}
		if pg.Total != 300 || len(pg.Items) != 300 {
			t.Fatalf("the service lists %d jobs (total %d), want 300", len(pg.Items), pg.Total)
		}
		byStatus, busy := map[string]int{}, 0
		pick := map[string]string{} // one job id per kind
		for i, j := range pg.Items {
			if i > 0 && j.ID >= pg.Items[i-1].ID {
				t.Fatalf("jobs not newest first: %s after %s", j.ID, pg.Items[i-1].ID)
			}
			byStatus[j.Status]++
			if j.TaskID == tasks[0].ID {
				busy++
			}
			pick[j.Type+" "+j.Status] = j.ID
		}
		if want := map[string]int{"completed": 270, "failed": 27, "canceled": 3}; !reflect.DeepEqual(byStatus, want) {
			t.Errorf("statuses %v, want %v", byStatus, want)
		}
		if busy < 150 {
			t.Errorf("the busy task has %d of 300 jobs, want at least half", busy)
		}

		want := map[string]struct {
			statuses, logs string
		}{
			"function completed": {"pending running completed", ""},
			"function failed":    {"pending running failed", ""},
			"shell completed":    {"pending running completed", "line\n"},
			"shell failed":       {"pending running failed", "line\n"},
		}
		canceled := ""
		for k, id := range pick {
			if strings.HasSuffix(k, "canceled") {
				canceled = id
			}
		}
		want["canceled"] = struct{ statuses, logs string }{"pending canceled", ""}
		pick["canceled"] = canceled
		for kind, w := range want {
			id := pick[kind]
			if id == "" {
				t.Errorf("no %s job was filled", kind)
				continue
			}
			var statuses []string
			var last json.RawMessage
			res, err := openStream(ctx, s.http, s.base, id)
			if err != nil {
				t.Fatal(err)
			}
			err = readEvents(res.Body, func(event string, data []byte) bool {
				if event == "status" {
					st, _ := terminal(data)
					statuses = append(statuses, st)
					last = append(last[:0], data...)
				}
				return true
			})
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(statuses, " "); got != w.statuses {
				t.Errorf("%s job %s: status events %q, want %q", kind, id, got, w.statuses)
			}
			var rec, ev map[string]any
			if err := s.call(ctx, http.MethodGet, "/api/v1/jobs/"+id, nil, &rec); err != nil {
				t.Fatal(err)
			}
			json.Unmarshal(last, &ev)
			if !reflect.DeepEqual(rec, ev) {
				t.Errorf("%s job: the last status event\n%v\nis not the record\n%v", kind, ev, rec)
			}
			_, logs, err := s.timedGet(ctx, "/api/v1/jobs/"+id+"/$logs")
			if err != nil || string(logs) != w.logs {
				t.Errorf("%s job: $logs %q (%v), want %q", kind, logs, err, w.logs)
			}
			var art struct {
				Data struct {
					JobID string `json:"job_id"`
				} `json:"data"`
			}
			if err := s.call(ctx, http.MethodGet, "/api/v1/artifacts/"+rec["artifact_id"].(string), nil, &art); err != nil || art.Data.JobID != id {
				t.Errorf("%s job: artifact names job %q (%v), want %s", kind, art.Data.JobID, err, id)
			}
		}

		var orphans struct {
			Count int `json:"count"`
		}
		if err := s.call(ctx, http.MethodGet, "/api/v1/tasks/$orphaned", nil, &orphans); err != nil || orphans.Count != 0 {
			t.Errorf("$orphaned counts %d (%v); every task has filled jobs", orphans.Count, err)
		}
		id, err := s.execute(ctx, tasks[0].ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := followTimes(ctx, s, id, time.Now()); err != nil {
			t.Fatalf("a new job on top of the filled ones: %v", err)
		}
		if id <= pg.Items[0].ID {
			t.Errorf("the new job %s sorts before the newest filled one %s", id, pg.Items[0].ID)
		}
	})
}

func TestPrintedAt(t *testing.T) {
	for _, c := range []struct {
		data string
		want int64
		ok   bool
	}{
		{`{"stream":"stdout","line":"line 12 1796171971.053123 xxxx"}`, 1796171971053123, true},
		{`{"stream":"stdout","line":"line 12 1796171971.05 xxxx"}`, 0, false},
		{`{"stream":"stdout","line":"hello"}`, 0, false},
	} {
		got, ok := printedAt([]byte(c.data))
		if got != c.want || ok != c.ok {
			t.Errorf("printedAt(%s) = %d, %v; want %d, %v", c.data, got, ok, c.want, c.ok)
		}
	}
}

func TestParseSizes(t *testing.T) {
	got, err := parseSizes("1000, 100k,1M,10MB,1GB")
	if want := []int64{1000, 100_000, 1_000_000, 10_000_000, 1_000_000_000}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseSizes = %v, %v; want %v", got, err, want)
	}
	if _, err := parseSizes("1,x"); err == nil {
		t.Error("parseSizes(1,x) did not fail")
	}
}

func TestReadEventsLongLine(t *testing.T) {
	long := strings.Repeat("a", 200<<10) // longer than the reader's buffer
	in := "id: 1\nevent: log\ndata: " + long + "\n\nid: 2\nevent: status\ndata: {\"status\":\"completed\"}\n\n"
	var got []string
	err := readEvents(strings.NewReader(in), func(event string, data []byte) bool {
		got = append(got, fmt.Sprintf("%s %d", event, len(data)))
		return true
	})
	if want := []string{"log 204800", "status 22"}; err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("events %q, %v; want %q", got, err, want)
	}
}
