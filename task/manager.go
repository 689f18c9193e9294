package task

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/servicekit/servicekit/artifact"
	"github.com/servicekit/servicekit/internal/ids"
	"github.com/servicekit/servicekit/internal/sqlq"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/store"
)

//go:embed queries.sql
var queryFS embed.FS

var queries = sqlq.MustLoad(queryFS, "queries.sql")

// taskQueries are the statements of queries.sql, one field per "-- name:".
type taskQueries struct {
	Insert, Get, List, Count, Update, Delete, WithJobFlag, Scheduled, LastFire string
}

// taskCols is what every query that returns a task selects, in scanTask's order.
const taskCols = `id, command, type, enabled, params, env, timeout_seconds, retries, created_at, updated_at,
 schedule, timezone, overlap, catch_up, max_concurrent, priority, schedule_since, last_slot, version`

// ShellPolicy decides whether a shell command may be stored or run. Check
// returns nil to allow, or an error whose text says why not.
type ShellPolicy interface {
	Check(command string) error
}

// Options configure a Manager. The zero value works.
type Options struct {
	// Registry holds the functions tasks can name; default the process-wide Default.
	Registry *Registry
	// Policy vets shell commands; nil allows every command.
	Policy ShellPolicy
	// Provided are extra values functions can ask for by type (the builder's Provide).
	Provided map[reflect.Type]reflect.Value
	Logger   *slog.Logger
	// ScheduleObserver counts schedule fires and skips (e.g. job.Metrics).
	ScheduleObserver ScheduleObserver
}

// Manager stores tasks and turns them into jobs: the Go API behind the
// task endpoints. It is also the job executor for function and shell jobs.
type Manager struct {
	db        *store.DB
	q         taskQueries
	reg       *Registry
	jobs      *job.Scheduler
	artifacts *artifact.Manager
	policy    ShellPolicy
	provided  map[reflect.Type]reflect.Value
	log       *slog.Logger
	schedObs  ScheduleObserver

	mu       sync.Mutex
	bindings map[*Function]*Binding

	cacheMu  sync.Mutex
	cache    map[string]cachedTask // tasks $execute read, dropped on any change signal
	cacheGen uint64                // counts forgets
}

