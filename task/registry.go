// Package task holds the registry of Go functions that servicekit runs as
// jobs, and the reflection machinery that turns a JSON params object into a
// call of such a function.
//
// Registration happens in two steps. Register (usually from an init
// function) checks everything that can be checked from the signature alone,
// so that a function that can never be called is rejected at start-up rather
// than when its first job runs. The types a service injects are only known
// once the service is built (the builder's Provide runs after every init), so
// deciding which parameter is injected and which one receives the params is
// left to Function.Bind.
//
// # Schedules
//
// A task with a schedule fires on its own: Manager.RunSchedules, run by
// every node, stores one job per slot (trigger "schedule", scheduled_for the
// slot), made unique in the database by (task, slot), so several nodes need
// no leader. Overlap, catch-up after downtime, per-task concurrency limits
// and priorities are described in schedules.go and in the README
// ("Schedules and per-task limits").
package task

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Registry is a set of named functions. It is safe for concurrent use.
//
// Most programs use the process-wide Default registry through the package
// level Register and MustRegister; a separate Registry is useful for tests
// and for programs that host several independent services.
type Registry struct {
	mu    sync.RWMutex
	funcs map[string]*Function
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{funcs: make(map[string]*Function)}
}

// Default is the process-wide registry used by Register and MustRegister, in
// the same way http.DefaultServeMux backs http.Handle: it lets packages add
// functions from init without having to be handed a registry.
var Default = NewRegistry()

// Register adds fn to the Default registry under name. See
// Registry.Register.
func Register(name string, fn any, opts ...FuncOption) error {
	return Default.Register(name, fn, opts...)
}

// MustRegister is like Register but panics on error. It is meant for init
// functions, where a bad registration is a programming error that should stop
// the program before it serves anything.
func MustRegister(name string, fn any, opts ...FuncOption) {
	Default.MustRegister(name, fn, opts...)
}

// FuncOption configures a function at registration.
type FuncOption func(*funcOptions)

type funcOptions struct {
	description string
}

// Description sets the human-readable text shown as "description" for the
// function in the API.
func Description(text string) FuncOption {
	return func(o *funcOptions) { o.description = text }
}

// Register adds fn to r under name.
//
// It returns an error if name is empty or already taken, or if fn's signature
// can never be bound: fn must be a non-variadic func whose parameters are each
// context.Context, an interface or pointer type (candidates for injection), a
// struct or map[string]any (the params), with no type repeated and at most one
// non-pointer params candidate; and whose results are (T, error), T, error or
// nothing, where T encodes to a JSON object (a struct, a pointer to a struct,
// or a map with string keys).
func (r *Registry) Register(name string, fn any, opts ...FuncOption) error {
	if name == "" {
		return errors.New("task: register: empty function name")
	}
	f, err := newFunction(name, fn)
	if err != nil {
		return err
	}
	var o funcOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	f.description = o.description

	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.funcs[name]; dup {
		return fmt.Errorf("task: register %q: a function with this name is already registered", name)
	}
	r.funcs[name] = f
	return nil
}

// MustRegister is like Register but panics on error.
func (r *Registry) MustRegister(name string, fn any, opts ...FuncOption) {
	if err := r.Register(name, fn, opts...); err != nil {
		panic(err)
	}
}

// Lookup returns the function registered under name.
func (r *Registry) Lookup(name string) (*Function, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	f, ok := r.funcs[name]
	return f, ok
}

// Functions returns every registered function sorted by name, so listings
// are stable across runs.
func (r *Registry) Functions() []*Function {
	r.mu.RLock()
	fs := make([]*Function, 0, len(r.funcs))
	for _, f := range r.funcs {
		fs = append(fs, f)
	}
	r.mu.RUnlock()
	slices.SortFunc(fs, func(a, b *Function) int { return strings.Compare(a.name, b.name) })
	return fs
}

// paramKind is what Register could tell about a parameter from its type
// alone; Bind settles the ambiguous kinds once injectables are known.
type paramKind int

const (
	// paramContext receives the job's context.
	paramContext paramKind = iota
	// paramInjectOnly is an interface or a pointer to a non-struct: it can
	// only be filled by injection.
	paramInjectOnly
	// paramPointer is a pointer to a struct: injected if the service provides
	// it (e.g. *slog.Logger), otherwise the params.
	paramPointer
	// paramValue is a struct or map[string]any: the params, unless the
	// program happens to Provide that exact type.
	paramValue
)

type param struct {
	typ  reflect.Type
	kind paramKind
}

