package task

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Task types.
const (
	TypeFunction = "function"
	TypeShell    = "shell"
)

// Task is a stored, executable definition (TaskOut in the API).
type Task struct {
	ID             string            `json:"id"`
	Command        string            `json:"command" doc:"a registered function's name, or a shell command line"`
	Type           string            `json:"type" enum:"function,shell"`
	Enabled        bool              `json:"enabled"`
	Params         map[string]any    `json:"params" doc:"default arguments of a function task"`
	Env            map[string]string `json:"env" doc:"environment added to a shell task's process"`
	TimeoutSeconds *float64          `json:"timeout_seconds"`
	Retries        int               `json:"retries"`
	// Schedule fires the task on its own (see the package doc, "Schedules").
	Schedule      *string    `json:"schedule" doc:"cron expression (5 fields), @hourly/@daily/..., or @every DURATION; null: no schedule"`
	Timezone      string     `json:"timezone" doc:"IANA zone the schedule is read in"`
	Overlap       string     `json:"overlap" enum:"skip,queue,allow,cancel_previous" doc:"what a slot does while an earlier job of the task is still going"`
	CatchUp       string     `json:"catch_up" enum:"none,latest,all" doc:"slots missed while no node ran: fire none, the latest, or all (at most 10)"`
	MaxConcurrent *int       `json:"max_concurrent" doc:"at most this many jobs of the task run at once, over all nodes; null: unlimited"`
	Priority      int        `json:"priority" doc:"higher runs first among ready jobs"`
	NextFireAt    *time.Time `json:"next_fire_at" doc:"the schedule's next slot (null without a schedule or when disabled)"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`

	scheduleSince *int64 // ms: when the schedule last started to apply
	lastSlot      *int64 // ms: the latest slot handled
	version       int64  // bumped by each update; a fire is stored only for the version it was made from
}

// Input is what creating a task takes (TaskIn). Optional fields are
// pointers so that "not given" differs from a zero value.
type Input struct {
	Command        string            `json:"command" minLength:"1" doc:"a registered function's name, or a shell command line"`
	Type           string            `json:"type,omitempty" enum:"function,shell" doc:"inferred when omitted: function if command names a registered function, else shell"`
	Enabled        *bool             `json:"enabled,omitempty" doc:"only enabled tasks can be executed (default true)"`
	Params         map[string]any    `json:"params,omitempty" doc:"function tasks: default arguments, merged under the $execute body's"`
	Env            map[string]string `json:"env,omitempty" doc:"shell tasks: environment variables, merged under the $execute body's"`
	TimeoutSeconds *float64          `json:"timeout_seconds,omitempty" exclusiveMinimum:"0" doc:"cancel and fail the job after this long"`
	Retries        *int              `json:"retries,omitempty" minimum:"0" maximum:"100" doc:"extra attempts after a failure, with exponential backoff"`
	Schedule       *string           `json:"schedule,omitempty" doc:"fire the task on a schedule: 5 cron fields (\"*/15 * * * *\"), @hourly, @daily, @weekly, @monthly, @yearly, or @every DURATION (\"@every 10m\")"`
	Timezone       *string           `json:"timezone,omitempty" doc:"IANA zone the schedule is read in, e.g. Europe/Oslo (default UTC)"`
	Overlap        *string           `json:"overlap,omitempty" enum:"skip,queue,allow,cancel_previous" doc:"a slot that comes while a job of the task is pending or running: skip it (default), queue it, allow it to run beside, or cancel the previous and run"`
	CatchUp        *string           `json:"catch_up,omitempty" enum:"none,latest,all" doc:"slots missed while no node ran: none, the latest (default), or all (the 10 latest)"`
	MaxConcurrent  *int              `json:"max_concurrent,omitempty" minimum:"1" maximum:"100000" doc:"at most this many jobs of the task run at once over all nodes (default unlimited)"`
	Priority       *int              `json:"priority,omitempty" minimum:"-1000" maximum:"1000" doc:"higher runs first among ready jobs; ties in submit order (default 0)"`
}

