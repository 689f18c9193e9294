package job

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/internal/batch"
	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/internal/sqlq"
	"github.com/servicekit/servicekit/store"
)

//go:embed queries.sql
var queryFS embed.FS

var queries = sqlq.MustLoad(queryFS, "queries.sql")

// jobQueries are the statements of queries.sql, one field per "-- name:".
type jobQueries struct {
	InsertFire, SlotTaken, MarkSlot, ActiveOfTask, ClaimNextPG, FinishLite                                  string
	Insert, InsertRunning, InsertRunningPG, ClaimNext, NextRunAfter, Finish, FinishPG, Requeue, EndCanceled string
	CancelPending, RequestCancel, SetProgress, ReserveSeq, RenewLeases, ReleaseLease, CancelRequestedHere   string
	Expired, RunningNodes, RunningOn, RescueRequeue, RescueEnd                                              string
	UpsertNode, DeleteNode, LiveNodes, PurgeNodes                                                           string
	InsertEvent, InsertTwoEvents, EventsAfter, LogEvents, TrimLog, Get, List, Count, CountPending           string
	Delete, DeleteUnlessRunning, DeleteEvents, ExpiredIDs, TaskHasJob, CountReady                           string
}

// Errors the scheduler returns; the HTTP layer maps them to problem details.
var (
	ErrNotFound        = errors.New("job not found")
	ErrAlreadyFinished = errors.New("job already finished")
	ErrShuttingDown    = errors.New("scheduler is shutting down")
	ErrQueueFull       = errors.New("pending job queue is full")
	// ErrSlotTaken: a job for this schedule slot exists (another node fired it).
	ErrSlotTaken = errors.New("schedule slot already fired")
	// ErrOverlap: the fire was skipped, a job of the task is still pending or running.
	ErrOverlap = errors.New("skipped: a job of the task is still pending or running")
	// ErrTaskChanged: the fire was made from an older version of its task.
	ErrTaskChanged = errors.New("the task changed since the fire was made")
	// ErrStillRunning: a delete was asked of the job's node, which has not
	// stopped it yet (it is cut off or slow); the job is deleted when it stops
	// or when its lease expires and another node rescues it.
	ErrStillRunning = errors.New("job still running on its node; it will be deleted when it stops")
)

// Cancellation causes, read back with context.Cause by the run that ends.
var (
	errCanceled = errors.New("canceled by request")
	errShutdown = errors.New("interrupted by shutdown")
	errTimeout  = errors.New("timed out")
	errDeleted  = errors.New("deleted while running")
	errFenced   = errors.New("stopped: this node lost contact with the database and could not keep its lease")
	errLost     = errors.New("stopped: the job was taken from this node (its lease expired and another node rescued it)")
)

// Values of jobs.cancel_requested: how another node asks the job's node to stop it.
const (
	cancelRequested = 1
	deleteRequested = 2
)

func cancelCause(level int) error {
	if level == deleteRequested {
		return errDeleted
	}
	return errCanceled
}

// Executor runs one attempt of a job. The task package provides the one
// that runs Go functions and shell commands; the scheduler only knows jobs.
type Executor interface {
	Execute(ctx context.Context, run *Run) Outcome
}

// ExecutorFunc adapts a function to Executor.
type ExecutorFunc func(ctx context.Context, run *Run) Outcome

// Execute calls f.
func (f ExecutorFunc) Execute(ctx context.Context, run *Run) Outcome { return f(ctx, run) }

// Run is what an executor gets for one attempt: the job and where to send
// its output and progress.
type Run struct {
	Job *Record
	// Stdout and Stderr capture output: each line becomes a log event and the
	// tail (up to the output limit) goes into the job's artifact. Safe for
	// concurrent use.
	Stdout, Stderr io.Writer
	// Logger is the server's logger with the job id attached.
	Logger *slog.Logger
	// KillGrace is how long a canceled process may take to exit after
	// SIGTERM before it is killed: short enough that a node cut off from the
	// database has stopped its runs before their leases can expire.
	KillGrace time.Duration
	out       *capture
}

// Progress records a progress report; it reaches the job record and a
// status event shortly after (reports in quick succession are coalesced).
func (r *Run) Progress(current, total int, message string) {
	r.out.setProgress(&Progress{Current: current, Total: total, Message: message})
}