// Function is a registered function. It is immutable once registered, so it
// can be shared freely between goroutines.
type Function struct {
	name        string
	description string
	fn          reflect.Value
	params      []param
	// hasValue and hasErr describe the result shape: (T, error), T, error or
	// nothing.
	hasValue bool
	hasErr   bool
}

// Name returns the name the function was registered under.
func (f *Function) Name() string { return f.name }

// Description returns the text set with the Description option, or "".
func (f *Function) Description() string { return f.description }

var (
	contextType = reflect.TypeFor[context.Context]()
	errorType   = reflect.TypeFor[error]()
)

func newFunction(name string, fn any) (*Function, error) {
	fail := func(format string, args ...any) error {
		return fmt.Errorf("task: register %q: %s", name, fmt.Sprintf(format, args...))
	}
	if fn == nil {
		return nil, fail("function is nil")
	}
	v := reflect.ValueOf(fn)
	t := v.Type()
	if t.Kind() != reflect.Func {
		return nil, fail("got %s, want a func", t)
	}
	if v.IsNil() {
		return nil, fail("function is nil")
	}
	if t.IsVariadic() {
		return nil, fail("variadic functions are not supported (%s)", t)
	}

	f := &Function{name: name, fn: v}
	seen := make(map[reflect.Type]int)
	valueParam := -1
	for i := range t.NumIn() {
		pt := t.In(i)
		if prev, dup := seen[pt]; dup {
			return nil, fail("parameters %d and %d have the same type %s; arguments are matched by type, so each type may appear once", prev+1, i+1, pt)
		}
		seen[pt] = i
		kind, ok := classifyParam(pt)
		if !ok {
			return nil, fail("parameter %d of %d has type %s: want context.Context, an injectable (interface or pointer type), or params (struct, pointer to struct or map[string]any)", i+1, t.NumIn(), pt)
		}
		if kind == paramValue {
			if valueParam >= 0 {
				return nil, fail("parameters %d (%s) and %d (%s) both look like params; a function takes at most one params argument", valueParam+1, t.In(valueParam), i+1, pt)
			}
			valueParam = i
			// A non-pointer struct or map is all but certain to be the params,
			// so check now that a schema can be built for it: a malformed tag
			// (say default:"x" on an int) then fails at registration.
			if _, err := newParamsSchema(pt); err != nil {
				return nil, fail("parameter %d: %v", i+1, err)
			}
		}
		f.params = append(f.params, param{typ: pt, kind: kind})
	}

	switch t.NumOut() {
	case 0:
	case 1:
		if t.Out(0) == errorType {
			f.hasErr = true
		} else if validResultType(t.Out(0)) {
			f.hasValue = true
		} else {
			return nil, fail("result type %s: want a struct, a pointer to a struct, a map with string keys, or error", t.Out(0))
		}
	case 2:
		if !validResultType(t.Out(0)) {
			return nil, fail("first result type %s: want a struct, a pointer to a struct or a map with string keys", t.Out(0))
		}
		if t.Out(1) != errorType {
			return nil, fail("second result type %s: want error", t.Out(1))
		}
		f.hasValue, f.hasErr = true, true
	default:
		return nil, fail("%d results: want (T, error), T, error or nothing", t.NumOut())
	}
	return f, nil
}

// classifyParam sorts a parameter type into a paramKind, or reports false
// for types that can neither be injected nor decoded from a JSON object.
func classifyParam(t reflect.Type) (paramKind, bool) {
	switch {
	case t == contextType:
		return paramContext, true
	case t.Kind() == reflect.Interface:
		return paramInjectOnly, true
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		return paramPointer, true
	case t.Kind() == reflect.Pointer:
		return paramInjectOnly, true
	case t.Kind() == reflect.Struct, isParamsMap(t):
		return paramValue, true
	}
	return 0, false
}

// isParamsMap reports whether t is map[string]any (or a named type with that
// shape), the free-form params type.
func isParamsMap(t reflect.Type) bool {
	return t.Kind() == reflect.Map && t.Key().Kind() == reflect.String &&
		t.Elem().Kind() == reflect.Interface && t.Elem().NumMethod() == 0
}

// validResultType reports whether values of t encode to a JSON object (or
// null), which is what a job result must be.
func validResultType(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Struct:
		return true
	case reflect.Pointer:
		return t.Elem().Kind() == reflect.Struct
	case reflect.Map:
		return t.Key().Kind() == reflect.String
	}
	return false
}
