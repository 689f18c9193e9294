package job

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"time"

	"github.com/servicekit/servicekit/internal/ids"
)

// dispatch claims pending jobs when there may be some and a slot is free:
// after a submit that queued, when a slot frees while a backlog remains,
// and when the earliest retry's backoff expires. It never polls the
// database on a timer, and a finishing job does not cost a claim unless
// jobs are known to wait.
func (s *Scheduler) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	var next time.Time // when timer fires; zero when not armed
	more := true
	for {
		s.lastTick.Store(time.Now().UnixMilli())
		if more {
			var retryIn time.Duration
			more, retryIn = s.claimAndStart(ctx)
			if retryIn > 0 {
				timer.Reset(retryIn)
				next = time.Now().Add(retryIn)
			}
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.wake:
			more = true
		case <-s.freed:
		case <-timer.C:
			next, more = time.Time{}, true
		case at := <-s.retryAt:
			if next.IsZero() || at.Before(next) {
				timer.Reset(max(time.Until(at), 0))
				next = at
			}
		}
	}
}

// claimAndStart fills free slots. It reports whether jobs may still wait
// (every free slot was filled) and, after a database error, when to retry.
func (s *Scheduler) claimAndStart(ctx context.Context) (more bool, retryIn time.Duration) {
	for {
		free := cap(s.slots) - len(s.slots)
		if s.closing.Load() {
			return false, 0
		}
		if free <= 0 {
			return true, 0
		}
		recs, err := s.claim(ctx, free)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("claim jobs", "error", err)
			}
			return false, time.Second // the database may be back soon
		}
		for _, r := range recs {
			s.slots <- struct{}{}
			s.start(r)
		}
		if len(recs) < free {
			s.backlog.Store(false)
			return false, 0
		}
	}
}

// scheduleNextRetry arms the dispatcher for the earliest delayed job in the
// database (at start-up: retries left by an earlier process).
func (s *Scheduler) scheduleNextRetry(ctx context.Context) {
	var next sql.NullInt64
	if err := s.db.QueryRow(ctx, s.q["NextRunAfter"]).Scan(&next); err != nil || !next.Valid {
		return
	}
	s.retryAt <- time.UnixMilli(next.Int64)
}

