package task

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/schedule"
	"github.com/servicekit/servicekit/store"
)

// Overlap policies: what a slot does while an earlier job of its task is
// still pending or running.
const (
	// OverlapSkip fires nothing for the slot (the default): a slow job is
	// never stacked up behind.
	OverlapSkip = "skip"
	// OverlapQueue stores the fire; it starts when the earlier job ended.
	OverlapQueue = "queue"
	// OverlapAllow runs the fire beside the earlier job.
	OverlapAllow = "allow"
	// OverlapCancelPrevious cancels the earlier job; the fire starts once it ended.
	OverlapCancelPrevious = "cancel_previous"
)

// Catch-up policies: what start-up does with slots missed while no node ran.
const (
	CatchUpNone   = "none"
	CatchUpLatest = "latest" // the default: one job for the most recent missed slot
	CatchUpAll    = "all"    // one job per missed slot, the CatchUpBound most recent
)

// CatchUpBound caps the jobs catch_up "all" fires for one task: a day of
// downtime on "* * * * *" fires 10 jobs, not 1,440.
const CatchUpBound = 10

// onTimeGrace is how late a slot may be seen and still count as on time
// rather than missed: a node that stalled or restarted for a moment still
// fires the slot it was busy through, whatever catch_up says.
const onTimeGrace = 2 * time.Second

// topicTasks tells every node's schedule loop that a task changed (payload:
// its id), so a schedule set or changed on one node applies on all at once.
const topicTasks store.Topic = "tasks"

// ScheduleObserver is told about fires and skips (job.Metrics is one).
type ScheduleObserver interface {
	Fired()
	Skipped(reason string)
}

type noScheduleObserver struct{}

func (noScheduleObserver) Fired()         {}
func (noScheduleObserver) Skipped(string) {}

// concLimit is the limit the claim enforces for the task's jobs: queue and
// cancel_previous mean one at a time, so that a fire waits for the job
// before it; else max_concurrent; nil is no limit.
func (t *Task) concLimit() *int {
	if t.Schedule != nil && (t.Overlap == OverlapQueue || t.Overlap == OverlapCancelPrevious) {
		one := 1
		return &one
	}
	return t.MaxConcurrent
}

// parsedSchedule is the task's schedule, or nil without one.
func (t *Task) parsedSchedule() *schedule.Schedule {
	if t.Schedule == nil {
		return nil
	}
	s, err := schedule.Parse(*t.Schedule, t.Timezone)
	if err != nil {
		return nil
	}
	if t.scheduleSince != nil {
		s = s.From(time.UnixMilli(*t.scheduleSince)) // @every counts from when it was set
	}
	return s
}

func (t *Task) setNextFire(now time.Time) {
	t.NextFireAt = nil
	if !t.Enabled {
		return
	}
	if s := t.parsedSchedule(); s != nil {
		next := s.Next(now)
		t.NextFireAt = &next
	}
}

// applyDefaults fills the schedule fields a task leaves out.
func (t *Task) applyDefaults() {
	if t.Timezone == "" {
		t.Timezone = "UTC"
	}
	if t.Overlap == "" {
		t.Overlap = OverlapSkip
	}
	if t.CatchUp == "" {
		t.CatchUp = CatchUpLatest
	}
}

// validateSchedule checks the schedule and its zone, and normalizes the
// expression (so every node reads the same text).
func validateSchedule(t *Task) *ValidationError {
	t.applyDefaults()
	if t.Schedule == nil {
		if _, err := schedule.Parse("@daily", t.Timezone); err != nil {
			return scheduleProblem(err)
		}
		return nil
	}
	s, err := schedule.Parse(*t.Schedule, t.Timezone)
	if err != nil {
		return scheduleProblem(err)
	}
	norm := s.String()
	t.Schedule = &norm
	t.Timezone = s.Zone()
	return nil
}

func scheduleProblem(err error) *ValidationError {
	loc, msg := "body.schedule", err.Error()
	if se, ok := errors.AsType[*schedule.Error](err); ok {
		loc = "body." + se.Field
	}
	return &ValidationError{Msg: msg, Fields: []FieldError{{Location: loc, Message: msg}}}
}

