package job

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/servicekit/servicekit/internal/batch"
	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/store"
)

// dispatch claims pending jobs when there may be some and a slot is free:
// after a submit that queued (here or, through a signal, on another node),
// when a slot frees while a backlog remains, and when a delayed job's time
// comes. It never polls the database on a timer, and a finishing job does
// not cost a claim unless jobs are known to wait.
func (s *Scheduler) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	more := true
	for {
		s.lastTick.Store(time.Now().UnixMilli())
		if more {
			var retryIn time.Duration
			more, retryIn = s.claimAndStart(ctx)
			if retryIn > 0 {
				s.wakeAt(time.Now().Add(retryIn))
			}
		}
		due, next := s.wakes.popDue(time.Now())
		if due {
			more = true
			continue
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.wake:
			more = true
		case <-s.freed:
		case <-timer.C:
			// popDue at the top of the loop sets more; then look past
			// this time for delayed jobs no timer knows of yet.
			go s.armNextDelayed(ctx)
		case <-s.wakes.changed:
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
		if s.fenced.Load() {
			select { // no new runs until leases can be renewed: try one now
			case s.renewNow <- struct{}{}:
			default:
			}
			return false, time.Second
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
		limited := false
		for _, r := range recs {
			s.slots <- struct{}{}
			s.start(r)
			limited = limited || r.limited
		}
		// A claim takes one job per limited task: with a limited job in
		// it, more of that task may be ready, so claim again.
		if len(recs) < free && !limited {
			s.backlog.Store(false)
			return false, 0
		}
	}
}

// armNextDelayed arms the dispatcher for the earliest job that waits for a
// later time: at start-up (retries left by an earlier process) and each
// time a delayed job's time came, so that a chain of delayed jobs only this
// database knows of is followed one after the other.
func (s *Scheduler) armNextDelayed(ctx context.Context) {
	var next sql.NullInt64
	if err := s.db.QueryRow(ctx, s.q.NextRunAfter, time.Now().UnixMilli()).Scan(&next); err != nil || !next.Valid {
		return
	}
	s.wakeAt(time.UnixMilli(next.Int64))
}

// claim moves up to n ready pending jobs to running on this node, in one
// conditional statement, and records their status events.
func (s *Scheduler) claim(ctx context.Context, n int) ([]*Record, error) {
	var recs []*Record
	now := time.Now()
	s.claims.Add(1)
	err := s.do(ctx, func(tx *sql.Tx) error {
		recs = recs[:0]
		var rows *sql.Rows
		var err error
		if s.db.Dialect == store.Postgres {
			rows, err = s.db.QueryTx(ctx, tx, s.q.ClaimNextPG, now.UnixMilli(), n, now.UnixMilli(), s.opt.Node,
				now.Add(s.opt.Lease).UnixMilli())
		} else {
			rows, err = s.db.QueryTx(ctx, tx, s.q.ClaimNext, now.UnixMilli(), now.UnixMilli(), n, now.UnixMilli(), s.opt.Node,
				now.Add(s.opt.Lease).UnixMilli())
		}
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
		s.changed(r.ID)
		s.opt.Observer.Started(r, now.Sub(r.SubmittedAt))
	}
	return recs, nil
}

// start runs one claimed attempt in its own goroutine.
func (s *Scheduler) start(r *Record) {
	ctx, cancel := context.WithCancelCause(context.Background())
	s.mu.Lock()
	a := &active{attempt: r.Attempt, since: time.Now(), cancel: cancel}
	s.active[r.ID] = a
	s.mu.Unlock()
	s.runs.Add(1)
	a.release = func() {
		a.releaseOnce.Do(func() {
			s.mu.Lock()
			delete(s.active, r.ID)
			s.mu.Unlock()
			cancel(nil)
			<-s.slots
			select {
			case s.freed <- struct{}{}:
			default:
			}
		})
	}
	go func() {
		defer s.runs.Done()
		defer a.release()
		s.runAttempt(ctx, r, a)
	}()
}

func (s *Scheduler) runAttempt(ctx context.Context, r *Record, a *active) {
	runCtx := ctx
	if r.TimeoutMS > 0 {
		var stop context.CancelFunc
		runCtx, stop = context.WithTimeoutCause(ctx, time.Duration(r.TimeoutMS)*time.Millisecond, errTimeout)
		defer stop()
	}
	c := newCapture(s, r)
	run := &Run{Job: r, Stdout: c.Stdout, Stderr: c.Stderr, Logger: s.log.With("job_id", r.ID), out: c,
		KillGrace: min(5*time.Second, s.opt.Lease/4)}
	out := s.executeBounded(runCtx, run)
	a.ending.Store(true)
	c.close(context.Background())
	s.finish(r, out, context.Cause(runCtx), c, a.release)
}

// executeBounded runs the attempt and returns its outcome, or, when the
// attempt was canceled (cancel, timeout, shutdown, fencing) and has not
// returned a grace period later — a function that ignores its context, a
// blocked read — gives up on it: the job ends saying so and its slot is
// given back. The goroutine is abandoned (counted in Stats and /health
// until it returns) and whatever it returns late is ignored.
func (s *Scheduler) executeBounded(ctx context.Context, run *Run) Outcome {
	done := make(chan Outcome, 1)
	go func() { done <- s.execute(ctx, run) }()
	select {
	case out := <-done:
		return out
	case <-ctx.Done():
	}
	grace := run.KillGrace + 2*time.Second // a shell's processes get KillGrace to die
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case out := <-done:
		return out
	case <-t.C:
	}
	s.abandoned.Add(1)
	go func() {
		<-done
		s.abandoned.Add(-1)
		s.log.Info("an abandoned job attempt returned at last; its outcome is ignored", "job_id", run.Job.ID, "attempt", run.Job.Attempt)
	}()
	s.log.Warn("job attempt did not return after it was stopped; abandoning its goroutine", "job_id", run.Job.ID,
		"attempt", run.Job.Attempt, "grace", grace)
	return Outcome{Err: fmt.Errorf("the function did not return within %s of being stopped; it was abandoned", grace), abandoned: true}
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
//
// The run's slot is given back once the end is stored and before anyone is
// told: a client that sees the job end and submits again finds the slot free.
func (s *Scheduler) finish(r *Record, out Outcome, cause error, c *capture, release func()) {
	status, errText := Completed, ""
	switch {
	case errors.Is(cause, errCanceled), errors.Is(cause, errDeleted):
		status, errText = Canceled, cause.Error()
	case errors.Is(cause, errShutdown), errors.Is(cause, errFenced), errors.Is(cause, errLost):
		status, errText = Failed, cause.Error()
	case errors.Is(cause, errTimeout):
		status, errText = Failed, fmt.Sprintf("timed out after %s", time.Duration(r.TimeoutMS)*time.Millisecond)
	case out.Err != nil:
		status, errText = Failed, out.Err.Error()
	case len(out.Result) > s.opt.MaxResultBytes:
		status, errText = Failed, fmt.Sprintf("the result is %d bytes, over the limit of %d bytes (MaxResultBytes); it was not stored", len(out.Result), s.opt.MaxResultBytes)
		out.Result, out.permanent = nil, true
	}
	if out.abandoned && cause != nil {
		errText += "; " + out.Err.Error()
	}
	permanent := out.permanent || IsPermanent(out.Err)
	out.Err = nil
	switch {
	case errors.Is(cause, errDeleted):
		out.Err = errDeleted
	case errText != "":
		out.Err = errors.New(errText)
	}
	retry := status == Failed && r.Attempt < r.MaxAttempts && !permanent
	var wait time.Duration
	if retry && !errors.Is(cause, errShutdown) {
		wait = s.backoff(r.Attempt)
	}
	// The database may be briefly unavailable; the job stays running (and
	// leased) until this lands, so keep trying for a while.
	var end *Record
	for try := 0; ; try++ {
		var err error
		end, err = s.endAttempt(context.Background(), r, status, out, retry, wait, c)
		if err == nil {
			break
		}
		if try >= 30 || errors.Is(err, ErrShuttingDown) {
			s.log.Error("job result not stored; the job will be rescued when its lease expires", "job_id", r.ID, "error", err)
			return
		}
		s.log.Warn("store job result", "job_id", r.ID, "error", err)
		time.Sleep(time.Second)
	}
	release()
	if end == nil {
		return // the attempt was no longer ours: whoever took it reports its end
	}
	s.changed(r.ID)
	s.limitFreed(r)
	if end.Status == Pending {
		s.backlog.Store(true)
		at := time.Now().Add(wait)
		s.wakeAt(at)
		s.notify.PublishRemote(topicReady, strconv.FormatInt(at.UnixMilli(), 10))
		return
	}
	var ran time.Duration
	if r.StartedAt != nil {
		ran = time.Since(*r.StartedAt)
	}
	s.opt.Observer.Finished(end, end.Status, ran)
	s.logEnd(end, ran)
}

// limitFreed wakes the dispatchers of every node when a run that counted
// against its task's concurrency limit ended: a job of the task that the
// limit held back may start now, and no other signal says so (no submit,
// and the claim that left it pending found "nothing ready").
func (s *Scheduler) limitFreed(r *Record) {
	if !r.limited {
		return
	}
	s.backlog.Store(true)
	s.kick()
	s.notify.PublishRemote(topicReady, "")
}

// logEnd writes the one line per finished job an operator tailing the log sees.
func (s *Scheduler) logEnd(r *Record, ran time.Duration) {
	attrs := []any{"job_id", r.ID, "task_id", r.TaskID, "type", r.Type, "status", r.Status,
		"attempt", r.Attempt, "duration_ms", ran.Milliseconds()}
	if r.Error != nil {
		attrs = append(attrs, "error", *r.Error)
	}
	s.log.Info("job finished", attrs...)
}

func (s *Scheduler) backoff(attempt int) time.Duration {
	d := s.opt.RetryBackoff << (attempt - 1)
	if d <= 0 || d > s.opt.MaxRetryBackoff {
		d = s.opt.MaxRetryBackoff
	}
	return d
}

// do runs fn in a batched write transaction; after shutdown it fails at once.
func (s *Scheduler) do(ctx context.Context, fn func(tx *sql.Tx) error) error {
	err := s.batch.Do(ctx, fn)
	if errors.Is(err, batch.ErrStopped) {
		return ErrShuttingDown
	}
	return err
}

// endAttempt writes the end of attempt r.Attempt, each outcome one
// conditional statement, and returns the job as it now is — nil if the job
// is no longer this attempt's (rescued or deleted meanwhile), in which case
// it changed nothing. A failure with attempts left goes back to pending
// unless a cancel was asked meanwhile: then it ends canceled (or deleted).
func (s *Scheduler) endAttempt(ctx context.Context, r *Record, status Status, out Outcome, retry bool, wait time.Duration, c *capture) (*Record, error) {
	now := time.Now().UTC()
	var errText, tb *string
	if out.Err != nil {
		e := out.Err.Error()
		errText = &e
	}
	if out.Traceback != "" {
		tb = &out.Traceback
	}
	if !retry && !errors.Is(out.Err, errDeleted) {
		return s.finishPredicted(ctx, r, status, out, errText, tb, c, now)
	}
	var end *Record
	err := s.do(ctx, func(tx *sql.Tx) error {
		end = nil
		var rec *Record
		var err error
		if retry {
			rec, err = scanRecord(s.db.QueryRowTx(ctx, tx, s.q.Requeue, now.Add(wait).UnixMilli(), out.ExitCode, errText, tb, r.ID, r.Attempt))
			if err == nil {
				end = rec
				return s.insertStatusEvent(ctx, tx, rec)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			// Not requeued: a cancel was asked (or the run was taken away).
			artID := ids.New()
			rec, err = scanRecord(s.db.QueryRowTx(ctx, tx, s.q.EndCanceled, now.UnixMilli(), out.ExitCode,
				jsonText(out.Result), errCanceled.Error(), tb, artID, r.ID, r.Attempt))
			if err == nil {
				if rec.cancelLevel == deleteRequested {
					out.Err = errDeleted
				} else {
					out.Err = errCanceled
				}
				err = s.writeArtifact(ctx, tx, rec, artID, out, c, now)
			}
		} else {
			artID := ids.New()
			rec, err = scanRecord(s.db.QueryRowTx(ctx, tx, s.q.Finish, string(status), now.UnixMilli(), out.ExitCode,
				jsonText(out.Result), errText, tb, artID, r.ID, r.Attempt))
			if err == nil {
				err = s.writeArtifact(ctx, tx, rec, artID, out, c, now)
			}
		}
		if errors.Is(err, sql.ErrNoRows) {
			s.log.Warn("job attempt ended after it was taken from this node", "job_id", r.ID, "attempt", r.Attempt)
			return nil
		}
		if err != nil {
			return err
		}
		end = rec
		if rec.Status == Canceled && rec.cancelLevel == deleteRequested {
			return s.deleteTx(ctx, tx, r.ID)
		}
		return s.insertStatusEvent(ctx, tx, rec)
	})
	return end, err
}

// finishPredicted ends an attempt with its artifact and status event, the
// event carrying the record as it will be, predicted from the run's (the
// fields the statement sets, and the progress the run last stored): the
// JSON is encoded here, on the run's goroutine, not by the database writer
// (on SQLite one goroutine writes for every job, so work done inside its
// transactions is work no other core can share), and the row is not read
// back. On PostgreSQL the three writes are one statement (FinishPG).
func (s *Scheduler) finishPredicted(ctx context.Context, r *Record, status Status, out Outcome, errText, tb *string, c *capture, now time.Time) (*Record, error) {
	artID := ids.New()
	next := *r
	fin := now.Truncate(time.Millisecond)
	next.Status, next.FinishedAt, next.ExitCode, next.Result = status, &fin, out.ExitCode, out.Result
	next.Error, next.ErrorTraceback, next.ArtifactID = errText, tb, &artID
	if c != nil && c.lastProgress != nil {
		next.Progress = c.lastProgress
	}
	event, err := json.Marshal(&next)
	if err != nil {
		return nil, err
	}
	art, err := artifactData(&next, out, c)
	if err != nil {
		return nil, err
	}
	ms := fin.UnixMilli()
	if s.db.Dialect == store.Postgres {
		rec, err := scanRecord(s.db.QueryRowW(ctx, s.q.FinishPG, string(status), ms, out.ExitCode, jsonText(out.Result),
			errText, tb, artID, r.ID, r.Attempt, artID, string(art), ms, ms, len(event), string(event)))
		if errors.Is(err, sql.ErrNoRows) {
			s.log.Warn("job attempt ended after it was taken from this node", "job_id", r.ID, "attempt", r.Attempt)
			return nil, nil
		}
		return rec, err
	}
	result := jsonText(out.Result)
	var end *Record
	err = s.do(ctx, func(tx *sql.Tx) error {
		end = nil
		var seq int64
		var cancel int
		err := s.db.QueryRowTx(ctx, tx, s.q.FinishLite, string(status), ms, out.ExitCode, result, errText, tb,
			artID, r.ID, r.Attempt).Scan(&seq, &cancel)
		if errors.Is(err, sql.ErrNoRows) {
			s.log.Warn("job attempt ended after it was taken from this node", "job_id", r.ID, "attempt", r.Attempt)
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := s.artifacts.InsertTx(ctx, tx, artID, art, nil, fin); err != nil {
			return err
		}
		if _, err := s.db.ExecTx(ctx, tx, s.q.InsertEvent, r.ID, seq, "status", 1, len(event), string(event)); err != nil {
			return err
		}
		e := next
		e.eventSeq, e.cancelLevel = seq, cancel
		end = &e
		return nil
	})
	return end, err
}

func (s *Scheduler) deleteTx(ctx context.Context, tx *sql.Tx, id string) error {
	if _, err := s.db.ExecTx(ctx, tx, s.q.Delete, id); err != nil {
		return err
	}
	_, err := s.db.ExecTx(ctx, tx, s.q.DeleteEvents, id)
	return err
}

// writeArtifact stores the result artifact of a terminal job (SPEC §2).
func (s *Scheduler) writeArtifact(ctx context.Context, tx *sql.Tx, r *Record, id string, out Outcome, c *capture, now time.Time) error {
	data, err := artifactData(r, out, c)
	if err != nil {
		return err
	}
	_, err = s.artifacts.InsertTx(ctx, tx, id, data, nil, now)
	return err
}

// artifactData is the JSON of a terminal job's artifact.
func artifactData(r *Record, out Outcome, c *capture) ([]byte, error) {
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
	return json.Marshal(a)
}