// Outcome is how an attempt ended.
type Outcome struct {
	Result    json.RawMessage // function return value (JSON), nil for none
	ExitCode  *int            // shell exit status
	Err       error           // nil on success; Permanent(err) for a failure no retry can mend
	Traceback string          // stack of a panic

	abandoned bool // the attempt did not return after it was stopped
	permanent bool
}

// Permanent marks an attempt's error as one that another attempt cannot
// mend (a command the shell policy refuses, say): the job fails at once,
// whatever retries it has left.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}

type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// Options configure a Scheduler. The zero value works.
type Options struct {
	// Node names this process in job records; default hostname-pid.
	Node string
	// MaxConcurrency bounds the jobs running at once on this node; default 4.
	MaxConcurrency int
	// MaxPending bounds the pending jobs; Submit fails with ErrQueueFull over it. 0 = no bound.
	MaxPending int
	// OutputLimit is the captured bytes kept per stream per job; default 1 MiB.
	OutputLimit int
	// Lease is how long a running job's claim lasts without renewal; default 30 s.
	// Leases are renewed every Lease/3; a job whose lease expired is rescued
	// by any live node. A node that could not renew for Lease/2 stops its
	// runs itself (self-fencing), so a rescued job never runs twice at once.
	Lease time.Duration
	// RetryBackoff is the wait before the first retry, doubled each further
	// attempt up to MaxRetryBackoff; defaults 1 s and 5 min.
	RetryBackoff, MaxRetryBackoff time.Duration
	// Retention is how long finished jobs are kept; default 7 days, < 0 keeps them forever.
	Retention time.Duration
	// LogFlushDelay is how long output lines may wait to be written together; default 20 ms.
	LogFlushDelay time.Duration
	Logger        *slog.Logger
	// Observer, if set, hears of submits, starts and ends (for metrics).
	Observer Observer
	// Version is recorded in this node's row of the node registry.
	Version string
	// MaxResultBytes bounds a function's result (its JSON); over it the job
	// fails saying so and nothing of it is stored. Default 1 MiB.
	MaxResultBytes int
}

// Observer hears of job life events; metrics implement it. Calls are made
// after the change committed, from the goroutine that made it, so they
// must be quick.
type Observer interface {
	Submitted(jobType string)
	Started(r *Record, queueWait time.Duration)
	Finished(r *Record, status Status, ran time.Duration)
}

type noObserver struct{}

func (noObserver) Submitted(string)                        {}
func (noObserver) Started(*Record, time.Duration)          {}
func (noObserver) Finished(*Record, Status, time.Duration) {}

