package task

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fxServices is a minimal stand-in for the service's injectables.
type fxServices map[reflect.Type]any

func (s fxServices) injectable(t reflect.Type) bool { _, ok := s[t]; return ok }

func (s fxServices) lookup(t reflect.Type) (reflect.Value, bool) {
	v, ok := s[t]
	if !ok {
		return reflect.Value{}, false
	}
	return reflect.ValueOf(v), true
}

type fxRecordingScheduler struct{ scheduled []string }

func (r *fxRecordingScheduler) Schedule(s string) { r.scheduled = append(r.scheduled, s) }

func newFxServices() fxServices {
	return fxServices{
		reflect.TypeFor[*slog.Logger]():    slog.New(slog.NewTextHandler(io.Discard, nil)),
		reflect.TypeFor[*fxDB]():           &fxDB{name: "main"},
		reflect.TypeFor[fxScheduler]():     &fxRecordingScheduler{},
		reflect.TypeFor[map[string]bool](): map[string]bool{},
	}
}

// fxBind registers fn in a fresh registry and binds it against svc.
func fxBind(t *testing.T, fn any, svc fxServices) *Binding {
	t.Helper()
	r := NewRegistry()
	require.NoError(t, r.Register("fn", fn))
	f, _ := r.Lookup("fn")
	b, err := f.Bind(svc.injectable)
	require.NoError(t, err)
	return b
}

func fxCall(t *testing.T, b *Binding, params map[string]any, svc fxServices) (string, error) {
	t.Helper()
	res, err := b.Call(context.Background(), params, svc.lookup)
	return string(res), err
}

func TestBindInjectablesInAnyOrder(t *testing.T) {
	svc := newFxServices()
	type got struct {
		log   *slog.Logger
		db    *fxDB
		sched fxScheduler
		name  string
		ctx   context.Context
	}
	var g got
	fn := func(p fxGreetParams, log *slog.Logger, ctx context.Context, db *fxDB, s fxScheduler) error {
		g = got{log, db, s, p.Name, ctx}
		return nil
	}
	b := fxBind(t, fn, svc)
	assert.Equal(t, []string{"*slog.Logger", "*task.fxDB", "task.fxScheduler"}, b.Injects())
	assert.Equal(t, "fn", b.Function().Name())

	ctx := context.WithValue(context.Background(), fxCtxKey{}, "v")
	res, err := b.Call(ctx, map[string]any{"name": "Ann"}, svc.lookup)
	require.NoError(t, err)
	assert.JSONEq(t, "null", string(res))
	assert.Same(t, svc[reflect.TypeFor[*slog.Logger]()], g.log)
	assert.Same(t, svc[reflect.TypeFor[*fxDB]()], g.db)
	assert.Same(t, svc[reflect.TypeFor[fxScheduler]()], g.sched)
	assert.Equal(t, "Ann", g.name)
	assert.Equal(t, "v", g.ctx.Value(fxCtxKey{}))

	// Same function, parameters shuffled.
	fn2 := func(s fxScheduler, db *fxDB, ctx context.Context, log *slog.Logger) {}
	b2 := fxBind(t, fn2, svc)
	assert.Equal(t, []string{"task.fxScheduler", "*task.fxDB", "*slog.Logger"}, b2.Injects())
}

func TestBindPointerStruct(t *testing.T) {
	svc := newFxServices()

	// Not provided: a pointer to a struct is the params.
	var got *fxGreetParams
	b := fxBind(t, func(p *fxGreetParams) { got = p }, svc)
	assert.Empty(t, b.Injects())
	_, err := fxCall(t, b, map[string]any{}, svc)
	require.NoError(t, err)
	require.NotNil(t, got)
	assert.Equal(t, "World", got.Name)

	// Provided: the same kind of parameter is injected, and the function
	// takes no params.
	var gotDB *fxDB
	b = fxBind(t, func(db *fxDB, p fxGreetParams) { gotDB = db }, svc)
	assert.Equal(t, []string{"*task.fxDB"}, b.Injects())
	_, err = fxCall(t, b, nil, svc)
	require.NoError(t, err)
	assert.Equal(t, "main", gotDB.name)

	// A provided struct pointer next to a *params struct.
	b = fxBind(t, func(db *fxDB, p *fxGreetParams) { gotDB = db; got = p }, svc)
	assert.Equal(t, []string{"*task.fxDB"}, b.Injects())
	_, err = fxCall(t, b, map[string]any{"name": "Zed"}, svc)
	require.NoError(t, err)
	assert.Equal(t, "Zed", got.Name)
}

