package task

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/danielgtaylor/huma/v2"
)

// defsPrefix is where the huma registry points its $refs. Using the JSON
// Schema "$defs" location (rather than OpenAPI's #/components/schemas/) means
// the rare references that cannot be inlined (recursive types) resolve
// within the params schema document itself.
const defsPrefix = "#/$defs/"

// paramsSchema is the JSON Schema of a function's params object, built with
// huma so that it is the same dialect, and validated by the same code, as the
// HTTP API that documents it.
type paramsSchema struct {
	registry huma.Registry
	// lax is the top-level schema with "required" removed. Validation always
	// runs against it and checks the top-level required names itself, which
	// serves partial validation and yields "params.<name>" locations for
	// missing fields (huma reports them at the parent object).
	lax      *huma.Schema
	required []string
	// doc is the self-contained JSON encoding served as params_schema.
	doc []byte
}

// newParamsSchema builds the schema for params type t: nil (the function
// takes no params, so only {} is accepted), map[string]any (any object), or a
// struct or pointer to struct.
func newParamsSchema(t reflect.Type) (ps *paramsSchema, err error) {
	// huma reports bad struct tags (e.g. an unparsable default) by panicking.
	defer func() {
		if v := recover(); v != nil {
			ps, err = nil, fmt.Errorf("params type %s: %v", t, v)
		}
	}()

	namer := newUniqueNamer()
	reg := huma.NewMapRegistry(defsPrefix, namer.name)
	var root *huma.Schema
	rootName := ""
	switch {
	case t == nil:
		root = &huma.Schema{Type: huma.TypeObject, AdditionalProperties: false, Properties: map[string]*huma.Schema{}}
	case isParamsMap(t):
		root = &huma.Schema{Type: huma.TypeObject, AdditionalProperties: true}
	default:
		st := t
		if st.Kind() == reflect.Pointer {
			st = st.Elem()
		}
		if st.Kind() != reflect.Struct {
			return nil, fmt.Errorf("params type %s: want a struct, a pointer to a struct or map[string]any", t)
		}
		root = reg.Schema(st, false, "Params")
		for root.Ref != "" {
			root = reg.SchemaFromRef(root.Ref)
		}
		if root.Type != huma.TypeObject {
			// E.g. time.Time or a type with its own MarshalText: its schema is
			// a string, which a params object can never be.
			return nil, fmt.Errorf("params type %s has a %q schema, want an object", t, root.Type)
		}
		rootName = namer.name(st, "Params")
	}

	seen := make(map[*huma.Schema]bool)
	fixRequired(root, seen)
	for _, s := range reg.Map() {
		fixRequired(s, seen)
	}
	root.PrecomputeMessages()

	doc, err := document(root, rootName, reg)
	if err != nil {
		return nil, fmt.Errorf("params type %s: encoding schema: %w", t, err)
	}

	lax := *root
	lax.Required = nil
	lax.PrecomputeMessages()
	return &paramsSchema{registry: reg, lax: &lax, required: slices.Clone(root.Required), doc: doc}, nil
}

// fixRequired applies servicekit's rule for required fields to every object
// schema reachable from s: a field is optional if it has a default or is
// omitempty, and required otherwise. huma already treats omitempty (and
// omitzero) as optional but keeps fields with a default tag required; a
// default that can never take effect would be pointless, so those are made
// optional here.
func fixRequired(s *huma.Schema, seen map[*huma.Schema]bool) {
	if s == nil || seen[s] {
		return
	}
	seen[s] = true
	if len(s.Required) > 0 {
		kept := s.Required[:0:0]
		for _, name := range s.Required {
			if p := s.Properties[name]; p == nil || p.Default == nil {
				kept = append(kept, name)
			}
		}
		if len(kept) != len(s.Required) {
			if len(kept) == 0 {
				kept = nil
			}
			s.Required = kept
			// Rebuilds the lookup table huma validates "required" with.
			s.PrecomputeMessages()
		}
	}
	for _, p := range s.Properties {
		fixRequired(p, seen)
	}
	fixRequired(s.Items, seen)
	if ap, ok := s.AdditionalProperties.(*huma.Schema); ok {
		fixRequired(ap, seen)
	}
	for _, sub := range s.OneOf {
		fixRequired(sub, seen)
	}
	for _, sub := range s.AnyOf {
		fixRequired(sub, seen)
	}
	for _, sub := range s.AllOf {
		fixRequired(sub, seen)
	}
	fixRequired(s.Not, seen)
}

// uniqueNamer wraps huma.DefaultSchemaNamer, which names types without their
// package and so makes the registry panic when a params struct uses two
// types that share a name (say a.Config and b.Config). Later types get a
// numeric suffix instead.
type uniqueNamer struct {
	byType map[reflect.Type]string
	owner  map[string]reflect.Type
}

func newUniqueNamer() *uniqueNamer {
	return &uniqueNamer{byType: map[reflect.Type]string{}, owner: map[string]reflect.Type{}}
}

func (n *uniqueNamer) name(t reflect.Type, hint string) string {
	base := huma.DefaultSchemaNamer(t, hint)
	dt := t
	for dt.Kind() == reflect.Pointer {
		dt = dt.Elem()
	}
	if dt.Kind() != reflect.Struct {
		// Only structs are stored in the registry by name.
		return base
	}
	if name, ok := n.byType[dt]; ok {
		return name
	}
	name := base
	for i := 2; n.owner[name] != nil; i++ {
		name = base + strconv.Itoa(i)
	}
	n.byType[dt] = name
	n.owner[name] = dt
	return name
}