func (o *Options) defaults() {
	if o.Node == "" {
		host, _ := os.Hostname()
		o.Node = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if o.MaxConcurrency <= 0 {
		o.MaxConcurrency = 4
	}
	if o.OutputLimit <= 0 {
		o.OutputLimit = 1 << 20
	}
	if o.MaxResultBytes <= 0 {
		o.MaxResultBytes = 1 << 20
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.RetryBackoff <= 0 {
		o.RetryBackoff = time.Second
	}
	if o.MaxRetryBackoff <= 0 {
		o.MaxRetryBackoff = 5 * time.Minute
	}
	if o.Retention == 0 {
		o.Retention = 7 * 24 * time.Hour
	}
	if o.LogFlushDelay <= 0 {
		o.LogFlushDelay = 20 * time.Millisecond
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observer == nil {
		o.Observer = noObserver{}
	}
}

// Scheduler is the durable job engine of one node: it stores submitted jobs,
// claims and runs them under the concurrency limit, keeps their leases,
// rescues jobs of dead nodes and records every state change as an event.
type Scheduler struct {
	db        *store.DB
	q         jobQueries
	artifacts *artifact.Manager
	exec      Executor
	opt       Options
	log       *slog.Logger
	hub       *hub
	notify    *store.Notifier
	unsub     []func()
	batch     *batch.Batcher

	wake    chan struct{} // coalesced "look for work" signal
	slots   chan struct{} // one token per running job
	mu      sync.Mutex
	active  map[string]*active // running on this node
	runs    sync.WaitGroup
	closing atomic.Bool

	stop     context.CancelFunc // ends dispatcher and maintenance
	loops    sync.WaitGroup
	batchEnd context.CancelFunc
	started  time.Time
	lastTick atomic.Int64 // unix ms of the dispatcher's last loop, for health
	claims   atomic.Int64 // claim statements run, to prove the dispatcher does not poll

	// backlog is set when a job was stored pending (it may wait for a slot)
	// and cleared when a claim finds the queue drained; while it is set,
	// new jobs queue behind the waiting ones instead of taking the fast path.
	backlog  atomic.Bool
	freed    chan struct{} // a run slot was released
	wakes    wakeTimes     // times at which delayed jobs become ready
	submitMu sync.RWMutex  // held by fast-path submits; Shutdown waits them out

	renewedAt atomic.Int64 // unix ms when the last successful lease renewal began
	fenced    atomic.Bool  // runs were stopped for want of a renewal
	rescuing  atomic.Bool  // a rescue pass is under way
	rescueNow chan struct{}
	renewNow  chan struct{} // a fenced dispatcher asks for a renewal now
	abandoned atomic.Int64  // attempts given up on whose goroutine has not returned
	host      string

	pendMu       sync.Mutex // guards the pending-queue bound (reservePending)
	pendInFlight int        // places reserved whose insert has not ended
	pendCount    int
	pendSince    int
	pendAt       time.Time
}

// Stats are counters for tests and health checks.
type Stats struct {
	// Claims is how many claim statements the dispatcher has run.
	Claims int64
	// Running is how many jobs run on this node now.
	Running int
	// LastDispatch is when the dispatcher last looked for work.
	LastDispatch time.Time
	// Abandoned counts attempts that did not return after they were
	// stopped and whose goroutines still run (see Options.Lease, KillGrace).
	Abandoned int64
}

// Stats returns the scheduler's counters.
func (s *Scheduler) Stats() Stats {
	return Stats{Claims: s.claims.Load(), Running: s.RunningCount(), LastDispatch: time.UnixMilli(s.lastTick.Load()),
		Abandoned: s.abandoned.Load()}
}

type active struct {
	attempt int
	since   time.Time
	cancel  context.CancelCauseFunc
	ending  atomic.Bool // the run returned; its end is being stored

	release     func() // frees the run's slot and entry; idempotent
	releaseOnce sync.Once
}

// New makes a scheduler; call Start to run jobs. exec may be set later with
// SetExecutor but before Start (the task manager needs the scheduler first).
func New(db *store.DB, artifacts *artifact.Manager, exec Executor, opt Options) *Scheduler {
	opt.defaults()
	host, _ := os.Hostname()
	s := &Scheduler{
		db: db, artifacts: artifacts, exec: exec, opt: opt,
		log: opt.Logger, hub: newHub(), notify: db.Notifier(), host: host,
		wake: make(chan struct{}, 1), slots: make(chan struct{}, opt.MaxConcurrency),
		freed: make(chan struct{}, 1), active: map[string]*active{}, rescueNow: make(chan struct{}, 1), renewNow: make(chan struct{}, 1),
	}
	s.wakes.changed = make(chan struct{}, 1)
	db.MustBind(withCols(queries), &s.q)
	return s
}

// SetExecutor sets the executor; call it before Start.
func (s *Scheduler) SetExecutor(e Executor) { s.exec = e }

// Node is this scheduler's node id.
func (s *Scheduler) Node() string { return s.opt.Node }

// Options returns the effective options.
func (s *Scheduler) Options() Options { return s.opt }

// Start rescues jobs left running by dead processes, then starts the
// dispatcher and the lease, rescue and retention loops.
func (s *Scheduler) Start(ctx context.Context) error {
	if s.exec == nil {
		return errors.New("job: scheduler has no executor")
	}
	bctx, bcancel := context.WithCancel(context.WithoutCancel(ctx))
	s.batchEnd = bcancel
	writers := 1 // SQLite has one writer
	if s.db.Dialect == store.Postgres {
		writers = 4
	}
	s.batch = batch.New(bctx, s.db.InTx, 256, writers)
	s.started = time.Now()
	s.backlog.Store(true) // jobs may be pending from before
	s.listen()
	if err := s.notify.Ready(ctx); err != nil {
		return fmt.Errorf("listen for other nodes' signals: %w", err)
	}
	if err := s.heartbeat(ctx); err != nil {
		return fmt.Errorf("register node: %w", err)
	}
	if err := s.rescue(ctx, true); err != nil {
		return fmt.Errorf("rescue jobs of dead nodes: %w", err)
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	s.loops.Add(3)
	go func() { defer s.loops.Done(); s.dispatch(lctx) }()
	go func() { defer s.loops.Done(); s.maintain(lctx) }()
	go func() { defer s.loops.Done(); s.fence(lctx) }()
	s.kick()
	s.armNextDelayed(ctx)
	return nil
}

// kick wakes the dispatcher without blocking.
func (s *Scheduler) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// NewJob is what Submit stores.
type NewJob struct {
	TaskID      string
	Type        string
	Command     string
	Params      map[string]any
	Env         map[string]string
	Task        json.RawMessage // snapshot of the task as executed
	Timeout     time.Duration
	MaxAttempts int
	// Priority orders ready jobs: higher first, ties in submit order.
	Priority int
	// Limited: the task has a concurrency limit, so the job always goes
	// through the claim, which enforces it (never the submit fast path).
	Limited bool
	// ScheduledFor makes the job a schedule's fire for that slot: stored
	// only if no job of the task has that slot yet (ErrSlotTaken), and with
	// SkipIfActive only if no job of the task is pending or running
	// (ErrOverlap).
	ScheduledFor *time.Time
	SkipIfActive bool
	// TaskVersion, with ScheduledFor, stores the fire only while the task
	// row is still that version (else ErrTaskChanged).
	TaskVersion *int64
}

// Submit stores a new pending job and wakes the dispatcher. When it returns
// without error the job is committed: a crash from here on cannot lose it.
func (s *Scheduler) Submit(ctx context.Context, n NewJob) (*Record, error) {
	if s.closing.Load() {
		return nil, ErrShuttingDown
	}
	if !s.reservePending(ctx) {
		return nil, ErrQueueFull
	}
	defer s.releasePending()
	if n.MaxAttempts < 1 {
		n.MaxAttempts = 1
	}
	if n.Params == nil {
		n.Params = map[string]any{}
	}
	if n.Task == nil {
		n.Task = json.RawMessage("null")
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	r := &Record{
		ID: ids.New(), TaskID: n.TaskID, Type: n.Type, Command: n.Command, Status: Pending,
		Params: n.Params, Env: n.Env, MaxAttempts: n.MaxAttempts, SubmittedAt: now,
		Task: n.Task, TimeoutMS: n.Timeout.Milliseconds(), eventSeq: 1,
		Trigger: TriggerAPI, Priority: n.Priority,
	}
	if n.ScheduledFor != nil {
		slot := n.ScheduledFor.UTC().Truncate(time.Millisecond)
		r.Trigger, r.ScheduledFor = TriggerSchedule, &slot
	}
	var timeout *int64
	if r.TimeoutMS > 0 {
		timeout = &r.TimeoutMS
	}
	data, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	ms := now.UnixMilli()
	// Fast path: with a free slot here and no backlog, store the job
	// already claimed by this node — one transaction instead of a submit
	// and a claim — and start it. Its events still tell pending, then running.
	s.submitMu.RLock()
	defer s.submitMu.RUnlock()
	// Not while fenced: runs started before a renewal worked again would be
	// stopped by the fence at once.
	if r.ScheduledFor == nil && !n.Limited && !s.backlog.Load() && !s.closing.Load() && !s.fenced.Load() && s.tryTakeSlot() {
		run, err := s.insertRunning(ctx, r, data, timeout, now)
		if err != nil {
			<-s.slots
			return nil, fmt.Errorf("store job: %w", err)
		}
		s.opt.Observer.Submitted(r.Type)
		s.opt.Observer.Started(run, 0)
		s.start(run)
		return run, nil
	}
	err = s.do(ctx, func(tx *sql.Tx) error {
		if r.ScheduledFor != nil {
			return s.insertFire(ctx, tx, r, n, data, timeout, ms)
		}
		if _, err := s.db.ExecTx(ctx, tx, s.q.Insert, r.ID, r.TaskID, r.Type, r.Command, string(r.Task),
			jsonText(r.Params), jsonText(r.Env), r.MaxAttempts, timeout, ms, ms, r.Trigger, r.Priority); err != nil {
			return err
		}
		_, err := s.db.ExecTx(ctx, tx, s.q.InsertEvent, r.ID, 1, "status", 1, len(data), string(data))
		return err
	})
	if errors.Is(err, ErrSlotTaken) || errors.Is(err, ErrOverlap) || errors.Is(err, ErrTaskChanged) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("store job: %w", err)
	}
	s.backlog.Store(true)
	s.opt.Observer.Submitted(r.Type)
	s.kick()
	s.notify.PublishRemote(topicReady, "") // idle nodes beside a busy one take it
	return r, nil
}

// insertFire stores a schedule's fire in the batch's transaction, with the
// slot marked handled on the task whether this node's insert won or not.
func (s *Scheduler) insertFire(ctx context.Context, tx *sql.Tx, r *Record, n NewJob, data []byte, timeout *int64, ms int64) error {
	slot := r.ScheduledFor.UnixMilli()
	skip := 0
	if n.SkipIfActive {
		skip = 1
	}
	version := int64(-1) // no condition
	if n.TaskVersion != nil {
		version = *n.TaskVersion
	}
	res, err := s.db.ExecTx(ctx, tx, s.q.InsertFire, r.ID, r.TaskID, r.Type, r.Command, string(r.Task),
		jsonText(r.Params), jsonText(r.Env), r.MaxAttempts, timeout, ms, ms, r.Priority, slot,
		version, r.TaskID, version, skip, r.TaskID, r.TaskID)
	if err != nil {
		return err
	}
	if rows, _ := res.RowsAffected(); rows == 0 {
		var taken, current int
		if err := s.db.QueryRowTx(ctx, tx, s.q.SlotTaken, r.TaskID, slot, r.TaskID, version).Scan(&taken, &current); err != nil {
			return err
		}
		switch {
		case taken > 0:
			return ErrSlotTaken
		case version >= 0 && current == 0:
			return ErrTaskChanged // nothing written: the next version's fire marks the slot
		}
		if _, err := s.db.ExecTx(ctx, tx, s.q.MarkSlot, slot, r.TaskID, slot); err != nil {
			return err
		}
		return ErrOverlap
	}
	if _, err := s.db.ExecTx(ctx, tx, s.q.MarkSlot, slot, r.TaskID, slot); err != nil {
		return err
	}
	_, err = s.db.ExecTx(ctx, tx, s.q.InsertEvent, r.ID, 1, "status", 1, len(data), string(data))
	return err
}

// ActiveJobs lists the ids of a task's pending and running jobs, oldest first.
func (s *Scheduler) ActiveJobs(ctx context.Context, taskID string) ([]string, error) {
	rows, err := s.db.Query(ctx, s.q.ActiveOfTask, taskID, taskID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// tryTakeSlot takes a run slot if one is free.
func (s *Scheduler) tryTakeSlot() bool {
	select {
	case s.slots <- struct{}{}:
		return true
	default:
		return false
	}
}

// insertRunning stores a new job as running on this node, with its pending
// and running status events, in one transaction.
func (s *Scheduler) insertRunning(ctx context.Context, pending *Record, pendingData []byte, timeout *int64, now time.Time) (*Record, error) {
	run := *pending
	run.Status, run.Attempt, run.StartedAt, run.Node, run.eventSeq = Running, 1, &now, &s.opt.Node, 2
	runData, err := json.Marshal(&run)
	if err != nil {
		return nil, err
	}
	ms := now.UnixMilli()
	if s.db.Dialect == store.Postgres {
		// One statement is atomic by itself, and concurrent commits share
		// WAL flushes in the server: no batch transaction needed.
		_, err = s.db.Exec(ctx, s.q.InsertRunningPG, run.ID, run.TaskID, run.Type, run.Command, string(run.Task),
			jsonText(run.Params), jsonText(run.Env), run.MaxAttempts, timeout, ms, ms, ms, s.opt.Node,
			now.Add(s.opt.Lease).UnixMilli(), run.Trigger, run.Priority, len(pendingData), string(pendingData), len(runData), string(runData))
		return &run, err
	}
	err = s.do(ctx, func(tx *sql.Tx) error {
		if _, err := s.db.ExecTx(ctx, tx, s.q.InsertRunning, run.ID, run.TaskID, run.Type, run.Command, string(run.Task),
			jsonText(run.Params), jsonText(run.Env), run.MaxAttempts, timeout, ms, ms, ms, s.opt.Node,
			now.Add(s.opt.Lease).UnixMilli(), run.Trigger, run.Priority); err != nil {
			return err
		}
		_, err := s.db.ExecTx(ctx, tx, s.q.InsertTwoEvents, run.ID, 1, "status", 1, len(pendingData), string(pendingData),
			run.ID, 2, "status", 1, len(runData), string(runData))
		return err
	})
	return &run, err
}

// reservePending takes one place in the pending queue, or reports false
// when MaxPending jobs are pending or on their way there. The bound holds
// exactly however many submits race: a place is reserved under a lock
// before the insert and held until it committed or failed (release), and a
// recount from the database adds the places still in flight. The database
// is counted only when a cheap upper bound (the last count plus places
// reserved since, refreshed every 100 ms) reaches the limit, so a queue far
// from full costs no query per submit and a 429 always rests on a real count.
func (s *Scheduler) reservePending(ctx context.Context) bool {
	if s.opt.MaxPending <= 0 {
		return true
	}
	s.pendMu.Lock()
	defer s.pendMu.Unlock()
	fresh := time.Since(s.pendAt) < 100*time.Millisecond
	if !fresh || s.pendCount+s.pendSince >= s.opt.MaxPending {
		n, err := s.PendingCount(ctx)
		if err != nil {
			n = s.pendCount // the insert will report a database problem itself
		}
		// Inserts in flight are not in the count yet (some that committed
		// during it are counted twice: the bound errs on the safe side).
		s.pendCount, s.pendSince, s.pendAt = n, s.pendInFlight, time.Now()
		if n+s.pendInFlight >= s.opt.MaxPending {
			return false
		}
	}
	s.pendSince++
	s.pendInFlight++
	return true
}

// releasePending ends a reservation once its insert committed or failed.
func (s *Scheduler) releasePending() {
	if s.opt.MaxPending <= 0 {
		return
	}
	s.pendMu.Lock()
	s.pendInFlight--
	s.pendMu.Unlock()
}

// Get returns one job or ErrNotFound.
func (s *Scheduler) Get(ctx context.Context, id string) (*Record, error) {
	r, err := scanRecord(s.db.QueryRow(ctx, s.q.Get, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return r, err
}

// Filter selects jobs for List; empty fields match everything.
type Filter struct {
	Status Status
	TaskID string
	// Trigger is TriggerAPI or TriggerSchedule.
	Trigger string
	// After is a job id: only the jobs after it in List's order, newest
	// first, that is the ones older than it (ids sort by submit time). It
	// is the cursor of keyset pagination: a page is a walk of an index from
	// the cursor, as quick a million jobs deep as at the top, where an
	// offset walks past every job before the page; and jobs submitted
	// meanwhile do not shift the pages that follow. The job need not exist.
	After string
}

// where is the WHERE clause of the filter's set fields, with its parameters.
func (f Filter) where() (string, []any, error) {
	var conds []string
	var args []any
	if f.Status != "" {
		conds, args = append(conds, "status = ?"), append(args, string(f.Status))
	}
	if f.TaskID != "" {
		conds, args = append(conds, "task_id = ?"), append(args, f.TaskID)
	}
	switch f.Trigger {
	case "":
	case TriggerAPI, TriggerSchedule:
		// A literal, not a parameter: a planner uses the partial index
		// jobs_scheduled only where it sees that the WHERE implies the index's.
		conds = append(conds, "triggered_by = '"+f.Trigger+"'")
	default:
		return "", nil, fmt.Errorf("job filter: trigger %q: want %q or %q", f.Trigger, TriggerAPI, TriggerSchedule)
	}
	if f.After != "" {
		conds, args = append(conds, "id < ?"), append(args, f.After)
	}
	if len(conds) == 0 {
		return "", nil, nil
	}
	return "WHERE " + strings.Join(conds, " AND "), args, nil
}

// List returns jobs newest first, limit at a time from offset, and how
// many match in all: Count and ListPage.
func (s *Scheduler) List(ctx context.Context, f Filter, limit, offset int) ([]*Record, int, error) {
	total, err := s.Count(ctx, f)
	if err != nil {
		return nil, 0, err
	}
	out, err := s.ListPage(ctx, f, limit, offset)
	return out, total, err
}

// Count returns how many jobs match f. It walks every match (a million
// jobs take SQLite tens of milliseconds): a list that needs no total, or
// pages by cursor (Filter.After), calls ListPage alone.
func (s *Scheduler) Count(ctx context.Context, f Filter) (int, error) {
	where, args, err := f.where()
	if err != nil {
		return 0, err
	}
	var n int
	err = s.db.QueryRow(ctx, s.db.Rebind(strings.Replace(s.q.Count, "/*WHERE*/", where, 1)), args...).Scan(&n)
	return n, err
}

// ListPage returns the jobs that match f newest first, limit at a time
// from offset, without counting them.
func (s *Scheduler) ListPage(ctx context.Context, f Filter, limit, offset int) ([]*Record, error) {
	where, args, err := f.where()
	if err != nil {
		return nil, err
	}
	q := strings.Replace(s.q.List, "/*WHERE*/", where, 1)
	q = s.db.Rebind(strings.Replace(q, "/*LIMIT*/", "LIMIT ? OFFSET ?", 1))
	rows, err := s.db.Query(ctx, q, append(args, limit, offset)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*Record{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// PendingCount returns how many jobs wait to run, on every node.
func (s *Scheduler) PendingCount(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRow(ctx, s.q.CountPending).Scan(&n)
	return n, err
}

// RunningCount returns how many jobs run on this node now.
func (s *Scheduler) RunningCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.active)
}

// TaskHasJob reports whether any job of the task is stored.
func (s *Scheduler) TaskHasJob(ctx context.Context, taskID string) (bool, error) {
	var n int
	err := s.db.QueryRow(ctx, s.q.TaskHasJob, taskID).Scan(&n)
	return n > 0, err
}

// Wait blocks until the job is terminal (or deleted, ErrNotFound) and returns it.
func (s *Scheduler) Wait(ctx context.Context, id string) (*Record, error) {
	ch, unsub := s.Subscribe(id)
	defer unsub()
	for {
		r, err := s.Get(ctx, id)
		if err != nil || r.Status.Terminal() {
			return r, err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return r, ctx.Err()
		}
	}
}

// Cancel stops a job: a pending job becomes canceled at once; a running one
// is told to stop, on whichever node runs it (its context is canceled, a
// shell gets SIGTERM then SIGKILL), and Cancel waits up to 15 s for it to
// end. A finished job is ErrAlreadyFinished.
//
// The request is recorded in the job's row before the owner is signalled, so
// it holds even if the signal is lost: the owner also reads it at its next
// lease renewal, a failing attempt cannot be retried past it, and a rescue
// ends the job canceled.
func (s *Scheduler) Cancel(ctx context.Context, id string) (*Record, error) {
	for range 3 {
		r, err := s.cancelPending(ctx, id)
		if err != nil || r != nil {
			return r, err
		}
		err = s.requestStop(ctx, id, cancelRequested)
		if err == nil {
			wctx, done := context.WithTimeout(ctx, 15*time.Second)
			defer done()
			r, err := s.Wait(wctx, id)
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				return s.Get(ctx, id)
			}
			return r, err
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, err
		}
		r, err = s.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if r.Status.Terminal() {
			return r, ErrAlreadyFinished
		}
		// It moved between pending and running under us; try again.
	}
	return nil, fmt.Errorf("cancel job %s: state kept changing", id)
}

// requestStop records a cancel (or delete) request on a running job and
// tells its node; sql.ErrNoRows when the job is not running.
func (s *Scheduler) requestStop(ctx context.Context, id string, level int) error {
	var node sql.NullString
	var attempt int
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		return s.db.QueryRowTx(ctx, tx, s.q.RequestCancel, level, id).Scan(&node, &attempt)
	})
	if err != nil {
		return err
	}
	if node.String == s.opt.Node {
		s.cancelLocal(id, attempt, cancelCause(level))
	} else {
		s.notify.PublishRemote(topicCancel, strconv.Itoa(level)+":"+strconv.Itoa(attempt)+":"+id)
	}
	return nil
}

// cancelLocal stops the run of job id on this node, if it runs here (and,
// when attempt > 0, is that attempt).
func (s *Scheduler) cancelLocal(id string, attempt int, cause error) bool {
	s.mu.Lock()
	a := s.active[id]
	s.mu.Unlock()
	if a == nil || attempt > 0 && a.attempt != attempt {
		return false
	}
	a.cancel(cause)
	return true
}

// cancelPending cancels a pending job; nil, nil when it was not pending.
func (s *Scheduler) cancelPending(ctx context.Context, id string) (*Record, error) {
	var rec *Record
	now := time.Now().UTC()
	err := s.do(ctx, func(tx *sql.Tx) error {
		rec = nil
		artID := ids.New()
		r, err := scanRecord(s.db.QueryRowTx(ctx, tx, s.q.CancelPending, now.UnixMilli(), errCanceled.Error(), artID, id))
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.writeArtifact(ctx, tx, r, artID, Outcome{Err: errCanceled}, nil, now); err != nil {
			return err
		}
		rec = r
		return s.insertStatusEvent(ctx, tx, r)
	})
	if err != nil || rec == nil {
		return nil, err
	}
	s.changed(id)
	s.opt.Observer.Finished(rec, Canceled, 0)
	s.logEnd(rec, 0)
	return rec, nil
}

// Delete cancels the job if it is not finished, then deletes its record and
// events (its artifact stays). Streams of the job end with a "deleted"
// status rather than "canceled": a pending or finished job goes in one
// transaction, and a running one is stopped by its node, wherever it runs,
// which deletes it in the transaction that records the end of the run.
// When that node does not answer within 15 s, Delete returns
// ErrStillRunning; the request stays recorded and is carried out when the
// run ends or is rescued.
func (s *Scheduler) Delete(ctx context.Context, id string) error {
	for range 3 {
		var deleted bool
		now := time.Now().UTC()
		err := s.do(ctx, func(tx *sql.Tx) error {
			deleted = false
			artID := ids.New()
			r, err := scanRecord(s.db.QueryRowTx(ctx, tx, s.q.CancelPending, now.UnixMilli(), errDeleted.Error(), artID, id))
			if err == nil {
				err = s.writeArtifact(ctx, tx, r, artID, Outcome{Err: errDeleted}, nil, now)
			}
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			res, err := s.db.ExecTx(ctx, tx, s.q.DeleteUnlessRunning, id)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 1 {
				deleted = true
				_, err = s.db.ExecTx(ctx, tx, s.q.DeleteEvents, id)
			}
			return err
		})
		if err != nil {
			return err
		}
		if deleted {
			s.changed(id)
			return nil
		}
		err = s.requestStop(ctx, id, deleteRequested)
		if errors.Is(err, sql.ErrNoRows) {
			if _, err := s.Get(ctx, id); err != nil {
				return err // ErrNotFound: nothing to delete
			}
			continue // it left running under us; try again
		}
		if err != nil {
			return err
		}
		wctx, done := context.WithTimeout(ctx, 15*time.Second)
		_, err = s.Wait(wctx, id)
		done()
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return ErrStillRunning
		}
		if err != nil {
			return err
		}
		// It ended some other way before our request reached it; delete it as finished.
	}
	return fmt.Errorf("delete job %s: state kept changing", id)
}

func (s *Scheduler) insertStatusEvent(ctx context.Context, tx *sql.Tx, r *Record) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = s.db.ExecTx(ctx, tx, s.q.InsertEvent, r.ID, r.eventSeq, "status", 1, len(data), string(data))
	return err
}

// Shutdown stops taking jobs, lets running jobs finish for up to grace, then
// cancels them: each ends failed ("interrupted by shutdown") or, with
// attempts left, goes back to pending for the next start. Pending jobs stay
// pending. Nothing accepted is lost. The node leaves the registry.
func (s *Scheduler) Shutdown(ctx context.Context, grace time.Duration) {
	s.closing.Store(true)
	s.submitMu.Lock() // wait out fast-path submits that already took a slot
	s.submitMu.Unlock()
	if s.stop == nil {
		return
	}
	s.stop()
	s.loops.Wait()
	done := make(chan struct{})
	go func() { s.runs.Wait(); close(done) }()
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.cancelAll(errShutdown)
		<-done
	case <-ctx.Done():
		s.cancelAll(errShutdown)
		<-done
	}
	for _, u := range s.unsub {
		u()
	}
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	s.db.Exec(dctx, s.q.DeleteNode, s.opt.Node)
	cancel()
	s.batchEnd()
}

func (s *Scheduler) cancelAll(cause error) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.active {
		a.cancel(cause)
	}
	return len(s.active)
}
