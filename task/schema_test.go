package task

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// fxSchemaJSON returns the binding's params schema as canonical JSON, the way
// the HTTP API would serve it.
func fxSchemaJSON(t *testing.T, b *Binding) string {
	t.Helper()
	data, err := json.Marshal(b.ParamsSchema())
	require.NoError(t, err)
	return string(data)
}

func TestParamsSchemaGreet(t *testing.T) {
	b := fxBind(t, fxGreet, nil)
	assert.JSONEq(t, `{
		"type": "object",
		"additionalProperties": false,
		"properties": {
			"name": {"type": "string", "default": "World", "description": "Who to greet"}
		}
	}`, fxSchemaJSON(t, b))
}

func TestParamsSchemaRequired(t *testing.T) {
	b := fxBind(t, func(fxMixedParams) {}, nil)
	s := b.ParamsSchema().(map[string]any)

	// Fields with a default or omitempty are optional, all others required
	// (huma alone would also require the fields with defaults).
	assert.Equal(t, []any{"count", "maybe"}, s["required"])
	assert.Equal(t, false, s["additionalProperties"])

	props := s["properties"].(map[string]any)
	assert.NotContains(t, props, "Ignored")
	assert.Equal(t, "How many", props["count"].(map[string]any)["description"])
	assert.Equal(t, 7.0, props["size"].(map[string]any)["default"])
	assert.Equal(t, 0.5, props["ratio"].(map[string]any)["default"])
	assert.Equal(t, []any{"a", "b"}, props["tags"].(map[string]any)["default"])

	// The nested struct is inlined, with the same required rule.
	in := props["inner"].(map[string]any)
	assert.Equal(t, "object", in["type"])
	assert.Equal(t, []any{"tag"}, in["required"])
	assert.Equal(t, false, in["additionalProperties"])
	assert.NotContains(t, fxSchemaJSON(t, b), "$ref")

	// Callers get their own copy.
	s["type"] = "mutated"
	assert.Equal(t, "object", b.ParamsSchema().(map[string]any)["type"])
}

type fxTreeNode struct {
	Value    int           `json:"value"`
	Children []*fxTreeNode `json:"children,omitempty"`
}

type fxTreeParams struct {
	Root fxTreeNode `json:"root" doc:"Top of the tree"`
}

func TestParamsSchemaRecursiveIsSelfContained(t *testing.T) {
	b := fxBind(t, func(fxTreeParams) {}, nil)
	s := b.ParamsSchema().(map[string]any)
	root := s["properties"].(map[string]any)["root"].(map[string]any)
	assert.Equal(t, "Top of the tree", root["description"])
	assert.Equal(t, "object", root["type"])

	// Every reference resolves inside the document.
	defs, _ := s["$defs"].(map[string]any)
	var check func(v any)
	check = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok {
				require.True(t, strings.HasPrefix(ref, "#/$defs/"), ref)
				assert.Contains(t, defs, strings.TrimPrefix(ref, "#/$defs/"))
			}
			for _, val := range x {
				check(val)
			}
		case []any:
			for _, val := range x {
				check(val)
			}
		}
	}
	check(s)
	assert.Contains(t, fxSchemaJSON(t, b), `"$ref":"#/$defs/`)

	// Recursive values still validate and decode.
	var got fxTreeParams
	b = fxBind(t, func(p fxTreeParams) { got = p }, nil)
	params := map[string]any{"root": map[string]any{"value": 1.0, "children": []any{
		map[string]any{"value": 2.0},
	}}}
	_, err := fxCall(t, b, params, nil)
	require.NoError(t, err)
	require.Len(t, got.Root.Children, 1)
	assert.Equal(t, 2, got.Root.Children[0].Value)

	errs := b.Validate(map[string]any{"root": map[string]any{"value": 1.0, "children": []any{
		map[string]any{"value": 2.5},
	}}}, true)
	require.Len(t, errs, 1)
	assert.Equal(t, "params.root.children[0].value", errs[0].Location)
}

func TestParamsSchemaSameNamedTypes(t *testing.T) {
	type Config struct {
		X string `json:"x"`
	}
	// Two distinct types both named Config in one params struct: huma's
	// default namer alone names both "Config" and panics on the clash.
	type localConfig = Config
	fn := func() any {
		type Config struct {
			Z bool `json:"z"`
		}
		type params struct {
			L localConfig `json:"l"`
			M Config      `json:"m"`
		}
		return func(params) {}
	}()
	b := fxBind(t, fn, nil)
	props := b.ParamsSchema().(map[string]any)["properties"].(map[string]any)
	assert.Contains(t, props["l"].(map[string]any)["properties"], "x")
	assert.Contains(t, props["m"].(map[string]any)["properties"], "z")
	assert.Empty(t, b.Validate(map[string]any{"l": map[string]any{"x": "a"}, "m": map[string]any{"z": true}}, false))
	errs := b.Validate(map[string]any{"l": map[string]any{"z": true}, "m": map[string]any{"z": true}}, true)
	require.Len(t, errs, 2) // l.z is unknown and l.x is missing
	assert.Equal(t, "params.l", errs[0].Location)
	assert.Equal(t, "params.l.z", errs[1].Location)
}

func TestParamsSchemaMapAndNone(t *testing.T) {
	assert.JSONEq(t, `{"type":"object","additionalProperties":true}`,
		fxSchemaJSON(t, fxBind(t, func(map[string]any) {}, nil)))
	assert.JSONEq(t, `{"type":"object","additionalProperties":false}`,
		fxSchemaJSON(t, fxBind(t, func() {}, nil)))
}

func TestApplyDefaultsLeavesInputAlone(t *testing.T) {
	ps, err := newParamsSchema(reflect.TypeFor[fxMixedParams]())
	require.NoError(t, err)
	in := map[string]any{"inner": map[string]any{}}
	out := applyDefaults(ps.registry, ps.lax, in).(map[string]any)
	assert.Equal(t, map[string]any{"inner": map[string]any{}}, in)
	assert.EqualValues(t, 3, out["inner"].(map[string]any)["level"])
	assert.EqualValues(t, 7, out["size"])
}
