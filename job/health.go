package job

import (
	"context"
	"fmt"
	"time"
)

// Health states.
const (
	Healthy   = "healthy"
	Degraded  = "degraded"
	Unhealthy = "unhealthy"
)

// stuckAfter is how long ready jobs may wait beside free slots before the
// dispatcher counts as stuck.
const stuckAfter = 10 * time.Second

// Health reports the scheduler's state for /health: degraded while
// shutting down, when the pending queue is (nearly) full, or when jobs are
// ready, slots are free and the dispatcher has not looked for work lately.
func (s *Scheduler) Health(ctx context.Context) (state, message string) {
	if s.closing.Load() {
		return Degraded, "shutting down: not taking new jobs"
	}
	if err, since := s.db.WriteFailure(); err != nil {
		return Degraded, fmt.Sprintf("writes to the database fail since %s ago (jobs cannot be stored; the API answers 503): %v",
			time.Since(since).Round(time.Second), err)
	}
	if !s.notify.Listening() {
		return Degraded, "not hearing other nodes' signals (the LISTEN connection is reconnecting); re-checking every few seconds meanwhile"
	}
	pending, err := s.PendingCount(ctx)
	if err != nil {
		return Unhealthy, "cannot count pending jobs: " + err.Error()
	}
	if max := s.opt.MaxPending; max > 0 && pending*10 >= max*9 {
		return Degraded, fmt.Sprintf("pending queue at %d of %d", pending, max)
	}
	if pending > 0 && s.RunningCount() < s.opt.MaxConcurrency {
		var ready int
		if err := s.db.QueryRow(ctx, s.q.CountReady, time.Now().UnixMilli()).Scan(&ready); err != nil {
			return Unhealthy, "cannot count ready jobs: " + err.Error()
		}
		if idle := time.Since(time.UnixMilli(s.lastTick.Load())); ready > 0 && idle > stuckAfter {
			return Degraded, fmt.Sprintf("%d jobs ready and slots free, but the dispatcher last ran %s ago", ready, idle.Round(time.Second))
		}
	}
	if n := s.abandoned.Load(); n > 0 {
		return Degraded, fmt.Sprintf("%d pending, %d running here, %d abandoned goroutines (job attempts that ignored being stopped)", pending, s.RunningCount(), n)
	}
	return Healthy, fmt.Sprintf("%d pending, %d running here", pending, s.RunningCount())
}
