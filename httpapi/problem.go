package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"
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

var slugs = map[int]string{
	400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
	405: "method-not-allowed", 409: "conflict", 413: "payload-too-large",
	415: "unsupported-media-type", 422: "validation-failed", 429: "too-many-requests",
	500: "internal", 503: "unavailable",
}

// newProblem builds a problem with the slug for its status.
func newProblem(status int, detail string) *Problem {
	slug, ok := slugs[status]
	if !ok {
		slug = strings.ToLower(strings.ReplaceAll(http.StatusText(status), " ", "-"))
	}
	return &Problem{Type: "urn:servicekit:error:" + slug, Title: http.StatusText(status), Status: status, Detail: detail}
}

// problemf is newProblem with formatting.
func problemf(status int, format string, args ...any) *Problem {
	return newProblem(status, fmt.Sprintf(format, args...))
}

func invalidULID(name, value string) *Problem {
	p := problemf(400, "%s %q is not a valid ULID (26 characters of Crockford base32)", name, value)
	p.Type = "urn:servicekit:error:invalid-ulid"
	return p
}

func validationFailed(detail string, fields ...FieldDetail) *Problem {
	p := newProblem(422, detail)
	p.Errors = fields
	return p
}

// hookHumaErrors makes huma's own errors (validation, malformed JSON, body
// too large) problems of our shape. huma exposes this as a package variable,
// so it is set once for the process.
func init() {
	huma.NewError = func(status int, msg string, errs ...error) huma.StatusError {
		p := newProblem(status, msg)
		for _, e := range errs {
			if e == nil {
				continue
			}
			var d huma.ErrorDetailer
			if errors.As(e, &d) {
				det := d.ErrorDetail()
				p.Errors = append(p.Errors, FieldDetail{Location: det.Location, Message: det.Message})
				continue
			}
			p.Errors = append(p.Errors, FieldDetail{Message: e.Error()})
		}
		switch {
		case status == 415 && len(p.Errors) > 0:
			p.Detail = p.Errors[0].Message + "; send Content-Type: application/json"
			p.Errors = nil
		case status == 422 && (msg == "" || msg == "validation failed"):
			p.Detail = "the request failed validation; see errors"
		case status == 400 && len(p.Errors) > 0 && p.Errors[0].Location == "body":
			p.Detail = "malformed JSON body: " + p.Errors[0].Message
			p.Errors = nil
		case status == 500:
			p.Detail = "internal error; the server log has the details under this request's id"
			p.Errors = nil
		}
		return p
	}
	huma.NewErrorWithContext = func(ctx huma.Context, status int, msg string, errs ...error) huma.StatusError {
		se := huma.NewError(status, msg, errs...)
		if p, ok := se.(*Problem); ok && ctx != nil {
			p.Instance = ctx.URL().Path
		}
		return se
	}
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
	json.NewEncoder(w).Encode(p)
}
