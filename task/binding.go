package task

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// argSource says where Call gets an argument from.
type argSource int

const (
	argContext argSource = iota
	argInject
	argParams
)

// Binding is a Function with every parameter assigned a source: the context,
// an injected service value, or the decoded params. It is immutable and safe
// for concurrent use, so a service binds each function once at start-up and
// shares the result across jobs.
type Binding struct {
	fn         *Function
	sources    []argSource
	paramsType reflect.Type // nil if the function takes no params
	schema     *paramsSchema
	injects    []string
}

// Bind decides, now that the service knows which types it provides, how each
// parameter of f is filled. injectable reports whether the service can supply
// a value of a given type (nil means nothing is injectable).
//
// context.Context gets the job's context, a type for which injectable is
// true is injected, and the remaining struct, pointer to struct or
// map[string]any parameter receives the params. Any other leftover parameter
// is an error naming the type that is not provided, so a missing Provide is
// reported when the service is built rather than when a job runs.
func (f *Function) Bind(injectable func(reflect.Type) bool) (*Binding, error) {
	b := &Binding{fn: f, sources: make([]argSource, len(f.params))}
	var candidates []int
	var notProvided []int
	for i, p := range f.params {
		switch {
		case p.kind == paramContext:
			b.sources[i] = argContext
		case injectable != nil && injectable(p.typ):
			b.sources[i] = argInject
			b.injects = append(b.injects, p.typ.String())
		case p.kind == paramInjectOnly:
			notProvided = append(notProvided, i)
		default:
			candidates = append(candidates, i)
		}
	}

	paramsIdx := -1
	switch {
	case len(candidates) == 1:
		paramsIdx = candidates[0]
	case len(candidates) > 1:
		// Several pointers to structs are left (Register allows only one
		// non-pointer candidate). If one is a plain struct or map it is
		// clearly the params and the pointers are the missing services;
		// otherwise there is no telling which is meant, so all are reported.
		for _, i := range candidates {
			if f.params[i].kind == paramValue {
				paramsIdx = i
			}
		}
		for _, i := range candidates {
			if i != paramsIdx {
				notProvided = append(notProvided, i)
			}
		}
	}
	if len(notProvided) > 0 {
		slices.Sort(notProvided)
		msgs := make([]string, len(notProvided))
		for j, i := range notProvided {
			msgs[j] = fmt.Sprintf("parameter %d (%s)", i+1, f.params[i].typ)
		}
		hint := ""
		if len(candidates) > 1 && paramsIdx < 0 {
			hint = "; at most one of them can be the params, the others must be provided"
		}
		return nil, fmt.Errorf("task %q: %s: type not provided by the service (add it with Provide)%s",
			f.name, strings.Join(msgs, ", "), hint)
	}

	if paramsIdx >= 0 {
		b.sources[paramsIdx] = argParams
		b.paramsType = f.params[paramsIdx].typ
	}
	s, err := newParamsSchema(b.paramsType)
	if err != nil {
		return nil, fmt.Errorf("task %q: %w", f.name, err)
	}
	b.schema = s
	return b, nil
}

// Function returns the function this binding calls.
func (b *Binding) Function() *Function { return b.fn }

// ParamsSchema returns the JSON Schema of the params object as a freshly
// decoded map[string]any, so callers may modify it. It is self-contained:
// nested types are inlined, and only recursive ones are referenced through
// "$defs" in the same document.
func (b *Binding) ParamsSchema() any {
	var m map[string]any
	if err := json.Unmarshal(b.schema.doc, &m); err != nil {
		// doc was produced by json.Marshal of a map at Bind time.
		panic(fmt.Sprintf("task: corrupt params schema for %q: %v", b.fn.name, err))
	}
	return m
}

// Injects lists the injected parameter types in parameter order, as Go type
// strings such as "*slog.Logger". context.Context is not included: it is
// always available and so says nothing about what the service must provide.
func (b *Binding) Injects() []string { return slices.Clone(b.injects) }

// FieldError is one problem found in a params object.
type FieldError struct {
	// Location is a path into the request, such as "params.name" or
	// "params.items[2].id".
	Location string `json:"location"`
	Message  string `json:"message"`
}

func (e FieldError) Error() string { return e.Location + ": " + e.Message }

// ParamsError is returned by Call when the params fail validation, so callers
// can tell bad input apart from a failure of the function itself.
type ParamsError struct {
	Function string
	Errors   []FieldError
}

func (e *ParamsError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return fmt.Sprintf("task %q: invalid params: %s", e.Function, strings.Join(msgs, "; "))
}