// Patch is a partial update: nil fields keep their value. A field named in
// Clear is set back to its default (null, or 0 retries).
type Patch struct {
	Command        *string           `json:"command,omitempty" minLength:"1"`
	Type           *string           `json:"type,omitempty" enum:"function,shell"`
	Enabled        *bool             `json:"enabled,omitempty"`
	Params         map[string]any    `json:"params,omitempty"`
	Env            map[string]string `json:"env,omitempty"`
	TimeoutSeconds *float64          `json:"timeout_seconds,omitempty" exclusiveMinimum:"0"`
	Retries        *int              `json:"retries,omitempty" minimum:"0" maximum:"100"`
	Schedule       *string           `json:"schedule,omitempty" doc:"null removes the schedule"`
	Timezone       *string           `json:"timezone,omitempty"`
	Overlap        *string           `json:"overlap,omitempty" enum:"skip,queue,allow,cancel_previous"`
	CatchUp        *string           `json:"catch_up,omitempty" enum:"none,latest,all"`
	MaxConcurrent  *int              `json:"max_concurrent,omitempty" minimum:"1" maximum:"100000" doc:"null: unlimited"`
	Priority       *int              `json:"priority,omitempty" minimum:"-1000" maximum:"1000"`
	// Clear lists fields given as JSON null.
	Clear []string `json:"-"`
}

// ExecuteInput is the optional body of $execute.
type ExecuteInput struct {
	Params map[string]any    `json:"params,omitempty" doc:"merged over the task's params, key by key"`
	Env    map[string]string `json:"env,omitempty" doc:"merged over the task's env, key by key"`
	// Priority overrides the task's for this job.
	Priority *int `json:"priority,omitempty" minimum:"-1000" maximum:"1000" doc:"this job's priority (default the task's)"`
}

// Orphan is a task that no job will run as it stands.
type Orphan struct {
	Task
	Reason string `json:"reason" enum:"no_job,function_not_registered"`
}

// FunctionInfo describes a registered function for $functions.
type FunctionInfo struct {
	Name         string   `json:"name"`
	Description  string   `json:"description"`
	ParamsSchema any      `json:"params_schema"`
	Injects      []string `json:"injects"`
}

// Errors the manager returns; the HTTP layer maps them to problem details.
var (
	ErrNotFound      = errors.New("task not found")
	ErrDisabled      = errors.New("task is disabled")
	ErrNotRegistered = errors.New("function not registered")
)

// ValidationError is a 422: the input is well-formed but wrong.
type ValidationError struct {
	Msg    string
	Fields []FieldError
}

func (e *ValidationError) Error() string { return e.Msg }

// ForbiddenError is a 403: the shell policy refuses the command.
type ForbiddenError struct{ Reason string }

func (e *ForbiddenError) Error() string { return e.Reason }

// snapshot is the task as a job records it.
func (t *Task) snapshot() json.RawMessage {
	b, _ := json.Marshal(t)
	return b
}

// checkCommand refuses a command holding a NUL byte: no exec call can pass
// one (the kernel reads each argument up to its first NUL), so such a task
// could be stored but never run. Saying so at create, update and $execute
// beats a job that fails at start.
func checkCommand(command string) *ValidationError {
	if i := strings.IndexByte(command, 0); i >= 0 {
		return &ValidationError{
			Msg:    fmt.Sprintf("command holds a NUL byte at byte %d; a process's command line cannot carry one", i+1),
			Fields: []FieldError{{Location: "body.command", Message: "must not contain a NUL byte"}},
		}
	}
	return nil
}

// checkEnv refuses environment entries a process cannot receive: the
// environment is a list of NAME=value strings each ended by a NUL, so a
// name must be non-empty and hold no "=" or NUL, and a value no NUL.
// where prefixes each location, e.g. "body.env".
func checkEnv(env map[string]string, where string) *ValidationError {
	var fields []FieldError
	for _, name := range slices.Sorted(maps.Keys(env)) {
		var msg string
		switch {
		case name == "":
			msg = "an environment variable needs a name"
		case strings.IndexByte(name, 0) >= 0:
			msg = "the name must not contain a NUL byte"
		case strings.IndexByte(name, '=') >= 0:
			msg = `the name must not contain "=" (it separates name from value)`
		case strings.IndexByte(env[name], 0) >= 0:
			msg = "the value must not contain a NUL byte"
		default:
			continue
		}
		fields = append(fields, FieldError{Location: where + "." + name, Message: msg})
	}
	if len(fields) == 0 {
		return nil
	}
	return &ValidationError{Msg: "env holds entries no process can receive: " + fields[0].Location + ": " + fields[0].Message, Fields: fields}
}
