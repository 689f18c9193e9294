package servicekit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"strings"

	"github.com/servicekit/servicekit"
	"github.com/servicekit/servicekit/job"
	"github.com/servicekit/servicekit/task"
)

// GreetArgs are the params of the examples' greet function: the json names
// are the params' keys, and default makes name optional.
type GreetArgs struct {
	Name string `json:"name" default:"World"`
}

// quiet keeps the service's own log lines out of the examples' output.
var quiet = slog.New(slog.DiscardHandler)

// A service built in-process, used from Go without HTTP: register a
// function, store a task that calls it, run the task and read the result.
// Build opens (here: an in-memory SQLite database) and migrates the
// database and starts the job engine, so the service works at once.
func Example() {
	ctx := context.Background()
	reg := task.NewRegistry()
	reg.MustRegister("greet", func(ctx context.Context, p GreetArgs) (map[string]any, error) {
		return map[string]any{"message": "Hello, " + p.Name + "!"}, nil
	})

	svc, err := servicekit.New(servicekit.Info{DisplayName: "Example"}).
		WithDatabase("sqlite://:memory:").
		WithRegistry(reg).
		WithTasks().
		WithLogger(quiet).
		Build(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	t, err := svc.Tasks.Create(ctx, task.Input{Command: "greet", Params: map[string]any{"name": "Ada"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("task type:", t.Type) // inferred: "greet" names a registered function

	// Run submits a job and waits for it to finish; params given here are
	// merged over the task's, key by key.
	r, err := svc.Tasks.Run(ctx, t.ID, task.ExecuteInput{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Status, string(r.Result))
	r, err = svc.Tasks.Run(ctx, t.ID, task.ExecuteInput{Params: map[string]any{"name": "Grace"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Status, string(r.Result))
	// Output:
	// task type: function
	// completed {"message":"Hello, Ada!"}
	// completed {"message":"Hello, Grace!"}
}

// Greeter is a dependency of the program's own, handed to task functions
// by the service rather than kept in a global.
type Greeter struct{ Salutation string }

func (g *Greeter) Greet(name string) string { return g.Salutation + ", " + name + "!" }

// Provide makes a value available to every task function that takes a
// parameter of its type. Arguments are matched by type, in any order:
// here a context, the params, the program's *Greeter and an io.Writer
// whose lines become the job's log.
func ExampleBuilder_Provide() {
	ctx := context.Background()
	reg := task.NewRegistry()
	reg.MustRegister("greet", func(ctx context.Context, p GreetArgs, g *Greeter, out io.Writer) (map[string]any, error) {
		fmt.Fprintln(out, "greeting", p.Name)
		return map[string]any{"message": g.Greet(p.Name)}, nil
	})

	svc, err := servicekit.New(servicekit.Info{}).
		WithDatabase("sqlite://:memory:").
		WithRegistry(reg).
		Provide(&Greeter{Salutation: "Good morning"}).
		WithTasks().
		WithLogger(quiet).
		Build(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	t, err := svc.Tasks.Create(ctx, task.Input{Command: "greet"})
	if err != nil {
		log.Fatal(err)
	}
	r, err := svc.Tasks.Run(ctx, t.ID, task.ExecuteInput{Params: map[string]any{"name": "Ada"}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Status, string(r.Result))
	logs, err := svc.Jobs.Logs(ctx, r.ID, "")
	if err != nil {
		log.Fatal(err)
	}
	for _, l := range logs {
		fmt.Println(l.Stream+":", l.Line)
	}
	// Output:
	// completed {"message":"Good morning, Ada!"}
	// stdout: greeting Ada
}

// Execute returns as soon as the job is stored; Jobs.Wait blocks until it
// has finished. A failed job is a result, not an error: its status and
// message are in the record, and the full output in its artifact.
func Example_waitForJob() {
	ctx := context.Background()
	svc, err := servicekit.New(servicekit.Info{}).
		WithDatabase("sqlite://:memory:").
		WithRegistry(task.NewRegistry()).
		WithTasks().
		WithLogger(quiet).
		Build(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	// A command that names no registered function is a shell task.
	t, err := svc.Tasks.Create(ctx, task.Input{Command: `echo "hello $WHO"; exit 3`, Env: map[string]string{"WHO": "shell"}})
	if err != nil {
		log.Fatal(err)
	}
	submitted, err := svc.Tasks.Execute(ctx, t.ID, task.ExecuteInput{})
	if err != nil {
		log.Fatal(err)
	}
	r, err := svc.Jobs.Wait(ctx, submitted.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.Type, r.Status, *r.ExitCode, *r.Error)

	a, err := svc.Artifacts.Get(ctx, *r.ArtifactID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.Contains(string(a.Data), `"stdout":"hello shell\n"`))
	// Output:
	// shell failed 3 exit status 3
	// true
}

// Cancel stops a job: a pending one at once, a running one by canceling
// its context (a shell job's process group gets SIGTERM) and waiting for it
// to end. The job ends canceled; canceling it again is ErrAlreadyFinished.
func Example_cancelJob() {
	ctx := context.Background()
	started := make(chan struct{})
	reg := task.NewRegistry()
	reg.MustRegister("wait_forever", func(ctx context.Context) error {
		close(started)
		<-ctx.Done() // a function that blocks must watch its context
		return ctx.Err()
	})

	svc, err := servicekit.New(servicekit.Info{}).
		WithDatabase("sqlite://:memory:").
		WithRegistry(reg).
		WithTasks().
		WithLogger(quiet).
		Build(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer svc.Close()

	t, err := svc.Tasks.Create(ctx, task.Input{Command: "wait_forever"})
	if err != nil {
		log.Fatal(err)
	}
	submitted, err := svc.Tasks.Execute(ctx, t.ID, task.ExecuteInput{})
	if err != nil {
		log.Fatal(err)
	}
	<-started

	r, err := svc.Jobs.Cancel(ctx, submitted.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Status)
	_, err = svc.Jobs.Cancel(ctx, submitted.ID)
	fmt.Println(errors.Is(err, job.ErrAlreadyFinished))
	// Output:
	// canceled
	// true
}
