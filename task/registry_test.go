package task

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type fxGreetParams struct {
	Name string `json:"name" default:"World" doc:"Who to greet"`
}

type fxOtherParams struct {
	Count int `json:"count"`
}

type fxGreetResult struct {
	Message string `json:"message"`
}

// fxDB and fxScheduler stand in for fxServices the program injects.
type fxDB struct{ name string }

type fxScheduler interface{ Schedule(string) }

type fxBadDefaultParams struct {
	Count int `json:"count" default:"many"`
}

func fxGreet(_ context.Context, p fxGreetParams) (map[string]any, error) {
	return map[string]any{"message": "Hello, " + p.Name + "!"}, nil
}

func TestRegisterAndLookup(t *testing.T) {
	r := NewRegistry()
	require.NoError(t, r.Register("greet_user", fxGreet, Description("Greets someone")))

	f, ok := r.Lookup("greet_user")
	require.True(t, ok)
	assert.Equal(t, "greet_user", f.Name())
	assert.Equal(t, "Greets someone", f.Description())

	_, ok = r.Lookup("nope")
	assert.False(t, ok)
}

func TestRegisterDuplicateName(t *testing.T) {
	r := NewRegistry()
	require.NoError(t, r.Register("dup", fxGreet))
	err := r.Register("dup", func() {})
	require.Error(t, err)
	assert.Contains(t, err.Error(), `"dup"`)
	assert.Contains(t, err.Error(), "already registered")

	// The first registration is kept.
	f, ok := r.Lookup("dup")
	require.True(t, ok)
	assert.Len(t, f.params, 2)

	assert.Panics(t, func() { r.MustRegister("dup", fxGreet) })
}

func TestRegisterEmptyName(t *testing.T) {
	err := NewRegistry().Register("", fxGreet)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "empty")
}

func TestRegisterBadSignatures(t *testing.T) {
	var nilFunc func()
	tests := []struct {
		name string
		fn   any
		want []string // substrings of the error
	}{
		{"nil", nil, []string{"nil"}},
		{"nil func", nilFunc, []string{"nil"}},
		{"not a func", 42, []string{"want a func"}},
		{"int param", func(context.Context, int) error { return nil }, []string{"parameter 2 of 2", "int"}},
		{"string param", func(string) {}, []string{"parameter 1 of 1", "string"}},
		{"slice param", func([]fxGreetParams) {}, []string{"parameter 1", "[]task.fxGreetParams"}},
		{"chan param", func(context.Context, chan int) {}, []string{"parameter 2", "chan int"}},
		{"func param", func(func()) {}, []string{"parameter 1", "func()"}},
		{"map of other types", func(map[string]int) {}, []string{"parameter 1", "map[string]int"}},
		{"map with int keys", func(map[int]any) {}, []string{"parameter 1", "map[int]interface {}"}},
		{"two params structs", func(fxGreetParams, fxOtherParams) {}, []string{"task.fxGreetParams", "task.fxOtherParams", "at most one params"}},
		{"struct and map params", func(context.Context, fxGreetParams, map[string]any) {}, []string{"at most one params"}},
		{"duplicate type", func(context.Context, context.Context) {}, []string{"same type context.Context"}},
		{"variadic", func(context.Context, ...*fxDB) {}, []string{"variadic"}},
		{"int result", func() (int, error) { return 0, nil }, []string{"first result type int"}},
		{"string result", func() string { return "" }, []string{"result type string"}},
		{"slice result", func() []map[string]any { return nil }, []string{"result type []map[string]interface {}"}},
		{"map with int keys result", func() map[int]string { return nil }, []string{"result type map[int]string"}},
		{"pointer to non-struct result", func() *int { return nil }, []string{"result type *int"}},
		{"second result not error", func() (map[string]any, string) { return nil, "" }, []string{"second result type string"}},
		{"three results", func() (map[string]any, error, error) { return nil, nil, nil }, []string{"3 results"}},
		{"bad default tag", func(fxBadDefaultParams) {}, []string{"parameter 1", "fxBadDefaultParams"}},
		{"time.Time params", func(time.Time) {}, []string{"want an object"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRegistry()
			err := r.Register("bad", tt.fn)
			require.Error(t, err)
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			_, ok := r.Lookup("bad")
			assert.False(t, ok, "a rejected function must not be registered")
		})
	}
}

func TestRegisterGoodSignatures(t *testing.T) {
	tests := map[string]any{
		"nothing":             func() {},
		"error only":          func(context.Context) error { return nil },
		"struct result":       func(fxGreetParams) fxGreetResult { return fxGreetResult{} },
		"pointer result":      func(*fxGreetParams) (*fxGreetResult, error) { return nil, nil },
		"typed map result":    func(map[string]any) map[string]int { return nil },
		"injectables":         func(*slog.Logger, fxScheduler, *fxDB, context.Context) {},
		"two struct pointers": func(*fxDB, *fxGreetParams) {}, // one may be provided; Bind decides
		"pointer and value":   func(*fxDB, fxGreetParams) {},
		"non-struct pointer":  func(*int) {},
		"method value":        (&fxDB{}).run,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			assert.NoError(t, NewRegistry().Register("ok", fn))
		})
	}
}

func (d *fxDB) run(context.Context) error { return nil }

func TestFunctionsSortedByName(t *testing.T) {
	r := NewRegistry()
	for _, n := range []string{"charlie", "alpha", "bravo"} {
		r.MustRegister(n, func() {})
	}
	var names []string
	for _, f := range r.Functions() {
		names = append(names, f.Name())
	}
	assert.Equal(t, []string{"alpha", "bravo", "charlie"}, names)
}

func TestRegistryConcurrentUse(t *testing.T) {
	r := NewRegistry()
	done := make(chan struct{})
	for i := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			name := fmt.Sprintf("fn_%d", i)
			assert.NoError(t, r.Register(name, func() {}))
			_, ok := r.Lookup(name)
			assert.True(t, ok)
			_ = r.Functions()
		}()
	}
	for range 8 {
		<-done
	}
	assert.Len(t, r.Functions(), 8)
}

func TestDefaultRegistry(t *testing.T) {
	name := "task_test_default_" + strings.ReplaceAll(t.Name(), "/", "_")
	require.NoError(t, Register(name, fxGreet, Description("via Register")))
	f, ok := Default.Lookup(name)
	require.True(t, ok)
	assert.Equal(t, "via Register", f.Description())
	assert.Error(t, Register(name, fxGreet), "duplicate in Default")

	mustName := name + "_must"
	MustRegister(mustName, fxGreet)
	_, ok = Default.Lookup(mustName)
	assert.True(t, ok)
	assert.PanicsWithError(t,
		fmt.Sprintf("task: register %q: a function with this name is already registered", mustName),
		func() { MustRegister(mustName, fxGreet) })
	assert.Panics(t, func() { MustRegister(name+"_bad", func(int) {}) })
}