// FireTime is one slot, in UTC and in the task's zone.
type FireTime struct {
	UTC   time.Time `json:"utc"`
	Local time.Time `json:"local" doc:"the same instant in the task's zone, with its offset"`
}

// LastFire is the most recent job a schedule fired.
type LastFire struct {
	JobID        string     `json:"job_id"`
	ScheduledFor time.Time  `json:"scheduled_for"`
	Status       job.Status `json:"status"`
}

// ScheduleInfo is the body of $schedule.
type ScheduleInfo struct {
	TaskID   string     `json:"task_id"`
	Schedule *string    `json:"schedule"`
	Timezone string     `json:"timezone"`
	Enabled  bool       `json:"enabled"`
	Overlap  string     `json:"overlap"`
	CatchUp  string     `json:"catch_up"`
	Next     []FireTime `json:"next" doc:"the next slots (none without a schedule or when disabled)"`
	LastFire *LastFire  `json:"last_fire"`
}

// ScheduleOf tells when the task fires next (n slots) and what it fired last.
func (m *Manager) ScheduleOf(ctx context.Context, id string, n int) (*ScheduleInfo, error) {
	t, err := m.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	info := &ScheduleInfo{TaskID: t.ID, Schedule: t.Schedule, Timezone: t.Timezone, Enabled: t.Enabled,
		Overlap: t.Overlap, CatchUp: t.CatchUp, Next: []FireTime{}}
	if s := t.parsedSchedule(); s != nil && t.Enabled {
		loc, _ := time.LoadLocation(s.Zone())
		for _, at := range s.NextN(time.Now(), n) {
			info.Next = append(info.Next, FireTime{UTC: at, Local: at.In(loc)})
		}
	}
	var lf LastFire
	var slot int64
	err = m.db.QueryRow(ctx, m.q.LastFire, t.ID).Scan(&lf.JobID, &slot, &lf.Status)
	switch {
	case err == nil:
		lf.ScheduledFor = time.UnixMilli(slot).UTC()
		info.LastFire = &lf
	case !errors.Is(err, sql.ErrNoRows):
		return nil, err
	}
	return info, nil
}

// changed tells every node's schedule loop that the task changed.
func (m *Manager) changed(id string) { m.db.Notifier().Publish(topicTasks, id) }

// cronEntry is one scheduled task in a node's loop.
type cronEntry struct {
	t     *Task
	sched *schedule.Schedule
	key   string    // what the slots depend on; a reload with the same key keeps ref
	ref   time.Time // the latest slot handled: slots after it are due
}

func entryKey(t *Task) string {
	since := int64(0)
	if t.scheduleSince != nil {
		since = *t.scheduleSince
	}
	return fmt.Sprintf("%s|%s|%d", *t.Schedule, t.Timezone, since)
}

// RunSchedules fires the scheduled tasks until ctx ends; every node runs it.
// It sleeps until the next slot of any task (no polling), fires each due
// slot as a job whose (task, slot) is unique in the database, so the nodes
// racing for a slot store one job between them and no leader is needed. A
// change to a task made on any node reaches it through the notifier, and on
// PostgreSQL every few seconds a full re-read catches signals lost while the
// listener reconnected.
//
// At start-up the slots after a task's last handled slot that passed while
// no node ran are caught up as its catch_up says.
func (m *Manager) RunSchedules(ctx context.Context) {
	c := &cronLoop{m: m, entries: map[string]*cronEntry{}, wake: make(chan struct{}, 1), dirty: map[string]bool{}}
	unsub := m.db.Notifier().Subscribe(topicTasks, c.taskChanged)
	defer unsub()
	m.db.Notifier().OnResync(func() { c.taskChanged("") })
	c.run(ctx)
}

type cronLoop struct {
	m       *Manager
	entries map[string]*cronEntry
	wake    chan struct{}

	mu    sync.Mutex
	dirty map[string]bool // task ids to re-read; "" means all
}

