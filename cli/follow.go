package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/servicekit/servicekit/job"
)

// jobDisplay shows a watched job to the person at the terminal, on stderr:
// where each attempt begins and ends, a progress bar drawn from the job's
// progress events when stderr is a terminal, and one final line with the
// status, the duration and the result or error. The job's own output goes
// to stdout and stderr as the job wrote it, with the bar cleared around it.
//
// All its methods run on the goroutine reading the event stream, which is
// what lets the bar be cleared and redrawn around output lines without a lock.
type jobDisplay struct {
	id     string
	out    io.Writer // the job's stdout
	errOut io.Writer // the job's stderr and everything servicekit says
	tty    bool      // errOut is a terminal: draw the progress bar
	quiet  bool      // only the job's output and errors

	attempt int
	status  job.Status
	bar     *progressbar.ProgressBar
	barMax  int
	lastMsg string
}

func (c *apiClient) newDisplay(id string, quiet bool) *jobDisplay {
	return &jobDisplay{id: id, out: c.out, errOut: c.errOut, tty: isTerminal(c.errOut), quiet: quiet}
}

// isTerminal reports whether w is a terminal, which is when a progress bar
// (carriage returns redrawing one line) reads as a bar rather than as noise.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// hooks returns the watch hooks that feed the display. With logs, output
// lines are printed (those of stream only, when it is not empty).
func (d *jobDisplay) hooks(logs bool, stream string, toStdout bool) watchHooks {
	h := watchHooks{onStatus: d.onStatus}
	if logs {
		h.onLog = func(s, line string) {
			if stream != "" && s != stream {
				return
			}
			w := d.out
			if s == "stderr" && !toStdout {
				w = d.errOut
			}
			d.clearBar()
			fmt.Fprintln(w, line)
			d.redrawBar()
		}
	}
	return h
}

// note prints one line of servicekit's own about the job on stderr.
func (d *jobDisplay) note(format string, args ...any) {
	if d.quiet {
		return
	}
	d.clearBar()
	fmt.Fprintf(d.errOut, format+"\n", args...)
	d.redrawBar()
}

// onStatus marks attempt boundaries and moves the bar. A job that is
// retried goes running → pending (with the attempt's error) → running with
// the next attempt number, and each change is one status event.
//
// The event that starts an attempt still carries the progress the previous
// attempt last reported, so only the events after it move the bar.
func (d *jobDisplay) onStatus(r *job.Record) {
	switch {
	case r.Status == job.Running && r.Attempt != d.attempt:
		d.dropBar()
		d.attempt = r.Attempt
		if r.MaxAttempts > 1 {
			d.note("--- attempt %d/%d", r.Attempt, r.MaxAttempts)
		}
		d.status = r.Status
		return
	case r.Status == job.Pending && d.status == job.Running:
		d.dropBar()
		why := "failed"
		if r.Error != nil {
			why += ": " + oneLine(*r.Error, 200)
		}
		d.note("--- attempt %d/%d %s; retrying", r.Attempt, r.MaxAttempts, why)
	}
	d.status = r.Status
	if r.Status == job.Running && r.Progress != nil {
		d.progress(r.Progress)
	}
}

// progress draws a progress report: a bar on a terminal when the total is
// known; otherwise a changed message, as a line of its own.
func (d *jobDisplay) progress(p *job.Progress) {
	if d.quiet || !d.tty {
		return
	}
	if p.Total <= 0 {
		if p.Message != "" && p.Message != d.lastMsg {
			d.lastMsg = p.Message
			d.note("%s (%d)", p.Message, p.Current)
		}
		return
	}
	msg, current := oneLine(p.Message, 40), min(p.Current, p.Total)
	// Each call below redraws the bar, so only what changed is set.
	switch {
	case d.bar == nil:
		d.bar = progressbar.NewOptions(p.Total,
			progressbar.OptionSetWriter(d.errOut),
			progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(),
			progressbar.OptionSetDescription(msg),
			progressbar.OptionSetPredictTime(true))
		d.barMax, d.lastMsg = p.Total, msg
		if current == 0 {
			d.bar.RenderBlank()
		}
	case p.Total != d.barMax:
		d.barMax = p.Total
		d.bar.ChangeMax(p.Total)
	}
	if msg != d.lastMsg {
		d.lastMsg = msg
		d.bar.Describe(msg)
	}
	if int64(current) != d.bar.State().CurrentNum {
		d.bar.Set(current)
	}
}

func (d *jobDisplay) clearBar() {
	if d.bar != nil {
		d.bar.Clear()
	}
}

func (d *jobDisplay) redrawBar() {
	if d.bar != nil && !d.bar.IsFinished() {
		d.bar.RenderBlank()
	}
}

// dropBar removes the bar for good: the attempt it measured is over.
func (d *jobDisplay) dropBar() {
	d.clearBar()
	d.bar, d.barMax, d.lastMsg = nil, 0, ""
}

// submitted is the first line of `task run --wait/--follow`: the job's id,
// and what Ctrl-C will do.
func (d *jobDisplay) submitted(detach bool) {
	if detach {
		d.note("job %s submitted; Ctrl-C stops watching and leaves it running", d.id)
	} else {
		d.note("job %s submitted; Ctrl-C cancels it (--detach leaves it running)", d.id)
	}
}

// finished clears the bar and prints the final line.
func (d *jobDisplay) finished(r *job.Record) {
	d.dropBar()
	d.note("%s", outcomeLine(r))
}

