// Package job is servicekit's durable job engine: it stores submitted jobs,
// claims and runs them under a concurrency limit, keeps their leases,
// rescues the jobs of dead nodes, and records every state change as an
// ordered event that $stream, Wait and the console read.
//
// A job's life is pending → running → completed | failed | canceled, and
// each step is one conditional SQL statement that names the state (and the
// attempt) it expects, so a cancel, a finishing run and a rescue on another
// node can race without corrupting anything: the loser changes no row.
//
// Where things happen:
//   - scheduler.go: Submit (a job beside a free slot is stored already
//     claimed), Get/List, Wait, Cancel, Delete, Shutdown.
//   - dispatch.go: the dispatcher that claims ready jobs when woken (never on
//     a polling timer), runs each attempt, and stores its end.
//   - maintain.go: lease renewal and the node's heartbeat, self-fencing,
//     rescue of expired leases, retention.
//   - signals.go: the signals nodes send each other through the database's
//     notifier (LISTEN/NOTIFY on PostgreSQL), and the in-process fan-out.
//   - events.go, capture.go: the event sequence and output capture.
//   - metrics.go: the Prometheus observer.
//
// The engine only knows jobs; what a job does is the Executor's business
// (the task package runs Go functions and shell commands):
//
//	s := job.New(db, artifact.NewManager(db), job.ExecutorFunc(func(ctx context.Context, run *job.Run) job.Outcome {
//		fmt.Fprintln(run.Stdout, "working on", run.Job.Command) // each line is a log event
//		return job.Outcome{Result: json.RawMessage(`{"ok":true}`)}
//	}), job.Options{MaxConcurrency: 4})
//	s.Start(ctx)
//	defer s.Shutdown(ctx, 30*time.Second)
//	r, _ := s.Submit(ctx, job.NewJob{TaskID: id, Type: "function", Command: "work"})
//	done, _ := s.Wait(ctx, r.ID) // done.Status == job.Completed
package job
