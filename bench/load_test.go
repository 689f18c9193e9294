package bench

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}} {
		if got := Percentile(lat, c.p); got != c.want {
			t.Errorf("Percentile(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("Percentile(nil) = %v, want 0", got)
	}
}

// TestReadTerminalStatus feeds the parser a stream shaped like the
// server's: replayed and live events, log lines, a keep-alive comment.
func TestReadTerminalStatus(t *testing.T) {
	stream := "id: 1\nevent: status\ndata: {\"id\":\"j\",\"status\":\"pending\"}\n\n" +
		": keep-alive\n\n" +
		"id: 2\nevent: status\ndata: {\"id\":\"j\",\"status\":\"running\"}\n\n" +
		"id: 3\nevent: log\ndata: {\"stream\":\"stdout\",\"line\":\"{\\\"status\\\":\\\"completed\\\"}\"}\n\n" +
		"id: 4\nevent: status\ndata: {\"id\":\"j\",\"status\":\"failed\"}\n\n"
	got, err := readTerminalStatus(strings.NewReader(stream))
	if err != nil || got != "failed" {
		t.Fatalf("got %q, %v; want failed (a log line that looks like a status must not count)", got, err)
	}
	if _, err := readTerminalStatus(strings.NewReader("event: status\ndata: {\"status\":\"running\"}\n\n")); err == nil {
		t.Fatal("a stream that ends while running must be an error")
	}
}

func TestLoadStopsAtJobBudgetAndCountsErrors(t *testing.T) {
	var n atomic.Int64
	res := Load(context.Background(), LoadConfig{Clients: 4, Jobs: 40, Job: func(context.Context) (time.Duration, error) {
		if n.Add(1)%10 == 0 {
			return 0, errors.New("every tenth fails")
		}
		return time.Millisecond, nil
	}})
	if res.Jobs+res.Errors != 40 || res.Errors != 4 {
		t.Fatalf("jobs %d errors %d, want 36 and 4", res.Jobs, res.Errors)
	}
	if len(res.ErrorSamples) != 1 {
		t.Errorf("error samples %q, want the one distinct message", res.ErrorSamples)
	}
}

func TestReadMem(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	m, err := ReadMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Fatalf("RSS %d, peak %d", m.RSS, m.Peak)
	}
}