// PanicError is returned by Call when the function panicked. Recovering in
// Call means a buggy job fails on its own instead of taking the server down.
type PanicError struct {
	// Value is what the function passed to panic.
	Value any
	// Stack is the goroutine's stack at the time of the panic, which
	// includes the panicking function.
	Stack string
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value if it is an error (e.g. a runtime error),
// so errors.Is and errors.As see through the panic.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// paramsRoot is the location prefix of every FieldError.
const paramsRoot = "params"

// Validate checks a params object against the params schema and returns the
// problems found, sorted by location, or nil.
//
// With partial set (creating or updating a task, whose stored params are
// merged with more at execution) top-level required fields may be missing;
// otherwise (executing) they must be present. Unknown keys and values of the
// wrong type are errors either way; integer fields must get whole numbers.
// Values nested in objects are checked in full even when partial, since
// params are merged at the top level only and a nested object is never
// completed later.
func (b *Binding) Validate(params map[string]any, partial bool) []FieldError {
	if params == nil {
		params = map[string]any{}
	}
	value := normalizeNumbers(params)
	pb := huma.NewPathBuffer([]byte(paramsRoot), len(paramsRoot))
	res := &huma.ValidateResult{}
	huma.Validate(b.schema.registry, b.schema.lax, pb, huma.ModeWriteToServer, value, res)

	var errs []FieldError
	for _, name := range b.schema.required {
		key, ok := findKey(params, name)
		switch {
		case !ok && !partial:
			errs = append(errs, FieldError{
				Location: paramsRoot + "." + name,
				Message:  "expected required property " + name + " to be present",
			})
		case ok && params[key] == nil:
			// The lax schema has no required list, so huma skips nulls for
			// these fields; check null against the field's own schema, which
			// accepts it only if the field is nullable (a pointer).
			pb.Push(name)
			huma.Validate(b.schema.registry, b.schema.lax.Properties[name], pb, huma.ModeWriteToServer, nil, res)
			pb.Pop()
		}
	}
	for _, e := range res.Errors {
		var d *huma.ErrorDetail
		if errors.As(e, &d) {
			errs = append(errs, FieldError{Location: d.Location, Message: d.Message})
		} else {
			errs = append(errs, FieldError{Location: paramsRoot, Message: e.Error()})
		}
	}
	slices.SortFunc(errs, func(a, b FieldError) int {
		if c := strings.Compare(a.Location, b.Location); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	return errs
}

// Call runs the function: it validates params in full (returning a
// *ParamsError), fills in defaults, decodes them into the params argument,
// gets each injected argument from lookup, and calls the function with ctx.
//
// The result is the JSON encoding of the returned value, "null" when the
// function returns a nil map or pointer or has no value result. If the
// function returns a non-nil error, Call returns it unchanged with a nil
// result. A panic in the function is recovered and returned as a
// *PanicError.
func (b *Binding) Call(ctx context.Context, params map[string]any, lookup func(reflect.Type) (reflect.Value, bool)) (result json.RawMessage, err error) {
	if errs := b.Validate(params, false); len(errs) > 0 {
		return nil, &ParamsError{Function: b.fn.name, Errors: errs}
	}

	args := make([]reflect.Value, len(b.sources))
	for i, src := range b.sources {
		t := b.fn.params[i].typ
		switch src {
		case argContext:
			if ctx == nil {
				args[i] = reflect.Zero(t)
			} else {
				args[i] = reflect.ValueOf(ctx)
			}
		case argInject:
			var v reflect.Value
			ok := false
			if lookup != nil {
				v, ok = lookup(t)
			}
			if !ok || !v.IsValid() {
				return nil, fmt.Errorf("task %q: no value for injected type %s", b.fn.name, t)
			}
			if !v.Type().AssignableTo(t) {
				return nil, fmt.Errorf("task %q: injected value for %s has type %s", b.fn.name, t, v.Type())
			}
			args[i] = v
		}
	}

	defer func() {
		if v := recover(); v != nil {
			result, err = nil, &PanicError{Value: v, Stack: string(debug.Stack())}
		}
	}()

	// Decoding runs under the recover too: a params type's UnmarshalJSON is
	// user code like the function itself.
	for i, src := range b.sources {
		if src == argParams {
			v, err := b.decode(params)
			if err != nil {
				return nil, err
			}
			args[i] = v
		}
	}

	out := b.fn.fn.Call(args)

	f := b.fn
	if f.hasErr {
		if e := out[len(out)-1]; !e.IsNil() {
			return nil, e.Interface().(error)
		}
	}
	if !f.hasValue {
		return json.RawMessage("null"), nil
	}
	return b.encode(out[0])
}

// decode turns params, with defaults applied, into a value of the params
// argument's type by a JSON round trip, which honours json tags and custom
// unmarshalers exactly as an HTTP request body would.
func (b *Binding) decode(params map[string]any) (reflect.Value, error) {
	if params == nil {
		params = map[string]any{}
	}
	filled := applyDefaults(b.schema.registry, b.schema.lax, params)
	data, err := json.Marshal(filled)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("task %q: encoding params: %w", b.fn.name, err)
	}
	t := b.paramsType
	ptr := t.Kind() == reflect.Pointer
	if ptr {
		t = t.Elem()
	}
	v := reflect.New(t)
	if err := json.Unmarshal(data, v.Interface()); err != nil {
		return reflect.Value{}, &ParamsError{Function: b.fn.name, Errors: []FieldError{{Location: paramsRoot, Message: err.Error()}}}
	}
	if ptr {
		return v, nil
	}
	return v.Elem(), nil
}

// encode renders a function's value result, insisting on a JSON object (or
// null): result types are checked at registration, but a custom MarshalJSON
// can still produce something else.
func (b *Binding) encode(v reflect.Value) (json.RawMessage, error) {
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Interface:
		if v.IsNil() {
			return json.RawMessage("null"), nil
		}
	}
	data, err := json.Marshal(v.Interface())
	if err != nil {
		return nil, fmt.Errorf("task %q: encoding result: %w", b.fn.name, err)
	}
	if trimmed := bytes.TrimSpace(data); !bytes.HasPrefix(trimmed, []byte("{")) && !bytes.Equal(trimmed, []byte("null")) {
		return nil, fmt.Errorf("task %q: result of type %s encoded to %.40s, want a JSON object", b.fn.name, v.Type(), trimmed)
	}
	return data, nil
}