// claim moves up to n ready pending jobs to running on this node, in one
// conditional statement, and records their status events.
func (s *Scheduler) claim(ctx context.Context, n int) ([]*Record, error) {
	var recs []*Record
	now := time.Now()
	s.claims.Add(1)
	err := s.batch.Do(ctx, func(tx *sql.Tx) error {
		recs = recs[:0]
		rows, err := s.db.QueryTx(ctx, tx, s.q["ClaimNext"], now.UnixMilli(), s.opt.Node,
			now.Add(s.opt.Lease).UnixMilli(), now.UnixMilli(), n)
		if err != nil {
			return err
		}
		for rows.Next() {
			r, err := scanRecord(rows)
			if err != nil {
				rows.Close()
				return err
			}
			recs = append(recs, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, r := range recs {
			if err := s.insertStatusEvent(ctx, tx, r); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		s.hub.notify(r.ID)
		s.opt.Observer.Started(r, now.Sub(r.SubmittedAt))
	}
	return recs, nil
}

// start runs one claimed attempt in its own goroutine.
func (s *Scheduler) start(r *Record) {
	ctx, cancel := context.WithCancelCause(context.Background())
	s.mu.Lock()
	s.active[r.ID] = &active{attempt: r.Attempt, cancel: cancel}
	s.mu.Unlock()
	s.runs.Add(1)
	go func() {
		defer s.runs.Done()
		defer func() {
			s.mu.Lock()
			delete(s.active, r.ID)
			s.mu.Unlock()
			cancel(nil)
			<-s.slots
			select {
			case s.freed <- struct{}{}:
			default:
			}
		}()
		s.runAttempt(ctx, r)
	}()
}

func (s *Scheduler) runAttempt(ctx context.Context, r *Record) {
	runCtx := ctx
	if r.TimeoutMS > 0 {
		var stop context.CancelFunc
		runCtx, stop = context.WithTimeoutCause(ctx, time.Duration(r.TimeoutMS)*time.Millisecond, errTimeout)
		defer stop()
	}
	c := newCapture(s, r)
	run := &Run{Job: r, Stdout: c.Stdout, Stderr: c.Stderr, Logger: s.log.With("job_id", r.ID), out: c}
	out := s.execute(runCtx, run)
	c.close(context.Background())
	s.finish(r, out, context.Cause(runCtx), c)
}

// execute calls the executor, turning a panic into a failed outcome so a
// bug in one job can never take the server down.
func (s *Scheduler) execute(ctx context.Context, run *Run) (out Outcome) {
	defer func() {
		if p := recover(); p != nil {
			out = Outcome{Err: fmt.Errorf("panic: %v", p), Traceback: string(debug.Stack())}
		}
	}()
	return s.exec.Execute(ctx, run)
}

// finish records how an attempt ended: terminal (with its artifact) or, for
// a failure with attempts left, back to pending after a backoff.
func (s *Scheduler) finish(r *Record, out Outcome, cause error, c *capture) {
	status, errText := Completed, ""
	switch {
	case errors.Is(cause, errCanceled), errors.Is(cause, errDeleted):
		status, errText = Canceled, cause.Error()
	case errors.Is(cause, errShutdown):
		status, errText = Failed, errShutdown.Error()
	case errors.Is(cause, errTimeout):
		status, errText = Failed, fmt.Sprintf("timed out after %s", time.Duration(r.TimeoutMS)*time.Millisecond)
	case out.Err != nil:
		status, errText = Failed, out.Err.Error()
	}
	out.Err = nil
	switch {
	case errors.Is(cause, errDeleted):
		out.Err = errDeleted
	case errText != "":
		out.Err = errors.New(errText)
	}
	retry := status == Failed && r.Attempt < r.MaxAttempts
	var wait time.Duration
	if retry && !errors.Is(cause, errShutdown) {
		wait = s.backoff(r.Attempt)
	}
	// The database may be briefly unavailable; the job stays running (and
	// leased) until this lands, so keep trying for a while.
	for try := 0; ; try++ {
		err := s.endAttempt(context.Background(), r, status, out, retry, wait, c)
		if err == nil {
			break
		}
		if try >= 30 {
			s.log.Error("job result not stored; the job will be rescued when its lease expires", "job_id", r.ID, "error", err)
			return
		}
		s.log.Warn("store job result", "job_id", r.ID, "error", err)
		time.Sleep(time.Second)
	}
	s.hub.notify(r.ID)
	if retry {
		s.backlog.Store(true)
		select {
		case s.retryAt <- time.Now().Add(wait):
		default:
			s.kick() // never lose the wake-up; an early claim just finds nothing yet
		}
	} else {
		var ran time.Duration
		if r.StartedAt != nil {
			ran = time.Since(*r.StartedAt)
		}
		s.opt.Observer.Finished(r, status, ran)
	}
}

func (s *Scheduler) backoff(attempt int) time.Duration {
	d := s.opt.RetryBackoff << (attempt - 1)
	if d <= 0 || d > s.opt.MaxRetryBackoff {
		d = s.opt.MaxRetryBackoff
	}
	return d
}

// endAttempt writes the end of attempt r.Attempt as one conditional
// statement; if the job is no longer this attempt's (rescued meanwhile), it
// changes nothing.
func (s *Scheduler) endAttempt(ctx context.Context, r *Record, status Status, out Outcome, retry bool, wait time.Duration, c *capture) error {
	now := time.Now().UTC()
	var errText, tb *string
	if out.Err != nil {
		e := out.Err.Error()
		errText = &e
	}
	if out.Traceback != "" {
		tb = &out.Traceback
	}
	return s.batch.Do(ctx, func(tx *sql.Tx) error {
		var row *sql.Row
		artID := ""
		if retry {
			row = s.db.QueryRowTx(ctx, tx, s.q["Requeue"], now.Add(wait).UnixMilli(), out.ExitCode, errText, tb, r.ID, r.Attempt)
		} else {
			artID = ids.New()
			row = s.db.QueryRowTx(ctx, tx, s.q["Finish"], string(status), now.UnixMilli(), out.ExitCode,
				jsonText(out.Result), errText, tb, artID, r.ID, r.Attempt)
		}
		rec, err := scanRecord(row)
		if errors.Is(err, sql.ErrNoRows) {
			s.log.Warn("job attempt ended after it was taken from this node", "job_id", r.ID, "attempt", r.Attempt)
			return nil
		}
		if err != nil {
			return err
		}
		if !retry {
			if err := s.writeArtifact(ctx, tx, rec, artID, out, c, now); err != nil {
				return err
			}
		}
		if errors.Is(out.Err, errDeleted) {
			if _, err := s.db.ExecTx(ctx, tx, s.q["Delete"], r.ID); err != nil {
				return err
			}
			_, err := s.db.ExecTx(ctx, tx, s.q["DeleteEvents"], r.ID)
			return err
		}
		return s.insertStatusEvent(ctx, tx, rec)
	})
}

// writeArtifact stores the result artifact of a terminal job (SPEC §2).
func (s *Scheduler) writeArtifact(ctx context.Context, tx *sql.Tx, r *Record, id string, out Outcome, c *capture, now time.Time) error {
	a := map[string]any{
		"task":   r.Task,
		"job_id": r.ID,
		"params": r.Params,
	}
	var errText any
	if out.Err != nil {
		errText = out.Err.Error()
	}
	switch r.Type {
	case "shell":
		a["exit_code"] = out.ExitCode
		a["error"] = errText
		if c != nil {
			a["stdout"], a["stderr"] = c.stdoutTail.String(), c.stderrTail.String()
			a["stdout_truncated"], a["stderr_truncated"] = c.stdoutTail.Truncated(), c.stderrTail.Truncated()
		} else {
			a["stdout"], a["stderr"] = "", ""
			a["stdout_truncated"], a["stderr_truncated"] = false, false
		}
	default:
		res := out.Result
		if res == nil {
			res = json.RawMessage("null")
		}
		a["result"] = res
		a["error"] = errText
		if c != nil && c.stdoutTail.Total()+c.stderrTail.Total() > 0 {
			a["stdout"], a["stderr"] = c.stdoutTail.String(), c.stderrTail.String()
			a["stdout_truncated"], a["stderr_truncated"] = c.stdoutTail.Truncated(), c.stderrTail.Truncated()
		}
	}
	data, err := json.Marshal(a)
	if err != nil {
		return err
	}
	_, err = s.artifacts.InsertTx(ctx, tx, id, data, nil, now)
	return err
}
