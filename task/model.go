package task

import (
	"encoding/json"
	"errors"
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
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
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
	// Clear lists fields given as JSON null.
	Clear []string `json:"-"`
}

// ExecuteInput is the optional body of $execute.
type ExecuteInput struct {
	Params map[string]any    `json:"params,omitempty" doc:"merged over the task's params, key by key"`
	Env    map[string]string `json:"env,omitempty" doc:"merged over the task's env, key by key"`
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