func TestBindNotProvided(t *testing.T) {
	tests := []struct {
		name string
		fn   any
		want []string
	}{
		{"interface", func(context.Context, fxScheduler) {}, []string{"parameter 2 (task.fxScheduler)", "not provided"}},
		{"non-struct pointer", func(*int) {}, []string{"parameter 1 (*int)", "not provided"}},
		{"struct pointer next to params", func(*fxDB, fxGreetParams) {}, []string{"parameter 1 (*task.fxDB)", "not provided"}},
		{"two struct pointers", func(*fxDB, *fxGreetParams) {}, []string{"*task.fxDB", "*task.fxGreetParams", "at most one"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRegistry()
			require.NoError(t, r.Register("fn", tt.fn))
			f, _ := r.Lookup("fn")
			for _, inj := range []func(reflect.Type) bool{nil, fxServices{}.injectable} {
				_, err := f.Bind(inj)
				require.Error(t, err)
				assert.Contains(t, err.Error(), `"fn"`)
				for _, w := range tt.want {
					assert.Contains(t, err.Error(), w)
				}
			}
		})
	}
}

func TestCallMissingInjectedValue(t *testing.T) {
	b := fxBind(t, func(*fxDB) {}, newFxServices())
	_, err := b.Call(context.Background(), nil, fxServices{}.lookup)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "*task.fxDB")
	_, err = b.Call(context.Background(), nil, nil)
	assert.Error(t, err)
}

type fxCtxKey struct{}