// NewManager makes a manager and installs it as jobs' executor.
func NewManager(db *store.DB, jobs *job.Scheduler, artifacts *artifact.Manager, opt Options) *Manager {
	if opt.Registry == nil {
		opt.Registry = Default
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.ScheduleObserver == nil {
		opt.ScheduleObserver = noScheduleObserver{}
	}
	m := &Manager{
		db: db, reg: opt.Registry, jobs: jobs, artifacts: artifacts,
		policy: opt.Policy, provided: opt.Provided, log: opt.Logger, schedObs: opt.ScheduleObserver,
		bindings: map[*Function]*Binding{},
	}
	db.MustBind(withCols(queries), &m.q)
	db.Notifier().Subscribe(topicTasks, m.forget)
	db.Notifier().OnResync(func() { m.forget("") })
	jobs.SetExecutor(executor{m})
	return m
}

// cached is Get for $execute, from memory when the task was read before
// and nobody changed it since. Every change (Update, Delete) signals every
// node on the notifier, which drops the entry (this node's synchronously,
// before Update returns); on PostgreSQL a resync, after signals may have
// been lost, drops all; and an entry is read again after taskCacheTTL in
// any case. A task is immutable once cached: Update makes a new value.
func (m *Manager) cached(ctx context.Context, id string) (*Task, error) {
	m.cacheMu.Lock()
	c, gen := m.cache[id], m.cacheGen
	m.cacheMu.Unlock()
	if c.t != nil && time.Since(c.at) < taskCacheTTL {
		return c.t, nil
	}
	t, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	m.cacheMu.Lock()
	// Not if something was forgotten meanwhile: the read may predate it.
	if gen == m.cacheGen {
		if m.cache == nil || len(m.cache) >= 10_000 {
			m.cache = map[string]cachedTask{}
		}
		m.cache[id] = cachedTask{t, time.Now()}
	}
	m.cacheMu.Unlock()
	return t, nil
}

// taskCacheTTL bounds how long a cached task is used without a signal:
// processes that share a SQLite file hear no signals from each other.
const taskCacheTTL = time.Second

type cachedTask struct {
	t  *Task
	at time.Time
}

// forget drops a task from the cache; "" drops all.
func (m *Manager) forget(id string) {
	m.cacheMu.Lock()
	defer m.cacheMu.Unlock()
	m.cacheGen++
	if id == "" {
		m.cache = nil
		return
	}
	delete(m.cache, id)
}

// Registry returns the function registry the manager uses.
func (m *Manager) Registry() *Registry { return m.reg }

// Check binds every registered function now, so that a function asking for
// a value nobody provides is reported at start-up rather than when it runs.
func (m *Manager) Check() error {
	var errs []error
	for _, f := range m.reg.Functions() {
		if _, err := m.binding(f.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// binding returns the function's binding to this manager's injectables.
func (m *Manager) binding(name string) (*Binding, error) {
	f, ok := m.reg.Lookup(name)
	if !ok {
		return nil, ErrNotRegistered
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if b := m.bindings[f]; b != nil {
		return b, nil
	}
	b, err := f.Bind(m.injectable)
	if err != nil {
		return nil, fmt.Errorf("function %q: %w", name, err)
	}
	m.bindings[f] = b
	return b, nil
}

type scanner interface{ Scan(...any) error }

func withCols(q sqlq.Queries) sqlq.Queries {
	out := make(sqlq.Queries, len(q))
	for k, v := range q {
		out[k] = strings.ReplaceAll(v, "/*COLS*/", taskCols)
	}
	return out
}

func scanTask(row scanner, extra ...any) (*Task, error) {
	var t Task
	var params, env, tz *string
	var created, updated int64
	var maxConc *int64
	dest := append([]any{&t.ID, &t.Command, &t.Type, &t.Enabled, &params, &env, &t.TimeoutSeconds,
		&t.Retries, &created, &updated, &t.Schedule, &tz, &t.Overlap, &t.CatchUp, &maxConc, &t.Priority,
		&t.scheduleSince, &t.lastSlot, &t.version}, extra...)
	if err := row.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	t.CreatedAt, t.UpdatedAt = time.UnixMilli(created).UTC(), time.UnixMilli(updated).UTC()
	t.Timezone = "UTC"
	if tz != nil && *tz != "" {
		t.Timezone = *tz
	}
	if maxConc != nil {
		n := int(*maxConc)
		t.MaxConcurrent = &n
	}
	t.setNextFire(time.Now())
	if params != nil {
		json.Unmarshal([]byte(*params), &t.Params)
	}
	if env != nil {
		json.Unmarshal([]byte(*env), &t.Env)
	}
	return &t, nil
}

func jsonOrNull[M ~map[string]V, V any](m M) *string {
	if m == nil {
		return nil
	}
	b, _ := json.Marshal(m)
	s := string(b)
	return &s
}

// Create validates and stores a new task.
func (m *Manager) Create(ctx context.Context, in Input) (*Task, error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	t := &Task{ID: ids.New(), Command: in.Command, Type: in.Type, Enabled: true, Params: in.Params,
		Env: in.Env, TimeoutSeconds: in.TimeoutSeconds, CreatedAt: now, UpdatedAt: now}
	if in.Enabled != nil {
		t.Enabled = *in.Enabled
	}
	setIf(&t.Retries, in.Retries)
	t.Schedule, t.MaxConcurrent = in.Schedule, in.MaxConcurrent
	setIf(&t.Timezone, in.Timezone)
	setIf(&t.Overlap, in.Overlap)
	setIf(&t.CatchUp, in.CatchUp)
	setIf(&t.Priority, in.Priority)
	if err := m.validate(t); err != nil {
		return nil, err
	}
	if t.Schedule != nil {
		ms := now.UnixMilli()
		t.scheduleSince = &ms
	}
	_, err := m.db.Exec(ctx, m.q.Insert, t.ID, t.Command, t.Type, t.Enabled, jsonOrNull(t.Params),
		jsonOrNull(t.Env), t.TimeoutSeconds, t.Retries, now.UnixMilli(), now.UnixMilli(),
		t.Schedule, t.Timezone, t.Overlap, t.CatchUp, t.MaxConcurrent, t.Priority, t.concLimit(), t.scheduleSince)
	if err != nil {
		return nil, err
	}
	t.setNextFire(now)
	if t.Schedule != nil {
		m.changed(t.ID)
	}
	return t, nil
}

// validate resolves the task's type and checks it is one that can run:
// params only for a function (against its schema, required ones may wait
// for $execute), env only for shell, a command and an env a process can
// receive (no NUL, no "=" in a name), and the shell policy.
func (m *Manager) validate(t *Task) error {
	if ve := checkCommand(t.Command); ve != nil {
		return ve
	}
	if ve := validateSchedule(t); ve != nil {
		return ve
	}
	_, registered := m.reg.Lookup(t.Command)
	if t.Type == "" {
		t.Type = TypeShell
		if registered {
			t.Type = TypeFunction
		}
	}
	if t.TimeoutSeconds != nil && *t.TimeoutSeconds <= 0 {
		return &ValidationError{Msg: "timeout_seconds must be greater than 0", Fields: []FieldError{{Location: "body.timeout_seconds", Message: "must be > 0"}}}
	}
	switch t.Type {
	case TypeShell:
		if t.Params != nil {
			return &ValidationError{
				Msg:    fmt.Sprintf("params are for function tasks, and no function named %q is registered", t.Command),
				Fields: []FieldError{{Location: "body.params", Message: fmt.Sprintf("no function named %q is registered", t.Command)}},
			}
		}
		if ve := checkEnv(t.Env, "body.env"); ve != nil {
			return ve
		}
		return m.checkShell(t.Command, t.Env)
	case TypeFunction:
		if t.Env != nil {
			return &ValidationError{Msg: "env is for shell tasks", Fields: []FieldError{{Location: "body.env", Message: "only shell tasks take env"}}}
		}
		if !registered {
			return nil // allowed: the function may be registered by a later deploy; $orphaned lists it
		}
		b, err := m.binding(t.Command)
		if err != nil {
			return err
		}
		if fe := b.Validate(orEmpty(t.Params), true); len(fe) > 0 {
			return &ValidationError{Msg: "params do not match the function's parameters", Fields: prefix("body.", fe)}
		}
	}
	return nil
}

// checkShell asks the policy about a command and, when the policy can
// vet environments too (shell.Policy refuses PATH, LD_* and the like under
// an allowlist), about the env it would run with.
func (m *Manager) checkShell(command string, env map[string]string) error {
	if m.policy == nil {
		return nil
	}
	if err := m.policy.Check(command); err != nil {
		return &ForbiddenError{Reason: err.Error()}
	}
	if ec, ok := m.policy.(interface{ CheckEnv(map[string]string) error }); ok {
		if err := ec.CheckEnv(env); err != nil {
			return &ForbiddenError{Reason: err.Error()}
		}
	}
	return nil
}

func orEmpty(p map[string]any) map[string]any {
	if p == nil {
		return map[string]any{}
	}
	return p
}

func prefix(p string, fe []FieldError) []FieldError {
	out := make([]FieldError, len(fe))
	for i, e := range fe {
		out[i] = FieldError{Location: p + e.Location, Message: e.Message}
	}
	return out
}

// Get returns a task or ErrNotFound.
func (m *Manager) Get(ctx context.Context, id string) (*Task, error) {
	return scanTask(m.db.QueryRow(ctx, m.q.Get, id))
}

// Filter selects tasks for List; nil/empty fields match everything.
type Filter struct {
	Enabled *bool
	Type    string
}

// List returns tasks oldest first and how many match in all.
func (m *Manager) List(ctx context.Context, f Filter, limit, offset int) ([]*Task, int, error) {
	en, enV := "", false
	if f.Enabled != nil {
		en, enV = "set", *f.Enabled
	}
	var total int
	if err := m.db.QueryRow(ctx, m.q.Count, en, enV, f.Type, f.Type).Scan(&total); err != nil {
		return nil, 0, err
	}
	rows, err := m.db.Query(ctx, m.q.List, en, enV, f.Type, f.Type, limit, offset)
	if err != nil {
		return nil, 0, err
	}
	defer rows.Close()
	out := []*Task{}
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, t)
	}
	return out, total, rows.Err()
}

// Update applies a partial update and re-validates the whole task.
func (m *Manager) Update(ctx context.Context, id string, p Patch) (*Task, error) {
	// Read, patch, write only if nobody wrote in between; else again. Two
	// concurrent PATCHes of different fields thus both land.
	for range 20 {
		t, err := scanTask(m.db.QueryRow(ctx, m.q.Get, id))
		if err != nil {
			return nil, err
		}
		version := t.version
		before := *t
		p.apply(t)
		if err := m.validate(t); err != nil {
			return nil, err
		}
		t.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
		// A schedule applies from when it was set, changed or its task
		// enabled: slots before that are not "missed" for catch-up.
		switch {
		case t.Schedule == nil:
			t.scheduleSince = nil
		case before.Schedule == nil || entryKey(&before) != entryKey(t) || (!before.Enabled && t.Enabled):
			ms := t.UpdatedAt.UnixMilli()
			t.scheduleSince = &ms
		}
		res, err := m.db.Exec(ctx, m.q.Update, t.Command, t.Type, t.Enabled, jsonOrNull(t.Params),
			jsonOrNull(t.Env), t.TimeoutSeconds, t.Retries, t.UpdatedAt.UnixMilli(),
			t.Schedule, t.Timezone, t.Overlap, t.CatchUp, t.MaxConcurrent, t.Priority, t.concLimit(), t.scheduleSince,
			t.ID, version)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 1 {
			t.version++
			t.setNextFire(t.UpdatedAt)
			m.changed(t.ID) // schedule loops and $execute's task cache, on every node
			return t, nil
		}
	}
	return nil, fmt.Errorf("update task %s: it kept changing under concurrent updates; try again", id)
}

// setIf sets *dst to *src when src is given.
func setIf[T any](dst *T, src *T) {
	if src != nil {
		*dst = *src
	}
}

// apply sets the fields the patch names.
func (p Patch) apply(t *Task) {
	typeGiven := p.Type != nil
	if p.Command != nil {
		t.Command = *p.Command
		if !typeGiven {
			t.Type = "" // re-infer for the new command
		}
	}
	if typeGiven {
		t.Type = *p.Type
	}
	setIf(&t.Enabled, p.Enabled)
	if p.Params != nil {
		t.Params = p.Params
	}
	if p.Env != nil {
		t.Env = p.Env
	}
	if p.TimeoutSeconds != nil {
		t.TimeoutSeconds = p.TimeoutSeconds
	}
	if p.Schedule != nil {
		t.Schedule = p.Schedule
	}
	if p.MaxConcurrent != nil {
		t.MaxConcurrent = p.MaxConcurrent
	}
	setIf(&t.Retries, p.Retries)
	setIf(&t.Timezone, p.Timezone)
	setIf(&t.Overlap, p.Overlap)
	setIf(&t.CatchUp, p.CatchUp)
	setIf(&t.Priority, p.Priority)
	for _, f := range p.Clear {
		switch f {
		case "params":
			t.Params = nil
		case "env":
			t.Env = nil
		case "timeout_seconds":
			t.TimeoutSeconds = nil
		case "retries":
			t.Retries = 0
		case "schedule":
			t.Schedule = nil
		case "timezone":
			t.Timezone = "UTC"
		case "overlap":
			t.Overlap = OverlapSkip
		case "catch_up":
			t.CatchUp = CatchUpLatest
		case "max_concurrent":
			t.MaxConcurrent = nil
		case "priority":
			t.Priority = 0
		}
	}
}

// Delete removes a task. Its jobs keep running with their snapshot of it.
func (m *Manager) Delete(ctx context.Context, id string) error {
	res, err := m.db.Exec(ctx, m.q.Delete, id)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	m.changed(id)
	return nil
}

// Execute checks that the task can run with the given overrides and submits
// a job; the job is stored when Execute returns.
func (m *Manager) Execute(ctx context.Context, id string, in ExecuteInput) (*job.Record, error) {
	t, err := m.cached(ctx, id)
	if err != nil {
		return nil, err
	}
	if !t.Enabled {
		return nil, fmt.Errorf("%w: Cannot execute disabled task %s", ErrDisabled, t.ID)
	}
	n, err := m.newJob(t, in)
	if err != nil {
		return nil, err
	}
	return m.jobs.Submit(ctx, *n)
}

// newJob is the job the task runs as, with the $execute overrides merged in.
func (m *Manager) newJob(t *Task, in ExecuteInput) (*job.NewJob, error) {
	// A task stored before create checked these cannot run either; the
	// locations point at the task, which a PATCH can fix.
	if ve := checkCommand(t.Command); ve != nil {
		ve.Fields[0].Location = "task.command"
		return nil, ve
	}
	if ve := checkEnv(t.Env, "task.env"); ve != nil {
		return nil, ve
	}
	n := &job.NewJob{TaskID: t.ID, Type: t.Type, Command: t.Command, Task: t.snapshot(), MaxAttempts: t.Retries + 1,
		Priority: t.Priority, Limited: t.concLimit() != nil}
	if in.Priority != nil {
		n.Priority = *in.Priority
	}
	if t.TimeoutSeconds != nil {
		n.Timeout = time.Duration(*t.TimeoutSeconds * float64(time.Second))
	}
	switch t.Type {
	case TypeFunction:
		if in.Env != nil {
			return nil, &ValidationError{Msg: "env is for shell tasks", Fields: []FieldError{{Location: "body.env", Message: "only shell tasks take env"}}}
		}
		b, err := m.binding(t.Command)
		if errors.Is(err, ErrNotRegistered) {
			return nil, fmt.Errorf("%w: task %s names function %q, which this server does not have", ErrNotRegistered, t.ID, t.Command)
		}
		if err != nil {
			return nil, err
		}
		n.Params = merge(t.Params, in.Params)
		if fe := b.Validate(n.Params, false); len(fe) > 0 {
			return nil, &ValidationError{Msg: "the merged params do not match the function's parameters", Fields: prefix("body.", fe)}
		}
	case TypeShell:
		if in.Params != nil {
			return nil, &ValidationError{
				Msg:    fmt.Sprintf("params are for function tasks, and no function named %q is registered", t.Command),
				Fields: []FieldError{{Location: "body.params", Message: "shell tasks take env, not params"}},
			}
		}
		if ve := checkEnv(in.Env, "body.env"); ve != nil {
			return nil, ve
		}
		n.Env = merge(t.Env, in.Env)
		if err := m.checkShell(t.Command, n.Env); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// Run executes the task and waits for its job to finish.
func (m *Manager) Run(ctx context.Context, id string, in ExecuteInput) (*job.Record, error) {
	r, err := m.Execute(ctx, id, in)
	if err != nil {
		return nil, err
	}
	return m.jobs.Wait(ctx, r.ID)
}

func merge[M ~map[string]V, V any](base, over M) M {
	if base == nil && over == nil {
		return nil
	}
	out := make(M, len(base)+len(over))
	maps.Copy(out, base)
	maps.Copy(out, over)
	return out
}

// Orphaned lists enabled tasks that never ran (or whose jobs were all
// deleted), reason "no_job", and function tasks whose function this server
// does not have, reason "function_not_registered" (which wins when both
// hold). reason filters to tasks with that reason when not empty.
func (m *Manager) Orphaned(ctx context.Context, reason string) ([]Orphan, error) {
	rows, err := m.db.Query(ctx, m.q.WithJobFlag)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []Orphan{}
	for rows.Next() {
		var hasJob bool
		t, err := scanTask(rows, &hasJob)
		if err != nil {
			return nil, err
		}
		var reasons []string
		if _, ok := m.reg.Lookup(t.Command); t.Type == TypeFunction && !ok {
			reasons = append(reasons, "function_not_registered")
		}
		// A scheduled enabled task has a job to come.
		if t.Enabled && !hasJob && t.Schedule == nil {
			reasons = append(reasons, "no_job")
		}
		for _, r := range reasons {
			if reason == "" || reason == r {
				out = append(out, Orphan{Task: *t, Reason: r})
				break
			}
		}
	}
	return out, rows.Err()
}

// Functions describes every registered function.
func (m *Manager) Functions() ([]FunctionInfo, error) {
	out := []FunctionInfo{}
	for _, f := range m.reg.Functions() {
		b, err := m.binding(f.Name())
		if err != nil {
			return nil, err
		}
		inj := b.Injects()
		if inj == nil {
			inj = []string{}
		}
		out = append(out, FunctionInfo{Name: f.Name(), Description: f.Description(), ParamsSchema: b.ParamsSchema(), Injects: inj})
	}
	return out, nil
}
