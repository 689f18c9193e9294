package httpapi

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/validation"
	"github.com/hbollon/go-edlib"
)

// Problem is an RFC 9457 problem details body. Every error this API
// returns is one, including the router's own 404 and 405.
type Problem struct {
	Type     string        `json:"type" doc:"urn:servicekit:error:<slug>"`
	Title    string        `json:"title"`
	Status   int           `json:"status"`
	Detail   string        `json:"detail,omitempty"`
	Instance string        `json:"instance,omitempty"`
	Errors   []FieldDetail `json:"errors,omitempty"`

	header http.Header
	// fromFields marks a detail that only sums up Errors, so it is written
	// again when a transformer improves a field's message.
	fromFields bool
}

// FieldDetail names one invalid input.
type FieldDetail struct {
	Location string `json:"location,omitempty"`
	Message  string `json:"message"`
}

func (p *Problem) Error() string  { return p.Detail }
func (p *Problem) GetStatus() int { return p.Status }

// ContentType makes huma send application/problem+json.
func (p *Problem) ContentType(string) string { return "application/problem+json" }

// GetHeaders lets a problem carry headers (Retry-After, WWW-Authenticate, Allow).
func (p *Problem) GetHeaders() http.Header { return p.header }

// slugs names the problem type of each status; README.md lists them for
// users, with invalid-ulid, the one slug that is not a status's.
var slugs = map[int]string{
	400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
	405: "method-not-allowed", 409: "conflict", 413: "payload-too-large",
	415: "unsupported-media-type", 422: "validation-failed", 429: "too-many-requests",
	500: "internal", 503: "unavailable",
}

// newProblem builds a problem with the slug for its status.
func newProblem(status int, detail string) *Problem {
	p := &Problem{Detail: detail}
	p.setStatus(status)
	return p
}

func (p *Problem) setStatus(status int) {
	slug, ok := slugs[status]
	if !ok {
		slug = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "-"))
	}
	p.Type, p.Title, p.Status = "urn:servicekit:error:"+slug, http.StatusText(status), status
}

// problemf is newProblem with formatting.
func problemf(status int, format string, args ...any) *Problem {
	return newProblem(status, fmt.Sprintf(format, args...))
}

// invalidULID says what is wrong with the id, since "not a ULID" alone
// leaves the reader to count characters.
func invalidULID(name, value string) *Problem {
	why := "26 characters of Crockford base32, like 01ARZ3NDEKTSV4RRFFQ69G5FAV"
	if n := len(value); n != 26 {
		why = fmt.Sprintf("it has %d characters; a ULID has 26 of Crockford base32, like 01ARZ3NDEKTSV4RRFFQ69G5FAV", n)
	}
	p := problemf(400, "%s %q is not a valid ULID (%s)", name, value, why)
	p.Type = "urn:servicekit:error:invalid-ulid"
	return p
}

func validationFailed(detail string, fields ...FieldDetail) *Problem {
	p := newProblem(422, detail)
	p.Errors = fields
	return p
}

// sumUp makes the detail from the field errors, so a client that shows only
// title and detail (the CLI's one line) still says which field to fix.
func (p *Problem) sumUp() {
	if len(p.Errors) == 0 {
		return
	}
	first := p.Errors[0]
	d := first.Message
	if first.Location != "" {
		d = first.Location + ": " + d
	}
	if n := len(p.Errors) - 1; n > 0 {
		d += fmt.Sprintf(" (and %d more; see errors)", n)
	}
	p.Detail, p.fromFields = d, true
}

// parameterError reports whether a location is outside the body: a query,
// path or header value. SPEC §3 makes a bad one a 400 bad-request, keeping
// 422 for bodies.
func parameterError(loc string) bool {
	for _, in := range []string{"query.", "path.", "header.", "cookie."} {
		if strings.HasPrefix(loc, in) {
			return true
		}
	}
	return false
}

// describe renders a received value for "…, got …", short enough for one line.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		if r := []rune(v); len(r) > 40 {
			v = string(r[:37]) + "..."
		}
		return "string " + quoteJSON(v)
	case bool:
		return fmt.Sprintf("boolean %v", v)
	case float64, float32, int, int64, int32:
		return fmt.Sprintf("number %v", v)
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("%v", v)
}