// outcomeLine is the one line that ends a watched job: status, duration,
// and the result (function), the exit code (shell) or the error, e.g.
//
//	job 01K… completed in 12ms: {"message":"Hello, Alice!"}
//	job 01K… failed in 1.2s (exit code 7) after 3 attempts: exit status 7
func outcomeLine(r *job.Record) string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s %s", r.ID, r.Status)
	switch d := runTime(r); {
	case d == "":
		b.WriteString(" before it started")
	case r.Status == job.Canceled:
		b.WriteString(" after " + d)
	default:
		b.WriteString(" in " + d)
	}
	if r.ExitCode != nil {
		fmt.Fprintf(&b, " (exit code %d)", *r.ExitCode)
	}
	if r.Attempt > 1 {
		fmt.Fprintf(&b, " after %d attempts", r.Attempt)
	}
	switch {
	case r.Status != job.Completed && r.Error != nil:
		b.WriteString(": " + oneLine(*r.Error, 300))
	case r.Status == job.Completed:
		if res := compactJSON(r.Result); res != "" {
			b.WriteString(": " + oneLine(res, 300))
		}
	}
	return b.String()
}

// oneLine fits free text on one line of at most limit characters.
func oneLine(s string, limit int) string { return cell(s, limit) }

// JobOutcomeError reports a watched job that did not complete. Its exit
// code is the job's, so `servicekit task run --follow` exits like the job:
// a shell job's own non-zero exit code, ExitJobFailed for anything else.
// It is never printed by the command line: the final status line has
// already said what happened.
type JobOutcomeError struct {
	JobID  string
	Status job.Status
	Code   int
	Reason string
}

func (e *JobOutcomeError) Error() string {
	msg := fmt.Sprintf("job %s %s", e.JobID, e.Status)
	if e.Reason != "" {
		msg += ": " + e.Reason
	}
	return msg
}

// ExitCode makes the command line exit with the job's code.
func (e *JobOutcomeError) ExitCode() int { return e.Code }

// jobOutcome turns a terminal job into the command's result: nil when it
// completed, else a JobOutcomeError.
func jobOutcome(r *job.Record) error {
	if r.Status == job.Completed {
		return nil
	}
	e := &JobOutcomeError{JobID: r.ID, Status: r.Status, Code: ExitJobFailed}
	if r.Error != nil {
		e.Reason = *r.Error
	}
	if r.Type == "shell" && r.Status == job.Failed && r.ExitCode != nil && *r.ExitCode > 0 {
		e.Code = *r.ExitCode
	}
	return e
}

// watchOpts says how a command watches a job.
type watchOpts struct {
	logs     bool   // print the job's output lines
	stream   string // only this stream's lines ("" for both)
	toStdout bool   // both streams on stdout (job logs), not each on its own
	cancel   bool   // Ctrl-C cancels the job (task run without --detach)
	final    bool   // print the final line even when the job completed
}

// follow watches job id to its end with a display, and turns what happened
// into the command's result: the job's outcome, or on Ctrl-C (after
// canceling the job when o.cancel) an ExitInterrupted error. When the watch
// stops with the job possibly still running, it says how to reattach.
func (c *apiClient) follow(ctx context.Context, d *jobDisplay, o watchOpts) (rawJob []byte, err error) {
	raw, rec, err := c.watchJob(ctx, d.id, d.hooks(o.logs, o.stream, o.toStdout))
	if err != nil {
		d.dropBar()
		if errors.Is(context.Cause(ctx), errInterrupted) {
			return nil, c.interrupted(ctx, d, o.cancel)
		}
		var lost *lostError
		var connect *ConnectError
		if errors.As(err, &lost) || errors.As(err, &connect) {
			return nil, fmt.Errorf("%w\n%s", err, c.reattachHint(d.id, "the job may still be running"))
		}
		return nil, err
	}
	if o.final || rec.Status != job.Completed {
		d.finished(rec)
	} else {
		d.dropBar()
	}
	return raw, jobOutcome(rec)
}

// interrupted handles Ctrl-C during a watch. When the job belongs to this
// command (task run without --detach), it is canceled, after saying so,
// with a context of its own: the command's was just canceled. Either way
// the command exits ExitInterrupted.
func (c *apiClient) interrupted(ctx context.Context, d *jobDisplay, cancel bool) error {
	stop := &exitError{err: errInterrupted, code: ExitInterrupted}
	if !cancel {
		fmt.Fprintf(c.errOut, "servicekit: interrupted; stopped watching\n%s\n", c.reattachHint(d.id, "the job keeps running"))
		return stop
	}
	fmt.Fprintf(c.errOut, "servicekit: interrupted; canceling job %s (run with --detach to leave it running; Ctrl-C again quits at once)\n", d.id)
	cctx, done := context.WithTimeout(context.WithoutCancel(ctx), requestTimeout)
	defer done()
	data, err := c.call(cctx, http.MethodPost, "/api/v1/jobs/"+pathID(d.id)+"/$cancel", nil, nil)
	if err != nil {
		// Typically a 409: the job ended on its own meanwhile.
		fmt.Fprintf(c.errOut, "servicekit: job %s not canceled: %v\n%s\n", d.id, err, c.reattachHint(d.id, "see how it ended"))
		return stop
	}
	var r job.Record
	if decode(data, &r) == nil {
		fmt.Fprintln(c.errOut, outcomeLine(&r))
	}
	return stop
}

// reattachHint tells how to pick a job up again from another command line,
// with the --server this one was given.
func (c *apiClient) reattachHint(id, why string) string {
	server := ""
	if c.base != defaultServerURL && os.Getenv("SERVICEKIT_URL") == "" {
		server = " --server " + c.base
	}
	return fmt.Sprintf("servicekit: %s; reattach with `servicekit job logs %s -f%s` or `servicekit job wait %s%s`",
		why, id, server, id, server)
}
