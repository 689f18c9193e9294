package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/task"
)

type TaskPath struct {
	ID string `path:"id" doc:"task ULID"`
}

type taskOut struct {
	Body *task.Task
}

type createdTask struct {
	Status   int
	Location string `header:"Location"`
	Body     *task.Task
}

type listOut struct {
	Body any `doc:"an array, or with page/size a page object {items,total,page,size,pages}"`
}

// ExecuteAccepted is the 202 body of $execute.
type ExecuteAccepted struct {
	JobID   string `json:"job_id"`
	TaskID  string `json:"task_id"`
	Message string `json:"message"`
}

// OrphanedOut is the body of $orphaned.
type OrphanedOut struct {
	OrphanedTasks []task.Orphan `json:"orphaned_tasks"`
	Count         int           `json:"count"`
}

var tasksTag = []string{"Tasks"}

func (s *Server) registerTasks() {
	m := s.d.Tasks
	huma.Register(s.api, huma.Operation{
		OperationID: "create-task", Method: http.MethodPost, Path: "/api/v1/tasks", Tags: tasksTag,
		Summary: "Create a task", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *struct{ Body task.Input }) (*createdTask, error) {
		t, err := m.Create(ctx, in.Body)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &createdTask{Status: http.StatusCreated, Location: "/api/v1/tasks/" + t.ID, Body: t}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "list-tasks", Method: http.MethodGet, Path: "/api/v1/tasks", Tags: tasksTag,
		Summary: "List tasks, oldest first",
	}, func(ctx context.Context, in *struct {
		Enabled string `query:"enabled" doc:"true or false"`
		Type    string `query:"type" doc:"function or shell"`
		PageQuery
	}) (*listOut, error) {
		var f task.Filter
		switch in.Enabled {
		case "":
		case "true", "false":
			v := in.Enabled == "true"
			f.Enabled = &v
		default:
			return nil, problemf(400, "query enabled=%q: want true or false", in.Enabled)
		}
		if in.Type != "" && in.Type != task.TypeFunction && in.Type != task.TypeShell {
			return nil, problemf(400, "query type=%q: want function or shell", in.Type)
		}
		f.Type = in.Type
		paged, limit, offset := in.paged(1 << 30)
		items, total, err := m.List(ctx, f, limit, offset)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		if paged {
			return &listOut{Body: newPage(items, total, limit, offset)}, nil
		}
		return &listOut{Body: items}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "get-task", Method: http.MethodGet, Path: "/api/v1/tasks/{id}", Tags: tasksTag, Summary: "Get a task",
	}, func(ctx context.Context, in *TaskPath) (*taskOut, error) {
		if err := checkID("task id", in.ID); err != nil {
			return nil, err
		}
		t, err := m.Get(ctx, in.ID)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &taskOut{Body: t}, nil
	})

	update := func(ctx context.Context, in *struct {
		TaskPath
		Body    task.Patch
		RawBody []byte
	}) (*taskOut, error) {
		if err := checkID("task id", in.ID); err != nil {
			return nil, err
		}
		var raw map[string]json.RawMessage
		json.Unmarshal(in.RawBody, &raw)
		for k, v := range raw {
			if string(v) == "null" {
				in.Body.Clear = append(in.Body.Clear, k)
			}
		}
		t, err := m.Update(ctx, in.ID, in.Body)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &taskOut{Body: t}, nil
	}
	for _, method := range []string{http.MethodPut, http.MethodPatch} {
		huma.Register(s.api, huma.Operation{
			OperationID: "update-task-" + method, Method: method, Path: "/api/v1/tasks/{id}", Tags: tasksTag,
			Summary:     "Update the fields given, keep the others",
			Description: "A field given as null is reset (params, env, timeout_seconds, schedule, max_concurrent to null; retries and priority to 0; timezone to UTC; overlap to skip; catch_up to latest).",
		}, update)
	}

	huma.Register(s.api, huma.Operation{
		OperationID: "delete-task", Method: http.MethodDelete, Path: "/api/v1/tasks/{id}", Tags: tasksTag,
		Summary: "Delete a task", Description: "Its jobs keep running and keep their snapshot of the task.",
		DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *TaskPath) (*struct{}, error) {
		if err := checkID("task id", in.ID); err != nil {
			return nil, err
		}
		return nil, s.toProblem(ctx, m.Delete(ctx, in.ID))
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "execute-task", Method: http.MethodPost, Path: "/api/v1/tasks/{id}/$execute", Tags: tasksTag,
		Summary:       "Run a task as a new job",
		Description:   "The job is stored before the 202 answer. Body optional: params and env merge over the task's.",
		DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *struct {
		TaskPath
		Body *task.ExecuteInput `required:"false"`
	}) (*struct {
		Status   int
		Location string `header:"Location"`
		Body     ExecuteAccepted
	}, error) {
		if err := checkID("task id", in.ID); err != nil {
			return nil, err
		}
		var body task.ExecuteInput
		if in.Body != nil {
			body = *in.Body
		}
		r, err := m.Execute(ctx, in.ID, body)
		if errors.Is(err, task.ErrDisabled) {
			// SPEC §3 fixes the detail's start; the rest says how to get on.
			return nil, problemf(409, "Cannot execute disabled task %s; enable it first: PATCH /api/v1/tasks/%s with the body {\"enabled\": true}", in.ID, in.ID)
		}
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &struct {
			Status   int
			Location string `header:"Location"`
			Body     ExecuteAccepted
		}{Status: http.StatusAccepted, Location: "/api/v1/jobs/" + r.ID,
			Body: ExecuteAccepted{JobID: r.ID, TaskID: r.TaskID, Message: "Task execution started"}}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "task-schedule", Method: http.MethodGet, Path: "/api/v1/tasks/{id}/$schedule", Tags: tasksTag,
		Summary:     "When the task fires next, and what it fired last",
		Description: "The next slots of the task's schedule in UTC and in its zone (none without a schedule or when disabled), and the last job its schedule fired.",
	}, func(ctx context.Context, in *struct {
		TaskPath
		N int `query:"n" default:"5" minimum:"1" maximum:"100" doc:"how many next slots"`
	}) (*struct{ Body *task.ScheduleInfo }, error) {
		if err := checkID("task id", in.ID); err != nil {
			return nil, err
		}
		info, err := m.ScheduleOf(ctx, in.ID, in.N)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &struct{ Body *task.ScheduleInfo }{Body: info}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "orphaned-tasks", Method: http.MethodGet, Path: "/api/v1/tasks/$orphaned", Tags: tasksTag,
		Summary:     "Tasks that no job will run as they stand",
		Description: "no_job: an enabled task without any job; function_not_registered: a function task whose function this server lacks.",
	}, func(ctx context.Context, in *struct {
		Reason string `query:"reason" doc:"no_job or function_not_registered"`
	}) (*struct{ Body OrphanedOut }, error) {
		if in.Reason != "" && in.Reason != "no_job" && in.Reason != "function_not_registered" {
			return nil, problemf(400, "query reason=%q: want no_job or function_not_registered", in.Reason)
		}
		o, err := m.Orphaned(ctx, in.Reason)
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &struct{ Body OrphanedOut }{Body: OrphanedOut{OrphanedTasks: o, Count: len(o)}}, nil
	})

	huma.Register(s.api, huma.Operation{
		OperationID: "task-functions", Method: http.MethodGet, Path: "/api/v1/tasks/$functions", Tags: tasksTag,
		Summary: "Registered Go functions with their parameter schemas",
	}, func(ctx context.Context, _ *struct{}) (*struct{ Body []task.FunctionInfo }, error) {
		fs, err := m.Functions()
		if err != nil {
			return nil, s.toProblem(ctx, err)
		}
		return &struct{ Body []task.FunctionInfo }{Body: fs}, nil
	})
}

// jobStatus parses a ?status= value.
func jobStatus(v string) (job.Status, error) {
	st := job.Status(v)
	if v != "" && !st.Valid() {
		return "", problemf(400, "query status=%q: want pending, running, completed, failed or canceled", v)
	}
	return st, nil
}