func (c *cronLoop) taskChanged(id string) {
	c.mu.Lock()
	c.dirty[id] = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *cronLoop) run(ctx context.Context) {
	if err := c.reloadAll(ctx, true); err != nil && ctx.Err() == nil {
		c.m.log.Error("schedules: read tasks", "error", err)
		c.taskChanged("") // try again at the next wake
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		c.reloadDirty(ctx)
		now := time.Now()
		c.fireDue(ctx, now)
		next := time.Time{}
		for _, e := range c.entries {
			if n := e.sched.Next(e.ref); next.IsZero() || n.Before(next) {
				next = n
			}
		}
		timer.Stop()
		if !next.IsZero() {
			timer.Reset(max(time.Until(next), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-c.wake:
		}
	}
}

func (c *cronLoop) reloadDirty(ctx context.Context) {
	c.mu.Lock()
	dirty := c.dirty
	c.dirty = map[string]bool{}
	c.mu.Unlock()
	if len(dirty) == 0 {
		return
	}
	if dirty[""] {
		if err := c.reloadAll(ctx, false); err != nil && ctx.Err() == nil {
			c.m.log.Warn("schedules: re-read tasks", "error", err)
			c.taskChanged("")
		}
		return
	}
	for id := range dirty {
		t, err := c.m.Get(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			delete(c.entries, id)
		case err != nil:
			if ctx.Err() == nil {
				c.m.log.Warn("schedules: re-read task", "task_id", id, "error", err)
				c.taskChanged(id)
			}
		default:
			c.put(t, false)
		}
	}
}

func (c *cronLoop) reloadAll(ctx context.Context, startup bool) error {
	rows, err := c.m.db.Query(ctx, c.m.q.Scheduled, true)
	if err != nil {
		return err
	}
	defer rows.Close()
	seen := map[string]bool{}
	for rows.Next() {
		t, err := scanTask(rows)
		if err != nil {
			return err
		}
		seen[t.ID] = true
		c.put(t, startup)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for id := range c.entries {
		if !seen[id] {
			delete(c.entries, id)
		}
	}
	return nil
}

// put adds or refreshes a task's entry. A task seen for the first time at
// start-up counts from its last handled slot, so what passed while no node
// ran is caught up; one that appears or changes while running counts from
// now (its schedule_since is now, or its slots are this loop's to fire).
func (c *cronLoop) put(t *Task, startup bool) {
	s := t.parsedSchedule()
	if s == nil || !t.Enabled {
		delete(c.entries, t.ID)
		return
	}
	key := entryKey(t)
	if e := c.entries[t.ID]; e != nil && e.key == key {
		e.t = t
		return
	}
	ref := time.Now()
	if startup {
		ref = time.Time{}
		for _, ms := range []*int64{t.scheduleSince, t.lastSlot} {
			if ms != nil && time.UnixMilli(*ms).After(ref) {
				ref = time.UnixMilli(*ms)
			}
		}
		if ref.IsZero() {
			ref = time.Now()
		}
	}
	c.entries[t.ID] = &cronEntry{t: t, sched: s, key: key, ref: ref}
}

// fireDue fires every entry's due slots; tasks in parallel (their inserts
// share the engine's batched commits), each task's slots in order.
func (c *cronLoop) fireDue(ctx context.Context, now time.Time) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for _, e := range c.entries {
		due := e.sched.Missed(e.ref, now, CatchUpBound+1)
		if len(due) == 0 {
			continue
		}
		e.ref = due[len(due)-1]
		slots := c.pick(e.t, due, now)
		if len(slots) == 0 {
			continue
		}
		t := e.t
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			for _, slot := range slots {
				c.m.fire(ctx, t, slot)
			}
		}()
	}
	wg.Wait()
}

// pick applies catch_up: slots seen within onTimeGrace fire; of the older
// (missed) ones, none, the latest (unless an on-time one fires anyway) or
// the CatchUpBound latest.
func (c *cronLoop) pick(t *Task, due []time.Time, now time.Time) []time.Time {
	var missed, onTime []time.Time
	for _, s := range due {
		if now.Sub(s) <= onTimeGrace {
			onTime = append(onTime, s)
		} else {
			missed = append(missed, s)
		}
	}
	var fire []time.Time
	switch t.CatchUp {
	case CatchUpAll:
		fire = missed[max(0, len(missed)-CatchUpBound):]
	case CatchUpLatest:
		if len(onTime) == 0 && len(missed) > 0 {
			fire = missed[len(missed)-1:]
		}
	}
	for range len(missed) - len(fire) {
		c.m.schedObs.Skipped("missed")
	}
	if len(missed) > len(fire) {
		c.m.log.Info("schedule: missed slots not caught up", "task_id", t.ID, "missed", len(missed)-len(fire), "catch_up", t.CatchUp)
	}
	return append(fire, onTime...)
}

// fire stores the job of one slot, made from the loop's copy of the task
// and stored only if the task is still that version (one insert, no read
// first). If it changed meanwhile (the change's signal is on its way), the
// task is read again, and a task now disabled, deleted or re-scheduled does
// not fire a slot of its old schedule.
func (m *Manager) fire(ctx context.Context, t *Task, slot time.Time) {
	var r *job.Record
	var err error
	for try := 0; ; try++ {
		var n *job.NewJob
		n, err = m.newJob(t, ExecuteInput{})
		if err != nil {
			m.schedObs.Skipped("error")
			m.log.Error("schedule: the task cannot run", "task_id", t.ID, "slot", slot, "error", err)
			return
		}
		n.ScheduledFor, n.TaskVersion = &slot, &t.version
		n.SkipIfActive = t.Overlap == OverlapSkip
		r, err = m.jobs.Submit(ctx, *n)
		if !errors.Is(err, job.ErrTaskChanged) || try > 0 {
			break
		}
		old := t
		if t, err = m.Get(ctx, old.ID); err != nil {
			if !errors.Is(err, ErrNotFound) {
				m.schedObs.Skipped("error")
				m.log.Error("schedule: read task", "task_id", old.ID, "slot", slot, "error", err)
			}
			return
		}
		if !t.Enabled || t.Schedule == nil || entryKey(t) != entryKey(old) {
			return
		}
	}
	switch {
	case errors.Is(err, job.ErrTaskChanged):
		m.schedObs.Skipped("error")
		m.log.Warn("schedule: the task kept changing; slot not fired", "task_id", t.ID, "slot", slot)
		return
	case errors.Is(err, job.ErrSlotTaken):
		return // another node fired it
	case errors.Is(err, job.ErrOverlap):
		m.schedObs.Skipped("overlap")
		m.log.Info("schedule: slot skipped, the task's previous job is still going (overlap skip)", "task_id", t.ID, "slot", slot)
		return
	case errors.Is(err, job.ErrQueueFull):
		m.schedObs.Skipped("queue_full")
		m.log.Warn("schedule: slot skipped, the pending queue is full", "task_id", t.ID, "slot", slot)
		return
	case err != nil:
		m.schedObs.Skipped("error")
		if ctx.Err() == nil {
			m.log.Error("schedule: fire", "task_id", t.ID, "slot", slot, "error", err)
		}
		return
	}
	m.schedObs.Fired()
	if t.Overlap == OverlapCancelPrevious {
		m.cancelOthers(ctx, t.ID, r.ID)
	}
}

// cancelOthers cancels the task's active jobs but keep; keep waits for them
// (its task's limit is one) and starts once they ended.
func (m *Manager) cancelOthers(ctx context.Context, taskID, keep string) {
	ids, err := m.jobs.ActiveJobs(ctx, taskID)
	if err != nil {
		m.log.Error("schedule: list the previous jobs to cancel", "task_id", taskID, "error", err)
		return
	}
	for _, id := range ids {
		if id == keep {
			continue
		}
		if _, err := m.jobs.Cancel(ctx, id); err != nil && !errors.Is(err, job.ErrAlreadyFinished) && !errors.Is(err, job.ErrNotFound) {
			m.log.Warn("schedule: cancel the previous job (cancel_previous)", "task_id", taskID, "job_id", id, "error", err)
		}
	}
}
