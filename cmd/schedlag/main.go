// Command schedlag measures how well a running servicekit server keeps many
// schedules on time:
//
//	go run ./cmd/schedlag -server http://127.0.0.1:8000 -tasks 1000 -every 1s -duration 30s [-function noop]
//
// It creates -tasks function tasks on "@every <every>" (overlap allow, so
// that no slot is skipped for a slow job), paced over one interval so their
// phases spread as those of tasks created at arbitrary times do (-burst: all
// at once), lets them fire for -duration,
// disables them, waits until their jobs are terminal, and reads every job
// they fired. It prints, over all jobs, the fire lag (slot → job stored,
// submitted_at − scheduled_for) and the start lag (slot → first attempt
// started, started_at − scheduled_for) as p50/p99/max, and the slots that
// fired no job or more than one. The tasks are deleted at the end (their
// jobs stay, for inspection).
//
// Times come from the server's own records, so the client's load does not
// enter them; run it on the same machine to see what the server sustains
// there with the client beside it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

type client struct {
	base string
	key  string
	http *http.Client
}

func (c *client) do(ctx context.Context, method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(data)))
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

type jobRec struct {
	ID           string     `json:"id"`
	Status       string     `json:"status"`
	SubmittedAt  time.Time  `json:"submitted_at"`
	StartedAt    *time.Time `json:"started_at"`
	ScheduledFor *time.Time `json:"scheduled_for"`
	Node         *string    `json:"node"`
	TaskID       string     `json:"task_id"`
}

type page struct {
	Items []jobRec `json:"items"`
	Pages int      `json:"pages"`
}

func main() {
	server := flag.String("server", envOr("SERVICEKIT_URL", "http://127.0.0.1:8000"), "server URL (SERVICEKIT_URL)")
	key := flag.String("api-key", os.Getenv("SERVICEKIT_API_KEY"), "API key (SERVICEKIT_API_KEY)")
	tasks := flag.Int("tasks", 1000, "scheduled tasks to create")
	every := flag.Duration("every", time.Second, "their schedule: @every this")
	duration := flag.Duration("duration", 30*time.Second, "how long they fire")
	function := flag.String("function", "noop", "the registered do-nothing function the tasks run")
	burst := flag.Bool("burst", false, "create the tasks as fast as possible instead of paced over one interval")
	flag.Parse()
	c := &client{base: strings.TrimRight(*server, "/"), key: *key, http: &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 32},
	}}
	if err := run(context.Background(), c, *tasks, *every, *duration, *function, *burst); err != nil {
		fmt.Fprintln(os.Stderr, "schedlag:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c *client, n int, every, duration time.Duration, function string, burst bool) error {
	ids := make([]string, n)
	// Creates are paced over one interval: @every counts from when the
	// schedule was set, so this gives the tasks evenly spread phases, as
	// tasks created at arbitrary times have. (-burst creates them at once,
	// so their phases bunch up in the fraction of a second that takes.)
	began := time.Now()
	if err := parallel(n, func(i int) error {
		if !burst {
			time.Sleep(time.Until(began.Add(every * time.Duration(i) / time.Duration(n))))
		}
		var t struct{ ID string }
		err := c.do(ctx, "POST", "/api/v1/tasks", map[string]any{
			"command": function, "type": "function", "schedule": "@every " + every.String(), "overlap": "allow",
		}, &t)
		ids[i] = t.ID
		return err
	}); err != nil {
		return err
	}
	created := time.Now()
	fmt.Printf("created %d tasks on @every %s; firing for %s\n", n, every, duration)
	time.Sleep(duration) // the measurement window itself, not a wait for a condition
	if err := parallel(n, func(i int) error {
		return c.do(ctx, "PATCH", "/api/v1/tasks/"+ids[i], map[string]any{"enabled": false}, nil)
	}); err != nil {
		return err
	}
	stopped := time.Now()
	mine := map[string]bool{}
	for _, id := range ids {
		mine[id] = true
	}
	var jobs []jobRec
	for deadline := time.Now().Add(2 * time.Minute); ; {
		var err error
		if jobs, err = fetch(ctx, c, mine); err != nil {
			return err
		}
		done := true
		for _, j := range jobs {
			if j.Status == "pending" || j.Status == "running" {
				done = false
				break
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("jobs still not terminal 2 minutes after the tasks were disabled")
		}
		time.Sleep(200 * time.Millisecond)
	}
	report(jobs, ids, every, created, stopped)
	return parallel(n, func(i int) error { return c.do(ctx, "DELETE", "/api/v1/tasks/"+ids[i], nil, nil) })
}

func fetch(ctx context.Context, c *client, mine map[string]bool) ([]jobRec, error) {
	var out []jobRec
	for p := 1; ; p++ {
		var pg page
		if err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/jobs?trigger=schedule&page=%d&size=1000", p), nil, &pg); err != nil {
			return nil, err
		}
		for _, j := range pg.Items {
			if mine[j.TaskID] {
				out = append(out, j)
			}
		}
		if p >= pg.Pages {
			return out, nil
		}
	}
}

func report(jobs []jobRec, ids []string, every time.Duration, created, stopped time.Time) {
	var fire, start []time.Duration
	slots := map[string]map[int64]int{}
	nodes := map[string]int{}
	failed := 0
	for _, j := range jobs {
		if j.ScheduledFor == nil {
			continue
		}
		fire = append(fire, j.SubmittedAt.Sub(*j.ScheduledFor))
		if j.StartedAt != nil {
			start = append(start, j.StartedAt.Sub(*j.ScheduledFor))
		}
		if slots[j.TaskID] == nil {
			slots[j.TaskID] = map[int64]int{}
		}
		slots[j.TaskID][j.ScheduledFor.UnixMilli()]++
		if j.Node != nil {
			nodes[*j.Node]++
		}
		if j.Status != "completed" {
			failed++
		}
	}
	// Each task's slots must follow each other one period apart, from
	// within two periods of the create to within two of the disable.
	var missing, dup, expected int
	step := every.Milliseconds()
	for _, id := range ids {
		var list []int64
		for s, n := range slots[id] {
			list = append(list, s)
			dup += n - 1
		}
		slices.Sort(list)
		if len(list) == 0 {
			missing += int((stopped.UnixMilli() - created.UnixMilli()) / step)
			continue
		}
		first, last := list[0], list[len(list)-1]
		expected += int((last-first)/step) + 1
		missing += int((last-first)/step) + 1 - len(list)
		missing += int(max(0, first-created.UnixMilli()-2*step) / step)
		missing += int(max(0, stopped.UnixMilli()-2*step-last) / step)
	}
	fmt.Printf("jobs %d (not completed %d) on nodes %v\n", len(jobs), failed, nodes)
	fmt.Printf("slots checked %d: missing %d, fired twice %d\n", expected, missing, dup)
	fmt.Printf("fire lag  (slot → stored):  %s\n", pct(fire))
	fmt.Printf("start lag (slot → started): %s\n", pct(start))
}

func pct(d []time.Duration) string {
	if len(d) == 0 {
		return "n/a"
	}
	slices.Sort(d)
	at := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return fmt.Sprintf("p50 %s  p99 %s  max %s  (n=%d)", at(0.5), at(0.99), d[len(d)-1], len(d))
}

// parallel runs f(0..n-1) on 16 goroutines and returns the first error.
func parallel(n int, f func(i int) error) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
