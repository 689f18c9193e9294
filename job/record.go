package job

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/servicekit/servicekit/internal/sqlq"
)

// Status is where a job is in its life: pending → running → completed |
// failed | canceled. A terminal status never changes again.
type Status string

const (
	Pending   Status = "pending"
	Running   Status = "running"
	Completed Status = "completed"
	Failed    Status = "failed"
	Canceled  Status = "canceled"
)

// Terminal reports whether s is an end state.
func (s Status) Terminal() bool { return s == Completed || s == Failed || s == Canceled }

// Valid reports whether s names a status.
func (s Status) Valid() bool { return s == Pending || s == Running || s.Terminal() }

// Progress is what a running function last reported.
type Progress struct {
	Current int    `json:"current"`
	Total   int    `json:"total"`
	Message string `json:"message,omitempty"`
}

// Record is one job (JobRecord in the API).
type Record struct {
	ID             string            `json:"id"`
	TaskID         string            `json:"task_id"`
	Type           string            `json:"type" enum:"function,shell"`
	Command        string            `json:"command"`
	Status         Status            `json:"status" enum:"pending,running,completed,failed,canceled"`
	Params         map[string]any    `json:"params"`
	Env            map[string]string `json:"env,omitempty"`
	Attempt        int               `json:"attempt"`
	MaxAttempts    int               `json:"max_attempts"`
	SubmittedAt    time.Time         `json:"submitted_at"`
	StartedAt      *time.Time        `json:"started_at"`
	FinishedAt     *time.Time        `json:"finished_at"`
	ExitCode       *int              `json:"exit_code"`
	Result         json.RawMessage   `json:"result"`
	Error          *string           `json:"error"`
	ErrorTraceback *string           `json:"error_traceback"`
	ArtifactID     *string           `json:"artifact_id"`
	Progress       *Progress         `json:"progress"`
	Node           *string           `json:"node"`
	Trigger        string            `json:"trigger" enum:"api,schedule" doc:"what made the job: an $execute (or Submit) call, or the task's schedule"`
	ScheduledFor   *time.Time        `json:"scheduled_for" doc:"the schedule slot this job fires for (null unless trigger is schedule)"`
	Priority       int               `json:"priority" doc:"higher runs first among ready jobs"`

	// Task is the snapshot of the task as it was when the job was submitted.
	Task json.RawMessage `json:"-"`
	// TimeoutMS is the run time limit in milliseconds (0 = none).
	TimeoutMS int64 `json:"-"`
	eventSeq  int64
	// cancelLevel is jobs.cancel_requested: 1 a cancel, 2 a delete was asked.
	cancelLevel int
	// limited: the run counts against its task's concurrency limit, so its
	// end may let a waiting job of the task start (on any node).
	limited bool
}

// Triggers: what made a job.
const (
	TriggerAPI      = "api"
	TriggerSchedule = "schedule"
)

// cols is the column list every query that returns a Record selects, in scan order.
const cols = `id, task_id, type, command, task_snapshot, params, env, status, attempt, max_attempts,
 timeout_ms, submitted_at, started_at, finished_at, exit_code, result, error, error_traceback,
 artifact_id, progress, node, event_seq, cancel_requested, triggered_by, scheduled_for, priority, limited`

func withCols(q sqlq.Queries) sqlq.Queries {
	out := make(sqlq.Queries, len(q))
	for k, v := range q {
		out[k] = strings.ReplaceAll(v, "/*COLS*/", cols)
	}
	return out
}

type scanner interface{ Scan(...any) error }

func scanRecord(row scanner) (*Record, error) {
	var r Record
	var snapshot string
	var params, env, result, progress *string
	var timeout, started, finished, slot *int64
	var submitted, limited int64
	if err := row.Scan(&r.ID, &r.TaskID, &r.Type, &r.Command, &snapshot, &params, &env, &r.Status,
		&r.Attempt, &r.MaxAttempts, &timeout, &submitted, &started, &finished, &r.ExitCode, &result,
		&r.Error, &r.ErrorTraceback, &r.ArtifactID, &progress, &r.Node, &r.eventSeq, &r.cancelLevel,
		&r.Trigger, &slot, &r.Priority, &limited); err != nil {
		return nil, err
	}
	r.ScheduledFor = msTimePtr(slot)
	r.limited = limited != 0
	r.Task = json.RawMessage(snapshot)
	r.SubmittedAt = msTime(submitted)
	r.StartedAt = msTimePtr(started)
	r.FinishedAt = msTimePtr(finished)
	if timeout != nil {
		r.TimeoutMS = *timeout
	}
	var err error
	if params != nil {
		err = errors.Join(err, json.Unmarshal([]byte(*params), &r.Params))
	}
	if r.Params == nil {
		r.Params = map[string]any{}
	}
	if env != nil {
		err = errors.Join(err, json.Unmarshal([]byte(*env), &r.Env))
	}
	if result != nil {
		r.Result = json.RawMessage(*result)
	}
	if progress != nil {
		r.Progress = new(Progress)
		err = errors.Join(err, json.Unmarshal([]byte(*progress), r.Progress))
	}
	return &r, err
}

func msTime(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

func msTimePtr(ms *int64) *time.Time {
	if ms == nil {
		return nil
	}
	t := msTime(*ms)
	return &t
}

// jsonText encodes v for a JSON text column; nil stays SQL NULL.
func jsonText(v any) *string {
	if v == nil {
		return nil
	}
	switch x := v.(type) {
	case json.RawMessage:
		if x == nil {
			return nil
		}
		s := string(x)
		return &s
	case map[string]string:
		if x == nil {
			return nil
		}
	case *Progress:
		if x == nil {
			return nil
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	s := string(b)
	return &s
}