// quoteJSON quotes s as JSON would, without escaping <, > and &.
func quoteJSON(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// fieldDetail turns one of huma's validation errors into ours, saying what
// was received and locating a missing property at the property itself
// (body.command) rather than at the object that lacks it (body).
func fieldDetail(d *huma.ErrorDetail) FieldDetail {
	loc, msg := d.Location, d.Message
	pre, post, _ := strings.Cut(validation.MsgExpectedRequiredProperty, "%s")
	if rest, ok := strings.CutPrefix(msg, pre); ok && strings.HasSuffix(rest, post) {
		missing := strings.TrimSuffix(rest, post)
		if loc == "" {
			loc = "body"
		}
		return FieldDetail{Location: loc + "." + missing, Message: "required, but missing"}
	}
	switch {
	case parameterError(loc) && d.Value != nil:
		// A parameter arrives as text, so what was sent is that text.
		msg = strings.Replace(msg, "invalid ", "expected ", 1) + ", got " + quoteJSON(fmt.Sprint(d.Value))
	case (loc == "body" || strings.HasPrefix(loc, "body.")) && strings.HasPrefix(msg, "expected ") && !strings.Contains(msg, " to be present"):
		msg += ", got " + describe(d.Value)
	}
	return FieldDetail{Location: loc, Message: msg}
}

// init makes huma's own errors (validation, malformed JSON, body
// too large) problems of our shape. huma exposes this as a package variable,
// so it is set once for the process. What needs the request (instance, the
// schema for "did you mean") is added by [Server.finishProblem].
func init() {
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		p := newProblem(status, msg)
		for _, e := range errs {
			if e == nil {
				continue
			}
			var det huma.ErrorDetailer
			if errors.As(e, &det) {
				p.Errors = append(p.Errors, fieldDetail(det.ErrorDetail()))
				continue
			}
			p.Errors = append(p.Errors, FieldDetail{Message: e.Error()})
		}
		if status == 422 && len(p.Errors) > 0 {
			params := true
			for _, f := range p.Errors {
				params = params && parameterError(f.Location)
			}
			if params {
				p.setStatus(400)
			}
		}
		switch {
		case p.Status == 415 && len(p.Errors) > 0:
			p.Detail = p.Errors[0].Message + "; send Content-Type: application/json"
			p.Errors = nil
		case p.Status == 400 && len(p.Errors) > 0 && p.Errors[0].Location == "body":
			p.Detail = "malformed JSON body: " + p.Errors[0].Message
			p.Errors = nil
		case p.Status == 400 && msg == "request body is required":
			p.Detail = "request body is required: send a JSON object (its schema is in /openapi.json)"
		case p.Status == 500:
			p.Detail = "internal error; the server log has the details under this request's id"
			p.Errors = nil
		case (p.Status == 400 || p.Status == 422) && len(p.Errors) > 0 && (msg == "" || msg == "validation failed"):
			p.sumUp()
		}
		return p
	}
}

// jsonFormat is the API's JSON, for application/json and every +json type.
// Output keeps <, > and & as they are, as huma's default does: a detail
// reading "X-API-Key: <key>" must not arrive as \u003ckey\u003e, and
// writeProblem uses it for the same reason. Input errors name the line and
// column, which a byte offset into a pasted curl body does not help find.
var jsonFormat = huma.Format{
	Marshal: func(w io.Writer, v any) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return enc.Encode(v)
	},
	Unmarshal: func(data []byte, v any) error {
		err := json.Unmarshal(data, v)
		var se *json.SyntaxError
		if errors.As(err, &se) {
			if se.Error() == "unexpected end of JSON input" {
				line, col := position(data, int64(len(bytes.TrimRight(data, " \t\r\n"))))
				return fmt.Errorf("the JSON ends early, at line %d, column %d: is a closing }, ] or \" missing?", line, col)
			}
			line, col := position(data, se.Offset-1) // the offset is just past the offending byte
			return fmt.Errorf("line %d, column %d: %s", line, col, se.Error())
		}
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			line, col := position(data, te.Offset)
			return fmt.Errorf("line %d, column %d: %s: expected %s, got %s", line, col, te.Field, te.Type, te.Value)
		}
		return err
	},
}