func TestCallPassesContext(t *testing.T) {
	b := fxBind(t, func(ctx context.Context) (map[string]any, error) {
		return map[string]any{"v": ctx.Value(fxCtxKey{})}, ctx.Err()
	}, nil)
	ctx := context.WithValue(context.Background(), fxCtxKey{}, "hello")
	res, err := b.Call(ctx, nil, nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"v":"hello"}`, string(res))

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = b.Call(cancelled, nil, nil)
	assert.ErrorIs(t, err, context.Canceled)
}

func TestCallDefaults(t *testing.T) {
	b := fxBind(t, fxGreet, nil)
	for _, tt := range []struct {
		params map[string]any
		want   string
	}{
		{nil, "Hello, World!"},
		{map[string]any{}, "Hello, World!"},
		{map[string]any{"name": nil}, "Hello, World!"},
		{map[string]any{"name": "Bob"}, "Hello, Bob!"},
		// encoding/json matches keys case-insensitively; the default must not
		// shadow the value given under another case.
		{map[string]any{"Name": "Case"}, "Hello, Case!"},
	} {
		res, err := fxCall(t, b, tt.params, nil)
		require.NoError(t, err)
		assert.JSONEq(t, `{"message":"`+tt.want+`"}`, res, "params %v", tt.params)
	}
}

type fxMixedParams struct {
	Count   int      `json:"count" doc:"How many"`
	Label   string   `json:"label,omitempty"`
	Tags    []string `json:"tags" default:"[\"a\",\"b\"]"`
	Ratio   float64  `json:"ratio" default:"0.5"`
	Size    int      `json:"size" default:"7"`
	Maybe   *int     `json:"maybe"`
	Inner   fxInner  `json:"inner,omitempty"`
	Ignored string   `json:"-"`
}

type fxInner struct {
	Level int    `json:"level" default:"3"`
	Tag   string `json:"tag"`
}

func TestCallDefaultsByType(t *testing.T) {
	var got fxMixedParams
	b := fxBind(t, func(p fxMixedParams) { got = p }, nil)
	_, err := fxCall(t, b, map[string]any{
		"count": 2.0, "maybe": nil, "inner": map[string]any{"tag": "x"},
	}, nil)
	require.NoError(t, err)
	assert.Equal(t, fxMixedParams{
		Count: 2, Tags: []string{"a", "b"}, Ratio: 0.5, Size: 7,
		Inner: fxInner{Level: 3, Tag: "x"},
	}, got)
}

func TestValidateRequired(t *testing.T) {
	b := fxBind(t, func(fxMixedParams) {}, nil)

	errs := b.Validate(map[string]any{}, false)
	assert.Equal(t, []FieldError{
		{Location: "params.count", Message: "expected required property count to be present"},
		{Location: "params.maybe", Message: "expected required property maybe to be present"},
	}, errs)

	assert.Empty(t, b.Validate(map[string]any{}, true))
	assert.Empty(t, b.Validate(nil, true))
	assert.Empty(t, b.Validate(map[string]any{"count": 1, "maybe": nil}, false))

	// A required, non-nullable field given null is wrong in both modes.
	for _, partial := range []bool{false, true} {
		errs = b.Validate(map[string]any{"count": nil, "maybe": nil}, partial)
		require.Len(t, errs, 1, "partial=%v", partial)
		assert.Equal(t, "params.count", errs[0].Location)
	}

	// Nested objects are complete values even in partial mode.
	errs = b.Validate(map[string]any{"inner": map[string]any{}}, true)
	require.Len(t, errs, 1)
	assert.Equal(t, "params.inner", errs[0].Location)
	assert.Contains(t, errs[0].Message, "tag")
}

func TestValidateTypes(t *testing.T) {
	b := fxBind(t, func(fxMixedParams) {}, nil)
	base := func(kv ...any) map[string]any {
		m := map[string]any{"count": 1.0, "maybe": nil}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name   string
		params map[string]any
		loc    string
		msg    string
	}{
		{"string for int", base("count", "three"), "params.count", "integer"},
		{"fraction for int", base("count", 1.5), "params.count", "integer"},
		{"number for string", base("label", 5.0), "params.label", "string"},
		{"unknown key", base("bogus", true), "params.bogus", "unexpected property"},
		{"ignored field is unknown", base("Ignored", "x"), "params.Ignored", "unexpected property"},
		{"nested unknown key", base("inner", map[string]any{"tag": "t", "x": 1.0}), "params.inner.x", "unexpected property"},
		{"array item type", base("tags", []any{"a", 2.0}), "params.tags[1]", "string"},
		{"json.Number fraction", base("count", json.Number("2.5")), "params.count", "integer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, partial := range []bool{false, true} {
				errs := b.Validate(tt.params, partial)
				require.Len(t, errs, 1, "partial=%v: %v", partial, errs)
				assert.Equal(t, tt.loc, errs[0].Location)
				assert.Contains(t, errs[0].Message, tt.msg)
			}
			_, err := fxCall(t, b, tt.params, nil)
			var pe *ParamsError
			require.ErrorAs(t, err, &pe)
			assert.Equal(t, tt.loc, pe.Errors[0].Location)
		})
	}
}

func TestCallWholeNumbers(t *testing.T) {
	var got fxMixedParams
	b := fxBind(t, func(p fxMixedParams) { got = p }, nil)

	_, err := fxCall(t, b, map[string]any{"count": float64(3), "maybe": 4.0}, nil)
	require.NoError(t, err)
	assert.Equal(t, 3, got.Count)
	require.NotNil(t, got.Maybe)
	assert.Equal(t, 4, *got.Maybe)

	// json.Number keeps precision a float64 would lose.
	_, err = fxCall(t, b, map[string]any{"count": json.Number("9007199254740993"), "maybe": nil}, nil)
	require.NoError(t, err)
	assert.Equal(t, 9007199254740993, got.Count)
}

func TestNoParams(t *testing.T) {
	b := fxBind(t, func(context.Context) {}, nil)
	assert.Empty(t, b.Validate(nil, false))
	assert.Empty(t, b.Validate(map[string]any{}, false))
	errs := b.Validate(map[string]any{"x": 1.0}, true)
	require.Len(t, errs, 1)
	assert.Equal(t, "params.x", errs[0].Location)

	_, err := fxCall(t, b, map[string]any{"x": 1.0}, nil)
	var pe *ParamsError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, pe.Error(), "params.x")
}

func TestMapParams(t *testing.T) {
	var got map[string]any
	b := fxBind(t, func(p map[string]any) (map[string]any, error) { got = p; return p, nil }, nil)
	assert.Empty(t, b.Validate(map[string]any{"anything": []any{1.0}, "x": "y"}, false))
	res, err := fxCall(t, b, map[string]any{"a": 1.0, "b": map[string]any{"c": true}}, nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{"a":1,"b":{"c":true}}`, res)
	assert.Equal(t, map[string]any{"a": 1.0, "b": map[string]any{"c": true}}, got)

	res, err = fxCall(t, b, nil, nil)
	require.NoError(t, err)
	assert.JSONEq(t, `{}`, res)
}