// document renders root as a self-contained JSON Schema: references to
// registry schemas are inlined, so clients see one plain object, except
// where a type refers to itself; those stay references into a "$defs"
// section carried in the document.
func document(root *huma.Schema, rootName string, reg huma.Registry) ([]byte, error) {
	defs := make(map[string]any)
	for name, s := range reg.Map() {
		v, err := toJSONValue(s)
		if err != nil {
			return nil, err
		}
		defs[name] = v
	}
	rv, err := toJSONValue(root)
	if err != nil {
		return nil, err
	}

	in := &inliner{defs: defs, needed: map[string]bool{}}
	var stack []string
	if rootName != "" {
		stack = []string{rootName}
	}
	out, _ := in.walk(rv, stack).(map[string]any)

	emitted := make(map[string]any)
	for {
		var pending []string
		for name := range in.needed {
			if _, done := emitted[name]; !done {
				pending = append(pending, name)
			}
		}
		if len(pending) == 0 {
			break
		}
		sort.Strings(pending)
		for _, name := range pending {
			emitted[name] = in.walk(defs[name], []string{name})
		}
	}
	if len(emitted) > 0 {
		out["$defs"] = emitted
	}
	return json.Marshal(out)
}

func toJSONValue(v any) (any, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}

type inliner struct {
	defs   map[string]any
	needed map[string]bool
}

// nonSchemaKeys hold instance data rather than subschemas; a "$ref" key
// inside a default value must be left alone.
var nonSchemaKeys = map[string]bool{"default": true, "examples": true, "enum": true, "const": true}

// walk returns a copy of v with references replaced by the referenced
// schema. stack holds the definitions being inlined on the current path, so
// a recursive reference is kept (and its definition recorded as needed)
// instead of expanding forever.
func (in *inliner) walk(v any, stack []string) any {
	switch x := v.(type) {
	case map[string]any:
		if ref, ok := x["$ref"].(string); ok && strings.HasPrefix(ref, defsPrefix) {
			name := ref[len(defsPrefix):]
			if def, ok := in.defs[name]; ok {
				if slices.Contains(stack, name) {
					in.needed[name] = true
				} else {
					out, _ := in.walk(def, append(slices.Clip(stack), name)).(map[string]any)
					// huma puts field-level keywords (description, default…)
					// next to the $ref; they override the type's own.
					for k, val := range x {
						if k != "$ref" {
							out[k] = in.walkKey(k, val, stack)
						}
					}
					return out
				}
			}
		}
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = in.walkKey(k, val, stack)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = in.walk(val, stack)
		}
		return out
	}
	return v
}

func (in *inliner) walkKey(k string, v any, stack []string) any {
	if nonSchemaKeys[k] {
		return v
	}
	if k == "properties" {
		// Keys here are property names, values are schemas.
		if props, ok := v.(map[string]any); ok {
			out := make(map[string]any, len(props))
			for name, p := range props {
				out[name] = in.walk(p, stack)
			}
			return out
		}
	}
	return in.walk(v, stack)
}

// resolve follows $refs to the registry's schema.
func resolve(reg huma.Registry, s *huma.Schema) *huma.Schema {
	for s != nil && s.Ref != "" {
		s = reg.SchemaFromRef(s.Ref)
	}
	return s
}

// applyDefaults returns a copy of v (never modifying it) in which every
// object property that is missing or null and has a default in s is set to
// that default, recursing into nested objects and arrays. Treating null like
// absence lets a caller clear an override (e.g. in merged params) and get the
// documented default rather than the Go zero value. Keys are matched
// case-insensitively, like encoding/json and huma's validator, so
// {"Name": "x"} does not also get a default "name" that would override it
// when decoding.
func applyDefaults(reg huma.Registry, s *huma.Schema, v any) any {
	s = resolve(reg, s)
	if s == nil {
		return v
	}
	switch x := v.(type) {
	case map[string]any:
		ap, _ := s.AdditionalProperties.(*huma.Schema)
		if len(s.Properties) == 0 && ap == nil {
			return x
		}
		out := maps.Clone(x)
		if out == nil {
			out = map[string]any{}
		}
		for name, ps := range s.Properties {
			key, ok := findKey(out, name)
			if !ok || out[key] == nil {
				if ps.Default != nil {
					if !ok {
						key = name
					}
					out[key] = ps.Default
				}
				continue
			}
			out[key] = applyDefaults(reg, ps, out[key])
		}
		if ap != nil {
			for k, val := range out {
				if _, ok := findKey(s.Properties, k); !ok {
					out[k] = applyDefaults(reg, ap, val)
				}
			}
		}
		return out
	case []any:
		if s.Items == nil {
			return x
		}
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = applyDefaults(reg, s.Items, item)
		}
		return out
	}
	return v
}

// findKey looks name up in m, preferring an exact match and otherwise
// accepting a case-insensitive one, the way encoding/json matches keys.
func findKey[V any](m map[string]V, name string) (string, bool) {
	if _, ok := m[name]; ok {
		return name, true
	}
	if huma.ValidateStrictCasing {
		return "", false
	}
	for k := range m {
		if strings.EqualFold(k, name) {
			return k, true
		}
	}
	return "", false
}

// normalizeNumbers returns a copy of v with json.Number values (from a
// decoder using UseNumber) turned into float64, because huma's validator only
// recognises Go numeric types. It is used for validation only; decoding uses
// the original values, so the function gets the full precision.
func normalizeNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return f
		}
	case map[string]any:
		if x == nil {
			return x
		}
		out := make(map[string]any, len(x))
		for k, val := range x {
			out[k] = normalizeNumbers(val)
		}
		return out
	case []any:
		if x == nil {
			return x
		}
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = normalizeNumbers(val)
		}
		return out
	}
	return v
}
