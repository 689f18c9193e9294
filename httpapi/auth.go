package httpapi

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// Auth is the API key configuration. With no keys the API is open.
type Auth struct {
	// Keys are the accepted API keys.
	Keys []string
	// Header is the header carrying a key; default X-API-Key.
	// "Authorization: Bearer <key>" is always accepted too (Prometheus sends that).
	Header string
}

// ParseKeys splits a comma-separated key list, dropping blanks.
func ParseKeys(list string) []string {
	var keys []string
	for k := range strings.SplitSeq(list, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// ErrNoUsableKey is the error of ParseKeyList and ReadKeyFile when keys
// were configured but none is left after blanks and comments: starting
// without authentication then would be the opposite of what was asked.
var ErrNoUsableKey = errors.New("no usable API key")

// ParseKeyList is ParseKeys for a list that was given on purpose (the
// variable SERVICEKIT_API_KEYS is set): a list that yields no key, like
// " , ", fails with ErrNoUsableKey instead of meaning "no auth", and a key
// that cannot be sent in a header fails too. Errors name a key by its
// position, never by its value.
func ParseKeyList(list string) ([]string, error) {
	var keys []string
	for i, k := range strings.Split(list, ",") {
		if k = strings.TrimSpace(k); k == "" {
			continue
		}
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("key %d of the list: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: the list %q holds only blanks and commas; set at least one key, or unset the variable to run without keys", ErrNoUsableKey, list)
	}
	return keys, nil
}

// checkKey accepts a key made of visible ASCII characters, the ones a
// header value carries unchanged; anything else could never match.
func checkKey(k string) error {
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x21 || c > 0x7e {
			return fmt.Errorf("a key may hold only visible ASCII characters; this one has a space, a control or a non-ASCII character at byte %d", i+1)
		}
	}
	return nil
}

// ReadKeyFile reads one key a line; blank lines and lines starting with #
// are ignored. A file that holds no key fails with ErrNoUsableKey.
func ReadKeyFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("API key file: %w", err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := checkKey(line); err != nil {
			return nil, fmt.Errorf("API key file %s, line %d: %w", path, n, err)
		}
		keys = append(keys, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("API key file %s: %w", path, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: API key file %s holds no keys (only blank lines and # comments)", ErrNoUsableKey, path)
	}
	return keys, nil
}

// openPath reports whether a path is served without a key: health for
// probes, the API description, and the console's static files (the
// console asks for a key itself when the API answers 401).
func openPath(p string) bool {
	switch p {
	case "/health", "/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml", "/docs", "/":
		return true
	}
	return strings.HasPrefix(p, "/ui/") || strings.HasPrefix(p, "/schemas/")
}

// authenticate refuses requests without a valid key when keys are set.
// Keys are compared as SHA-256 digests with subtle.ConstantTimeCompare and
// every key is checked, so timing tells nothing about a key's length,
// prefix or position in the list. Keys are never logged.
//
// Open paths are served whatever the key, but a valid key is still
// noted in the request context (see keyed), so /health can show its
// details to those who have one and only states to everyone else.
func (s *Server) authenticate(next http.Handler) http.Handler {
	a := s.d.Auth
	if len(a.Keys) == 0 {
		return next
	}
	header := a.Header
	if header == "" {
		header = "X-API-Key"
	}
	digests := make([][32]byte, len(a.Keys))
	for i, k := range a.Keys {
		digests[i] = sha256.Sum256([]byte(k))
	}
	valid := func(key string) bool {
		d := sha256.Sum256([]byte(key))
		match := 0
		for i := range digests {
			match |= subtle.ConstantTimeCompare(d[:], digests[i][:])
		}
		return match == 1
	}
	challenge := fmt.Sprintf(`Bearer realm="servicekit", ApiKey header=%q`, header)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := requestKey(r, header)
		if openPath(r.URL.Path) {
			if key != "" && valid(key) {
				r = r.WithContext(context.WithValue(r.Context(), keyedKey, true))
			}
			next.ServeHTTP(w, r)
			return
		}
		var detail string
		switch {
		case key == "":
			detail = fmt.Sprintf("missing API key: send it as %s: <key> or Authorization: Bearer <key>", header)
		case valid(key):
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), keyedKey, true)))
			return
		default:
			detail = "the API key is not valid"
		}
		p := newProblem(http.StatusUnauthorized, detail)
		p.header = http.Header{"WWW-Authenticate": {challenge}}
		writeProblem(w, r, p)
	})
}

// requestKey is the key a request carries: the key header, else the
// credentials of "Authorization: Bearer <key>". The scheme is matched
// without regard to case (RFC 9110 §11.1: "bearer" and "BEARER" are
// Bearer too), and the spaces around the key are not part of it.
func requestKey(r *http.Request, header string) string {
	if key := strings.TrimSpace(r.Header.Get(header)); key != "" {
		return key
	}
	scheme, cred, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(cred)
}

type keyedCtx struct{}

// keyedKey marks a request context whose request carried a valid key.
var keyedKey keyedCtx

// keyed reports whether the request may see everything: it carried a
// valid key, or the server has no keys (an open API hides nothing).
func (s *Server) keyed(ctx context.Context) bool {
	if len(s.d.Auth.Keys) == 0 {
		return true
	}
	v, _ := ctx.Value(keyedKey).(bool)
	return v
}