type fxStringer struct{}

func (fxStringer) MarshalJSON() ([]byte, error) { return []byte(`"not an object"`), nil }

func TestCallResults(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		fn      any
		want    string
		wantErr error
	}{
		{"map and nil error", fxGreet, `{"message":"Hello, World!"}`, nil},
		{"struct value", func() fxGreetResult { return fxGreetResult{"hi"} }, `{"message":"hi"}`, nil},
		{"struct pointer and error", func() (*fxGreetResult, error) { return &fxGreetResult{"p"}, nil }, `{"message":"p"}`, nil},
		{"nil pointer", func() (*fxGreetResult, error) { return nil, nil }, `null`, nil},
		{"nil map", func() map[string]any { return nil }, `null`, nil},
		{"typed map", func() map[string]int { return map[string]int{"n": 1} }, `{"n":1}`, nil},
		{"error only nil", func() error { return nil }, `null`, nil},
		{"nothing", func() {}, `null`, nil},
		{"error only", func() error { return errBoom }, "", errBoom},
		{"value and error", func() (map[string]any, error) { return map[string]any{"x": 1}, errBoom }, "", errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := fxBind(t, tt.fn, nil)
			res, err := b.Call(context.Background(), nil, nil)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
				assert.Nil(t, res)
				return
			}
			require.NoError(t, err)
			assert.JSONEq(t, tt.want, string(res))
		})
	}

	// A result whose MarshalJSON yields a non-object is rejected at run time.
	type wrapped struct{ fxStringer }
	b := fxBind(t, func() wrapped { return wrapped{} }, nil)
	_, err := b.Call(context.Background(), nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "want a JSON object")
}

func fxPanickyTask(context.Context) error {
	var m map[string]int
	m["boom"] = 1 // assignment to entry in nil map
	return nil
}

func TestCallPanic(t *testing.T) {
	b := fxBind(t, fxPanickyTask, nil)
	res, err := b.Call(context.Background(), nil, nil)
	assert.Nil(t, res)
	var pe *PanicError
	require.ErrorAs(t, err, &pe)
	assert.Contains(t, pe.Error(), "panic: assignment to entry in nil map")
	assert.Contains(t, pe.Stack, "task.fxPanickyTask")
	assert.Contains(t, pe.Stack, "binding_test.go")

	b = fxBind(t, func() { panic("plain value") }, nil)
	_, err = b.Call(context.Background(), nil, nil)
	require.ErrorAs(t, err, &pe)
	assert.Equal(t, "plain value", pe.Value)
	assert.Equal(t, "panic: plain value", pe.Error())
	assert.NoError(t, pe.Unwrap())
}

func TestCallConcurrent(t *testing.T) {
	svc := newFxServices()
	b := fxBind(t, func(ctx context.Context, p fxGreetParams, log *slog.Logger) (fxGreetResult, error) {
		return fxGreetResult{Message: p.Name}, nil
	}, svc)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			name := strings.Repeat("x", i)
			params := map[string]any{}
			if i > 0 {
				params["name"] = name
			} else {
				name = "World"
			}
			assert.Empty(t, b.Validate(params, false))
			res, err := b.Call(context.Background(), params, svc.lookup)
			assert.NoError(t, err)
			assert.JSONEq(t, `{"message":"`+name+`"}`, string(res))
			_ = b.ParamsSchema()
		})
	}
	wg.Wait()
}

func TestCallDoesNotModifyParams(t *testing.T) {
	b := fxBind(t, func(fxMixedParams) {}, nil)
	inner := map[string]any{"tag": "x"}
	params := map[string]any{"count": 1.0, "maybe": nil, "inner": inner}
	_, err := fxCall(t, b, params, nil)
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"count": 1.0, "maybe": nil, "inner": map[string]any{"tag": "x"}}, params)
}
