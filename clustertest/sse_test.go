package clustertest

// A small server-sent-events client for $stream.

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

type sseEvent struct {
	ID, Kind, Data string
}

// stream is an open $stream: its events arrive on Events, which is closed
// when the server ends the stream (or the request fails or times out).
type stream struct {
	Events <-chan sseEvent
	cancel context.CancelFunc
}

// openStream opens GET /api/v1/jobs/{id}/$stream on n, bounded by within.
func (n *node) openStream(t *testing.T, id string, within time.Duration) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), within)
	req, err := http.NewRequestWithContext(ctx, "GET", n.url+"/api/v1/jobs/"+id+"/$stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("node %s: open stream of %s: %v", n.name, id, err)
	}
	if res.StatusCode != 200 {
		res.Body.Close()
		cancel()
		t.Fatalf("node %s: open stream of %s: %d", n.name, id, res.StatusCode)
	}
	ch := make(chan sseEvent, 1024)
	go func() {
		defer close(ch)
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 4<<20)
		var e sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				if e.Kind != "" || e.Data != "" {
					ch <- e
				}
				e = sseEvent{}
			case strings.HasPrefix(line, ":"): // comment (keep-alive)
			case strings.HasPrefix(line, "id: "):
				e.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				e.Kind = line[7:]
			case strings.HasPrefix(line, "data: "):
				e.Data = line[6:]
			}
		}
	}()
	t.Cleanup(cancel)
	return &stream{Events: ch, cancel: cancel}
}

// next waits for the next event; ok is false when the stream ended.
func (s *stream) next(within time.Duration) (e sseEvent, ok, timedOut bool) {
	select {
	case e, ok := <-s.Events:
		return e, ok, false
	case <-time.After(within):
		return sseEvent{}, false, true
	}
}
