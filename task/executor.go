package task

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"reflect"
	"strconv"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/shell"
	"github.com/servicekit/servicekit/store"
)

// Progress lets a function report how far it got; ask for it as a parameter.
// Reports show up in the job record's progress and as status events.
type Progress interface {
	Report(current, total int, message string)
}

// The types a function can ask for besides its params and context.Context.
var (
	typeDB        = reflect.TypeFor[*store.DB]()
	typeArtifacts = reflect.TypeFor[*artifact.Manager]()
	typeScheduler = reflect.TypeFor[*job.Scheduler]()
	typeManager   = reflect.TypeFor[*Manager]()
	typeLogger    = reflect.TypeFor[*slog.Logger]()
	typeProgress  = reflect.TypeFor[Progress]()
	typeWriter    = reflect.TypeFor[io.Writer]()
	typeJob       = reflect.TypeFor[*job.Record]()
)

func (m *Manager) injectable(t reflect.Type) bool {
	switch t {
	case typeDB, typeArtifacts, typeScheduler, typeManager, typeLogger, typeProgress, typeWriter, typeJob:
		return true
	}
	_, ok := m.provided[t]
	return ok
}

// executor runs function and shell jobs for the scheduler.
type executor struct{ m *Manager }

func (e executor) Execute(ctx context.Context, run *job.Run) job.Outcome {
	if run.Job.Type == TypeShell {
		return e.m.runShell(ctx, run)
	}
	return e.m.runFunction(ctx, run)
}

// KillStrays implements job.StraySweeper: it kills what a dead attempt of
// the job left running on this host (see shell.KillStrays).
func (e executor) KillStrays(jobID string) (int, error) { return shell.KillStrays(jobID) }

// runShell checks the policy again (it may have changed since $execute)
// and runs the command, contained: every process it starts ends with the
// job, or with the server (see the shell package, "Containment").
func (m *Manager) runShell(ctx context.Context, run *job.Run) job.Outcome {
	if err := m.checkShell(run.Job.Command, run.Job.Env); err != nil {
		return job.Outcome{Err: job.Permanent(err)} // no retry can make the policy allow it
	}
	// The job's own identity, so a script can name its outputs or make a
	// retried attempt idempotent; the job's env cannot override these.
	env := make(map[string]string, len(run.Job.Env)+3)
	maps.Copy(env, run.Job.Env)
	env[shell.JobIDEnv] = run.Job.ID // also how shell.KillStrays finds the job's processes
	env["SERVICEKIT_JOB_ATTEMPT"] = strconv.Itoa(run.Job.Attempt)
	if run.Job.Node != nil {
		env["SERVICEKIT_NODE"] = *run.Job.Node
	}
	res, err := shell.Cmd{Command: run.Job.Command, Env: env, Stdout: run.Stdout, Stderr: run.Stderr,
		KillGrace: run.KillGrace}.Run(ctx)
	if err != nil {
		return job.Outcome{Err: err}
	}
	out := job.Outcome{}
	if res.Signal == "" {
		code := res.ExitCode
		out.ExitCode = &code
	}
	if text := res.ErrorText(); text != "" {
		out.Err = errors.New(text)
	}
	return out
}

type progressFunc func(current, total int, message string)

func (f progressFunc) Report(current, total int, message string) { f(current, total, message) }

func (m *Manager) runFunction(ctx context.Context, run *job.Run) job.Outcome {
	b, err := m.binding(run.Job.Command)
	if err != nil {
		return job.Outcome{Err: err}
	}
	// The injected logger writes to the job's log (stderr) and to the server's.
	logger := slog.New(teeHandler{slog.NewTextHandler(run.Stderr, nil), run.Logger.Handler()})
	lookup := func(t reflect.Type) (reflect.Value, bool) {
		switch t {
		case typeDB:
			return reflect.ValueOf(m.db), true
		case typeArtifacts:
			return reflect.ValueOf(m.artifacts), true
		case typeScheduler:
			return reflect.ValueOf(m.jobs), true
		case typeManager:
			return reflect.ValueOf(m), true
		case typeLogger:
			return reflect.ValueOf(logger), true
		case typeProgress:
			var p Progress = progressFunc(run.Progress)
			return reflect.ValueOf(&p).Elem(), true
		case typeWriter:
			return reflect.ValueOf(&run.Stdout).Elem(), true
		case typeJob:
			return reflect.ValueOf(run.Job), true
		}
		v, ok := m.provided[t]
		return v, ok
	}
	result, err := b.Call(ctx, run.Job.Params, lookup)
	out := job.Outcome{Result: result, Err: err}
	if pe, ok := errors.AsType[*PanicError](err); ok {
		out.Traceback = pe.Stack
	}
	return out
}

// teeHandler sends each record to two handlers.
type teeHandler [2]slog.Handler

func (t teeHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return t[0].Enabled(ctx, l) || t[1].Enabled(ctx, l)
}

func (t teeHandler) Handle(ctx context.Context, r slog.Record) error {
	var errs []error
	for _, h := range t {
		if h.Enabled(ctx, r.Level) {
			errs = append(errs, h.Handle(ctx, r.Clone()))
		}
	}
	return errors.Join(errs...)
}

func (t teeHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return teeHandler{t[0].WithAttrs(as), t[1].WithAttrs(as)}
}

func (t teeHandler) WithGroup(name string) slog.Handler {
	return teeHandler{t[0].WithGroup(name), t[1].WithGroup(name)}
}

var _ job.StraySweeper = executor{}