// position turns the offset of a byte into its 1-based line and column,
// counting characters as an editor does, not bytes.
func position(data []byte, off int64) (line, col int) {
	off = min(max(off, 0), int64(len(data)))
	line, col = 1, 1
	for _, b := range string(data[:off]) {
		if b == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}

// writeProblem writes p outside huma (middleware, router fallbacks).
func writeProblem(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" {
		p.Instance = r.URL.Path
	}
	for k, v := range p.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	jsonFormat.Marshal(w, p)
}

// finishProblem is a huma transformer: it completes every problem an
// operation answers with what only the request knows. Handlers and huma's
// validation build problems without the path, so instance is set here once
// instead of at each of them; and an unexpected property gets the nearest
// property the body's schema has.
func (s *Server) finishProblem(ctx huma.Context, _ string, v any) (any, error) {
	p, ok := v.(*Problem)
	if !ok {
		return v, nil
	}
	if p.Instance == "" {
		p.Instance = ctx.URL().Path
	}
	improved := false
	for i, f := range p.Errors {
		if f.Message != validation.MsgUnexpectedProperty {
			continue
		}
		if near := s.nearestProperty(ctx.Operation(), f.Location); near != "" {
			p.Errors[i].Message += "; did you mean " + near + "?"
			improved = true
		}
	}
	if improved {
		// A misspelt property usually explains the rest ({"comand": …} also
		// lacks command), so the guess leads the list and the detail.
		slices.SortStableFunc(p.Errors, func(a, b FieldDetail) int {
			return cmp.Compare(guessRank(a), guessRank(b))
		})
		if p.fromFields {
			p.sumUp()
		}
	}
	return p, nil
}

// guessRank orders field errors: those with a guess first.
func guessRank(f FieldDetail) int {
	if strings.Contains(f.Message, "; did you mean ") {
		return 0
	}
	return 1
}

// nearestProperty finds the property of the request body's schema closest
// to the unknown one at loc (body.timeout → timeout_seconds), or "".
func (s *Server) nearestProperty(op *huma.Operation, loc string) string {
	segs := strings.Split(loc, ".")
	if len(segs) < 2 || segs[0] != "body" || op == nil || op.RequestBody == nil {
		return ""
	}
	mt := op.RequestBody.Content["application/json"]
	if mt == nil || mt.Schema == nil {
		return ""
	}
	reg := s.api.OpenAPI().Components.Schemas
	sc := mt.Schema
	for _, seg := range segs[1 : len(segs)-1] {
		if sc = deref(reg, sc); sc == nil {
			return ""
		}
		switch {
		case sc.Properties[seg] != nil:
			sc = sc.Properties[seg]
		case sc.Items != nil:
			sc = sc.Items
		default:
			return ""
		}
	}
	if sc = deref(reg, sc); sc == nil {
		return ""
	}
	return nearest(segs[len(segs)-1], slices.Collect(maps.Keys(sc.Properties)))
}

func deref(reg huma.Registry, sc *huma.Schema) *huma.Schema {
	if sc != nil && sc.Ref != "" {
		return reg.SchemaFromRef(sc.Ref)
	}
	return sc
}

// nearest returns the candidate most like name, or "" when none is close.
// Jaro-Winkler weighs a shared beginning, so it finds both a typo
// (comand → command) and a shortened name (timeout → timeout_seconds),
// which an edit distance would score as eight edits away.
func nearest(name string, candidates []string) string {
	best, score := "", float32(0.8)
	slices.Sort(candidates) // ties go to the first name, whatever the map order
	for _, c := range candidates {
		if s := edlib.JaroWinklerSimilarity(strings.ToLower(name), strings.ToLower(c)); s > score {
			best, score = c, s
		}
	}
	return best
}
