package httpapi

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// FuzzJSONErrorPosition: whatever the body, jsonFormat decodes it as
// encoding/json does, and a syntax error names a line and column inside
// the body.
func FuzzJSONErrorPosition(f *testing.F) {
	for _, s := range []string{`{"a":1}`, "{\n\"a\":,\n}", `{"a":`, "", " ", "\n\n[1,,2]", `"\u12"`, "{\"a\":\"\xff\"}", "[1]\n]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got, want any
		err := jsonFormat.Unmarshal(data, &got)
		werr := json.Unmarshal(data, &want)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: %v, encoding/json %v", data, err, werr)
		}
		if werr == nil {
			return
		}
		var line, col int
		msg := err.Error()
		if i := strings.Index(msg, "line "); i >= 0 {
			fmt.Sscanf(msg[i:], "line %d, column %d", &line, &col)
		}
		lines := strings.Split(string(data), "\n")
		if line < 1 || line > len(lines) || col < 1 || col > len(lines[line-1])+1 {
			t.Fatalf("%q: %q points outside the body", data, msg)
		}
	})
}

func TestJSONErrorPosition(t *testing.T) {
	for in, want := range map[string]string{
		"{\n  \"a\": 1,,\n}":    "line 2, column 10: invalid character ','",
		"[1, 2,\n 3 4]":         "line 2, column 4: invalid character '4'",
		"{\"a\": [1, 2\n\n":     "the JSON ends early, at line 1, column 12",
		"":                      "the JSON ends early, at line 1, column 1",
		"{\"k\": tru}":          "line 1, column 10: invalid character '}'",
		"{\"é\": 1,,}":          "line 1, column 9: invalid character ','",
		"\xef\xbb\xbf{\"a\":1}": "line 1, column 1: invalid character",
	} {
		var v any
		if err := jsonFormat.Unmarshal([]byte(in), &v); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%q: %v, want %q…", in, err, want)
		}
	}
}
